/** A platform that @refscope/<name> serves (an entry of platforms.json). */
export interface Platform {
  /** The package suffix: `@refscope/${name}`. */
  readonly name: string;
  /** The Zig target it is built for. */
  readonly zig: string;
  /** Node's `process.platform` name. */
  readonly os: string;
  /** Node's `process.arch` name. */
  readonly cpu: string;
  /** The C library on Linux, null elsewhere. */
  readonly libc: "glibc" | "musl" | null;
  /** The library's file name inside the package. */
  readonly file: string;
}

/** Where one platform package's library is, or why there is none. */
export interface LibraryCandidate {
  /** `@refscope/<platform>`, or undefined when no platform fits. */
  readonly package: string | undefined;
  /** The library's path, when the package is installed. */
  readonly path?: string;
  /** Why there is no path. */
  readonly reason?: string;
}

/** Every platform a package is published for. */
export declare const platforms: readonly Platform[];

/**
 * The running process's C library on Linux, from /proc/self/maps, or undefined when it cannot
 * be told. Under Deno, call it only with read access granted: Deno would prompt for it.
 */
export declare function runningLibc(): "glibc" | "musl" | undefined;

/** The platforms that could serve a process on `os`/`cpu` with `libc` (glibc if unknown), best first. */
export declare function platformsFor(os: string, cpu: string, libc?: "glibc" | "musl"): Platform[];

/** Where the library is for each platform that could serve this process, best first. */
export declare function libraryCandidates(os: string, cpu: string, libc?: "glibc" | "musl"): LibraryCandidate[];
