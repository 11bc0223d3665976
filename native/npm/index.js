// @refscope/native: finds the prebuilt librefscope for the running process.
//
// The library ships in one npm package per platform (@refscope/linux-x64-gnu, ...), each
// an optional dependency of this package with `os`, `cpu` and (Linux) `libc` fields, so
// that a package manager installs only the one that fits. Not every manager filters on
// `libc` (Deno installs both Linux variants), so the variant is chosen here, from the C
// library the running process has mapped, not from the operating system: a musl build of
// a runtime on a glibc distribution, or the reverse, still gets the library it can load.
//
// Plain JavaScript with its own .d.ts: Deno does not run TypeScript from node_modules.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
// Imported, not required: Deno loads a module without read permission, but lets `require`
// read a file outside node_modules only with --allow-read, and in a refscope checkout this
// file is native/npm/index.js, which node_modules links to.
import platformList from "./platforms.json" with { type: "json" };

const require = createRequire(import.meta.url);

/** Every platform a package is published for (see platforms.json). */
export const platforms = platformList;

/**
 * The C library of the running process: "glibc", "musl", or undefined when it cannot be
 * told (not Linux, or /proc not readable).
 *
 * It reads /proc/self/maps: under Deno, call it only with read access already granted, or
 * Deno prompts for it on a terminal (npm code cannot ask Deno first: it hides its `Deno`).
 */
export function runningLibc() {
  let maps;
  try {
    maps = readFileSync("/proc/self/maps", "utf8");
  } catch {
    return undefined;
  }
  // musl's C library is also its dynamic loader: ld-musl-<arch>.so.1, libc.musl-<arch>.so.1
  // (Alpine), or a plain libc.so (Debian's <...>-linux-musl/libc.so, Void's /usr/lib/libc.so);
  // a glibc process never maps any of these (a plain libc.so is a linker script there). musl
  // is asked first: a musl process may also map a glibc-compatibility shim (Alpine's gcompat).
  if (/\/(ld-musl-[^/\n]*|libc\.musl-[^/\n]*|libc\.so)$/m.test(maps)) return "musl";
  if (/\/(libc\.so\.6|ld-linux[^/\n]*)$/m.test(maps)) return "glibc";
  return undefined;
}

/**
 * The platforms that could serve a process on `os`/`cpu` (Node's `process.platform` and
 * `process.arch` names), best first: on Linux, the variant of `libc` (the running C library,
 * see runningLibc; glibc when unknown), then the other one (tried only if the first is not
 * installed or will not load).
 */
export function platformsFor(os, cpu, libc) {
  const matching = platforms.filter((platform) => platform.os === os && platform.cpu === cpu);
  const rank = (platform) => (platform.libc === null || platform.libc === (libc ?? "glibc") ? 0 : 1);
  return matching.sort((a, b) => rank(a) - rank(b));
}

/**
 * Where the library would be for each platform that could serve this process (platformsFor),
 * best first.
 * Each entry has the package name and either the library's `path` (the package is
 * installed; the file may still fail to load) or the `reason` it has none.
 */
export function libraryCandidates(os, cpu, libc) {
  const found = platformsFor(os, cpu, libc);
  if (found.length === 0) {
    const names = platforms.map((platform) => platform.name).join(", ");
    return [{ package: undefined, reason: `no prebuilt library for ${os}-${cpu} (published: ${names})` }];
  }
  return found.map((platform) => {
    const name = `@refscope/${platform.name}`;
    try {
      return { package: name, path: join(dirname(require.resolve(`${name}/package.json`)), platform.file) };
    } catch {
      return { package: name, reason: "not installed" };
    }
  });
}
