/**
 * Picks the runtime backend and loads librefscope.
 *
 * Lookup order:
 *
 * 1. `REFSCOPE_LIB`, when set, and nothing else: an explicit choice that fails is an error,
 *    never a silent fallback to some other build. (Deno lets it be read only with
 *    `--allow-env`; without, it is not seen, and an error says so.)
 * 2. The library built in this checkout (`zig-out/`), only when this module is its
 *    TypeScript source in a local file: the npm package is compiled .js, and a module served
 *    over https (JSR) has no checkout beside it.
 * 3. The prebuilt library of the platform package that `@refscope/native` finds for the
 *    running OS, CPU and C library (glibc or musl, read from the running process).
 *
 * Failure is an error that names every path tried, why each failed, and what to do.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { libraryCandidates, runningLibc } from "@refscope/native";
import { nativeError, RefscopeError } from "../errors.ts";
import { abiVersion } from "./abi.gen.ts";
import { backend as bunBackend } from "./bun.ts";
import { backend as denoBackend } from "./deno.ts";
import { backend as nodeBackend } from "./node.ts";
import { type Backend, type Bound, refscopeSymbols, type SymbolSpec } from "./symbols.ts";

export type { Backend, Bound, Channel, Pointer, SymbolSpec, Wake } from "./symbols.ts";

/** The running runtime's backend. The only runtime test in `lib/`. */
export const backend: Backend = "Bun" in globalThis ? bunBackend : "Deno" in globalThis ? denoBackend : nodeBackend;

/** A loaded librefscope. */
export interface Native {
  readonly path: string;
  readonly symbols: Bound<typeof refscopeSymbols>;
}

let loaded: Native | undefined;

/** Loads librefscope once per process (per Worker), on first use. */
export function native(): Native {
  loaded ??= load();
  return loaded;
}

/** The platform's file name for the shared library `name`, and its directory in `zig-out/`. */
export function libraryFile(name: string): { directory: string; file: string } {
  switch (backend.platform) {
    case "win32":
      return { directory: "bin", file: `${name}.dll` };
    case "darwin":
      return { directory: "lib", file: `lib${name}.dylib` };
    default:
      return { directory: "lib", file: `lib${name}.so` };
  }
}

/** A place the library may be: a path to open, or the reason there is none. */
type Candidate = { label: string; path: string } | { label: string; reason: string };

/**
 * Where to look, in order. A generator: once one loads, the later ones are never worked out
 * (the platform packages are then not even resolved).
 */
function* candidates(): Generator<Candidate> {
  const override = backend.env("REFSCOPE_LIB");
  if (override) {
    yield { label: "REFSCOPE_LIB", path: override };
    return;
  }
  // Deno without env access: REFSCOPE_LIB may be set, but cannot be seen. Said in the error.
  if (!backend.mayReadEnv("REFSCOPE_LIB")) {
    yield { label: "REFSCOPE_LIB", reason: "not read: Deno grants no access to it (--allow-env=REFSCOPE_LIB)" };
  }
  // Only this module's TypeScript source, run from a local file, can sit in a checkout: the
  // npm package holds compiled .js, and JSR serves the source over https.
  if (import.meta.url.startsWith("file:") && import.meta.url.endsWith(".ts")) {
    const { directory, file } = libraryFile("refscope");
    // fileURLToPath, not `.pathname`: a checkout path may contain spaces or non-ASCII.
    yield {
      label: "checkout build",
      path: fileURLToPath(new URL(`../../zig-out/${directory}/${file}`, import.meta.url)),
    };
  }
  // The running C library decides glibc or musl on Linux. Deno may not let us read it (and
  // would prompt): then glibc comes first, the only libc Deno is built for.
  const libc = backend.platform === "linux" && backend.mayRead("/proc/self/maps") ? runningLibc() : undefined;
  for (const candidate of libraryCandidates(backend.platform, backend.arch, libc)) {
    const label = candidate.package ?? "platform package";
    yield candidate.path === undefined
      ? { label, reason: candidate.reason ?? "not found" }
      : { label, path: candidate.path };
  }
}

/**
 * Why `path` did not open, in the system's words only: the line that shows it names the
 * path already, so the runtime's wording is dropped and so is the C library's naming of the
 * file before its reason (glibc's "<path>: ", musl's "Error loading shared library <path>: ").
 * The runtime's whole message stays in the error's `cause`.
 */
function openFailureReason(error: unknown, path: string): string {
  const reason = backend.openFailureReason(error, path);
  const named = reason.indexOf(`${path}: `);
  return named === -1 ? reason : reason.slice(named + path.length + 2);
}

/**
 * Opens the first candidate that loads. The error names every path tried and why each
 * failed; its `cause` is the runtime's own error for each one that failed to open (one
 * error, or an `AggregateError` of several).
 */
function openFirst<S extends Record<string, SymbolSpec>>(
  candidates: Iterable<Candidate>,
  symbols: S,
  what: string,
): { path: string; symbols: Bound<S> } {
  const failures: string[] = [];
  const errors: unknown[] = [];
  for (const candidate of candidates) {
    if (!("path" in candidate)) {
      failures.push(`  ${candidate.label}: ${candidate.reason}`);
      continue;
    }
    try {
      return { path: candidate.path, symbols: backend.open(candidate.path, symbols) };
    } catch (error) {
      failures.push(`  ${candidate.label}: ${candidate.path}: ${openFailureReason(error, candidate.path)}`);
      errors.push(error);
    }
  }
  const cause = errors.length === 0
    ? undefined
    : errors.length === 1
    ? errors[0]
    : new AggregateError(errors, `${errors.length} libraries failed to open`);
  throw new RefscopeError(
    "LIBRARY_NOT_FOUND",
    `cannot load ${what}. Tried:\n${failures.join("\n")}\n` +
      "Install refscope with your package manager (it brings the prebuilt library for this " +
      "platform as an optional dependency: check that optional dependencies are not omitted), " +
      "build it in a refscope checkout with `npm run build`, or set REFSCOPE_LIB to the library's path.",
    cause === undefined ? undefined : { cause },
  );
}

function load(): Native {
  const unsupported = backend.unsupported();
  if (unsupported !== undefined) throw new RefscopeError("UNSUPPORTED_RUNTIME", unsupported);
  const { path, symbols } = openFirst(candidates(), refscopeSymbols, "librefscope");
  const version = symbols.refscope_abi_version();
  if (version !== abiVersion) {
    throw new RefscopeError(
      "ABI_MISMATCH",
      `${path} has ABI version ${version}; this module needs ${abiVersion}. Rebuild the library.`,
    );
  }
  return { path, symbols };
}

/** Which librefscope this process uses, loading it first if it is not loaded yet. */
export function nativeLibrary(): {
  /** The file it was loaded from. */
  readonly path: string;
  /** Its ABI version (`refscope_abi_version()`): always the one this module needs, or loading fails. */
  readonly abiVersion: number;
} {
  return { path: native().path, abiVersion };
}

/**
 * The error for a negative native status, explaining it in terms of `what` was attempted,
 * with the library's own sentence for the status (`refscope_status_message`).
 */
export function errorFromStatus(status: number, what: string): RefscopeError {
  const loaded = native();
  const message = loaded.symbols.refscope_status_message(status);
  return nativeError(status, what, message === null ? "unknown status" : backend.cString(message));
}
