// Finding the library: the resolver's choice of platform package (@refscope/native, in
// native/npm/), its reading of the running process's C library, and the loader's order in
// the checkout. The installed-package path itself is tested from packed tarballs, with no
// checkout on the path (.ci/check-packages).
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { libraryCandidates, platforms, platformsFor, runningLibc } from "@refscope/native";
import { Counter, nativeLibrary, Status } from "../mod.ts";
import { Hint } from "../lib/ffi/abi.gen.ts";
import { backend, errorFromStatus, libraryFile, native } from "../lib/ffi/mod.ts";
import { emulated, runScript, runtime, suite, testPath } from "./_harness.ts";

/**
 * The C library this process was started with, read another way than the resolver does:
 * from the program interpreter (PT_INTERP) the kernel ran it with. A runtime started through
 * a patched interpreter (as the musl Bun in CI is) still names musl's loader there.
 */
function interpreterLibc(): "glibc" | "musl" | undefined {
  const elf = readFileSync("/proc/self/exe").subarray(0, 1 << 16);
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  for (let index = 0; index < view.getUint16(0x38, true); index++) {
    const header = phoff + index * phentsize;
    if (view.getUint32(header, true) !== 3) continue; // PT_INTERP
    const offset = Number(view.getBigUint64(header + 8, true));
    const size = Number(view.getBigUint64(header + 32, true));
    const interpreter = new TextDecoder().decode(elf.subarray(offset, offset + size - 1));
    return interpreter.includes("musl") ? "musl" : interpreter.includes("ld-linux") ? "glibc" : undefined;
  }
  return undefined;
}

/**
 * A refscope checkout as `git clone` and `npm install` leave one, made in `root/checkout` from
 * this checkout's files, with its zig-out library a link to the one this process loaded. A
 * copy, so that its `@refscope/native` is its own: this checkout's node_modules may be
 * another checkout's (git worktrees share one), and then so would be the resolver.
 */
function copyCheckout(root: string): string {
  const source = fileURLToPath(new URL("../", import.meta.url));
  const checkout = join(root, "checkout");
  for (const path of ["mod.ts", "lib", "native/npm", "package.json", "deno.json"]) {
    cpSync(join(source, path), join(checkout, path), { recursive: true });
  }
  mkdirSync(join(checkout, "node_modules", "@refscope"), { recursive: true });
  symlinkSync("../../native/npm", join(checkout, "node_modules", "@refscope", "native"));
  const { directory, file } = libraryFile("refscope");
  mkdirSync(join(checkout, "zig-out", directory), { recursive: true });
  symlinkSync(nativeLibrary().path, join(checkout, "zig-out", directory, file));
  return checkout;
}

/**
 * Another project, in `root/app`, with no deno.json or package.json: fixtures/outside-app.ts
 * and its Worker, importing the checkout in `root/checkout` by a relative path.
 */
function outsideProject(root: string): string {
  const app = join(root, "app");
  mkdirSync(app);
  for (const name of ["outside-app.ts", "outside-worker.ts"]) {
    const text = readFileSync(testPath(`fixtures/${name}`), "utf8");
    if (!text.includes(`from "../../mod.ts"`)) throw new Error(`fixtures/${name} no longer imports ../../mod.ts`);
    writeFileSync(join(app, name), text.replace(`from "../../mod.ts"`, `from "../checkout/mod.ts"`));
  }
  return app;
}

