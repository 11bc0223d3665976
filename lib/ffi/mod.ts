/**
 * Picks the runtime backend and loads librefscope.
 *
 * Lookup order: `REFSCOPE_LIB` when set (and nothing else), otherwise the library built in
 * this checkout (`zig-out/`, only when this module is a local file). Failure is an error
 * that names every path tried, why each failed, and how to build the library.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { RefscopeError } from "../errors.ts";
import { backend as bunBackend } from "./bun.ts";
import { backend as denoBackend } from "./deno.ts";
import { type Backend, type Bound, refscopeSymbols, type SymbolSpec, testkitSymbols } from "./symbols.ts";

export type { Pointer, Wake } from "./symbols.ts";

/** The ABI version this module was written against (`REFSCOPE_ABI_VERSION`). */
export const abiVersion = 3;

/** The running runtime's backend. The only runtime test in `lib/`. */
export const backend: Backend = "Bun" in globalThis ? bunBackend : denoBackend;

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
function libraryFile(name: string): { directory: string; file: string } {
  switch (backend.os) {
    case "windows":
      return { directory: "bin", file: `${name}.dll` };
    case "darwin":
      return { directory: "lib", file: `lib${name}.dylib` };
    default:
      return { directory: "lib", file: `lib${name}.so` };
  }
}

function candidates(): string[] {
  const override = backend.env("REFSCOPE_LIB");
  if (override) return [override];
  const found: string[] = [];
  if (import.meta.url.startsWith("file:")) {
    const { directory, file } = libraryFile("refscope");
    // fileURLToPath, not `.pathname`: a checkout path may contain spaces or non-ASCII.
    found.push(fileURLToPath(new URL(`../../zig-out/${directory}/${file}`, import.meta.url)));
  }
  return found;
}

function openFirst<S extends Record<string, SymbolSpec>>(
  paths: string[],
  symbols: S,
  what: string,
): { path: string; symbols: Bound<S> } {
  const failures: string[] = [];
  for (const path of paths) {
    try {
      return { path, symbols: backend.open(path, symbols) };
    } catch (error) {
      failures.push(`  ${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const tried = failures.length > 0 ? failures.join("\n") : "  (no candidate: this module is not a local file)";
  throw new RefscopeError(
    "LIBRARY_NOT_FOUND",
    `cannot load ${what}. Tried:\n${tried}\n` +
      "Build it in the refscope checkout with `npm run build` (zig build --release=safe), " +
      "or set REFSCOPE_LIB to the library's path.",
  );
}

function load(): Native {
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

/** Loads librefscope_testkit from beside librefscope (tests and benchmarks only). */
export function testkit(): Bound<typeof testkitSymbols> {
  const directory = native().path.replace(/[^/\\]*$/, "");
  const path = directory + libraryFile("refscope_testkit").file;
  return openFirst([path], testkitSymbols, "librefscope_testkit").symbols;
}