suite("loader", async (t) => {
  await t.test("the platform list names six packages, one library file each", (t) => {
    t.eq(
      platforms.map((platform) => platform.name),
      ["linux-x64-gnu", "linux-arm64-gnu", "linux-x64-musl", "darwin-x64", "darwin-arm64", "win32-x64"],
      "linux gnu x64/arm64, linux musl x64, macOS x64/arm64, Windows x64",
    );
    for (const platform of platforms) {
      const expected = platform.os === "win32"
        ? "refscope.dll"
        : platform.os === "darwin"
        ? "librefscope.dylib"
        : "librefscope.so";
      t.eq(platform.file, expected, `${platform.name} ships ${expected}`);
      t.eq(platform.libc !== null, platform.os === "linux", `${platform.name} names a libc only on Linux`);
    }
  });

  await t.test("the running C library is read from the process, not the OS", (t) => {
    if (process.platform !== "linux") {
      t.eq(runningLibc(), undefined, "undefined off Linux");
      return;
    }
    const expected = interpreterLibc();
    t.ok(expected !== undefined, `this runtime's interpreter names its libc (${expected})`);
    t.eq(runningLibc(), expected, `the resolver agrees: ${expected}`);
  });

  await t.test("the running libc's package comes first, the other Linux variant second", (t) => {
    const names = (os: string, cpu: string, libc?: "glibc" | "musl") =>
      platformsFor(os, cpu, libc).map((platform) => platform.name);
    t.eq(names("linux", "x64", "glibc"), ["linux-x64-gnu", "linux-x64-musl"], "glibc x64");
    t.eq(names("linux", "x64", "musl"), ["linux-x64-musl", "linux-x64-gnu"], "musl x64");
    t.eq(
      names("linux", "x64"),
      ["linux-x64-gnu", "linux-x64-musl"],
      "unknown libc (Deno without read access): glibc first",
    );
    t.eq(names("linux", "arm64", "musl"), ["linux-arm64-gnu"], "musl arm64 has only the gnu build to try");
    t.eq(names("darwin", "arm64"), ["darwin-arm64"], "macOS arm64");
    t.eq(names("darwin", "x64"), ["darwin-x64"], "macOS x64");
    t.eq(names("win32", "x64"), ["win32-x64"], "Windows x64");
    t.eq(names("freebsd", "x64"), [], "nothing for FreeBSD");
  });

  await t.test("a platform with no package, or a package not installed, is a reason, not a path", (t) => {
    const none = libraryCandidates("freebsd", "x64");
    t.eq(none.length, 1, "one entry");
    t.eq(none[0].path, undefined, "with no path");
    t.ok(String(none[0].reason).includes("no prebuilt library for freebsd-x64"), `saying so: ${none[0].reason}`);
    // The checkout does not install the platform packages: each is reported missing.
    const missing = libraryCandidates("darwin", "arm64");
    t.eq(missing.map((candidate) => [candidate.package, candidate.reason]), [[
      "@refscope/darwin-arm64",
      "not installed",
    ]], "by name");
  });

  await t.test("in the checkout, with REFSCOPE_LIB unset, the checkout's build is loaded", async (t) => {
    if (process.env.REFSCOPE_LIB) {
      t.ok(true, "skipped: this run sets REFSCOPE_LIB");
      return;
    }
    const { path, abiVersion } = nativeLibrary();
    const expected = fileURLToPath(new URL("../zig-out/", import.meta.url));
    t.ok(path.startsWith(expected), `${path} is under ${expected}`);
    const header = readFileSync(new URL("../native/include/refscope.h", import.meta.url), "utf8");
    const declared = Number(/#define REFSCOPE_ABI_VERSION (\d+)u/.exec(header)?.[1]);
    t.eq(abiVersion, declared, `the module needs the header's ABI version (${declared})`);
    t.eq(native().symbols.refscope_abi_version(), declared, "and the loaded library reports it");
    await using counter = new Counter();
    t.eq(counter.liveObjects, 0, "and it works");
  });

  await t.test("REFSCOPE_LIB, when set, is the only candidate: no silent fallback", (t) => {
    const missing = "/nonexistent/librefscope.so";
    const result = runScript(testPath("fixtures/load-failure.ts"), { REFSCOPE_LIB: missing });
    const report = JSON.parse(result.stdout || "{}");
    t.eq(report.code, "LIBRARY_NOT_FOUND", "LIBRARY_NOT_FOUND");
    const tried = String(report.message).split("\n").filter((line: string) => line.startsWith("  "));
    t.eq(tried.length, 1, `one path tried: ${JSON.stringify(tried)}`);
    t.ok(tried[0].startsWith(`  REFSCOPE_LIB: ${missing}: `), "REFSCOPE_LIB's, with the reason it failed");
  });

  await t.test("a path that fails to open is named once, with the system's reason and not the runtime's words", (t) => {
    const directory = mkdtempSync(join(tmpdir(), "refscope-loader-"));
    const notLibrary = join(directory, "librefscope.so");
    writeFileSync(notLibrary, "not a shared library\n");
    try {
      for (const [what, path] of [["a missing file", join(directory, "missing.so")], ["not a library", notLibrary]]) {
        const report = JSON.parse(
          runScript(testPath("fixtures/load-failure.ts"), { REFSCOPE_LIB: path }).stdout || "{}",
        );
        const message = String(report.message);
        t.eq(report.code, "LIBRARY_NOT_FOUND", `${what}: LIBRARY_NOT_FOUND`);
        // Deno's wording (which it says twice), Bun's and Node's, each around dlerror's.
        for (const phrase of ["Could not open library", "Failed to open library", "dlopen failed"]) {
          t.ok(message.split(phrase).length <= 2, `${what}: "${phrase}" at most once`);
        }
        const line = message.split("\n").find((line) => line.startsWith(`  REFSCOPE_LIB: ${path}: `)) ?? "";
        const reason = line.slice(`  REFSCOPE_LIB: ${path}: `.length);
        t.ok(reason.length > 0, `${what}: the path, then the reason: ${JSON.stringify(line)}`);
        // Off Linux the C library's reason may name the path itself (macOS lists every place
        // it looked); glibc and musl name it before the reason, which the loader drops.
        if (process.platform === "linux") t.eq(message.split(path).length, 2, `${what}: the path is named once`);
        t.ok(
          typeof report.cause === "string" && report.cause !== reason && report.cause.endsWith(reason),
          `${what}: the runtime's whole error is the cause: ${JSON.stringify(report.cause)}`,
        );
        t.ok(/npm run build.*REFSCOPE_LIB/s.test(message), `${what}: and it says what to do`);
      }
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  await t.test("a checkout's mod.ts works from another project (Deno: --node-modules-dir=manual; a Worker: read)", (t) => {
    const root = mkdtempSync(join(tmpdir(), "refscope-outside-"));
    try {
      const checkout = copyCheckout(root);
      const app = outsideProject(root);
      // The library a child loads: REFSCOPE_LIB when the run sets it (as the musl and arm64
      // stages do) and the child may read it, else the checkout's build.
      const override = runtime === "deno" ? undefined : process.env.REFSCOPE_LIB || undefined;
      const expected = override ?? join(checkout, "zig-out", libraryFile("refscope").directory);
      const timeoutMs = emulated ? 120_000 : 30_000;
      // Deno has no import map there, and resolves the checkout's `@refscope/native` from the
      // checkout's node_modules only when told to. A Worker needs read access to the local
      // modules it loads: its own, and the checkout's.
      const runs = [
        { what: "on this thread", args: [], denoFlags: ["--allow-ffi", "--node-modules-dir=manual"], handlers: 1 },
        {
          what: "and with a Worker",
          args: ["worker"],
          denoFlags: ["--allow-ffi", "--node-modules-dir=manual", `--allow-read=${app},${checkout}`],
          handlers: 2,
        },
      ];
      for (const { what, args, denoFlags, handlers } of runs) {
        const result = runScript(join(app, "outside-app.ts"), {}, timeoutMs, args, { cwd: app, denoFlags });
        const flags = runtime === "deno" ? ` (deno run ${denoFlags.join(" ")})` : "";
        const stderr = result.status === 0 ? "" : `: ${result.stderr.slice(0, 600)}`;
        t.eq(result.status, 0, `${what}${flags}: exits with status 0${stderr}`);
        const report = JSON.parse(result.stdout.trim().split("\n").at(-1) || "{}");
        t.eq(report.ran?.length, handlers, `${what}: ${handlers} handler(s) ran, then the counter closed`);
        t.ok(String(report.library).startsWith(expected), `${what}: loading ${report.library}`);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  await t.test("a Node without node:ffi is UNSUPPORTED_RUNTIME, naming the Node it needs", (t) => {
    if (runtime !== "node") {
      t.eq(backend.unsupported(), undefined, `${runtime} always has its FFI`);
      return;
    }
    t.eq(backend.unsupported(), undefined, "this Node has node:ffi");
    // Node 26 without its FFI stands in for a Node before 26.1.
    const result = runScript(testPath("fixtures/load-failure.ts"), { NODE_OPTIONS: "--no-experimental-ffi" });
    const report = JSON.parse(result.stdout || "{}");
    t.eq([report.isRefscopeError, report.code], [true, "UNSUPPORTED_RUNTIME"], "a RefscopeError, UNSUPPORTED_RUNTIME");
    t.ok(/node:ffi.*26\.1.*--no-experimental-ffi/.test(String(report.message)), `saying why: ${report.message}`);
  });

  await t.test("a status the module does not know is UNKNOWN, with the library's own message", (t) => {
    const unknown = errorFromStatus(-1000, "calling");
    t.eq([unknown.code, unknown.status], ["UNKNOWN", -1000], "code UNKNOWN, status kept");
    t.eq(unknown.message, "calling: unknown status", "the library's message for it");
    const stale = errorFromStatus(Status.STALE_ID, "retain");
    const expected = backend.cString(native().symbols.refscope_status_message(Status.STALE_ID)!);
    t.eq(
      [stale.code, stale.message],
      ["STALE_ID", `retain: ${expected}`],
      "a known one: its code, the library's sentence",
    );
    t.eq(
      backend.cString(native().symbols.refscope_status_name(Hint.DRAIN)!),
      "REFSCOPE_HINT_DRAIN",
      "every family's values have names of their own in the library",
    );
  });
});
