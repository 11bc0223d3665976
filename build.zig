//! Builds librefscope (the shared library that Deno and Bun load), its C header, the
//! test-only companion library librefscope_testkit, and runs the Zig tests.
//!
//!   zig build                     install to zig-out/ (lib/, include/)
//!   zig build --release=safe      the optimised build the JS side loads
//!   zig build test                the native test suite
//!   zig build test -Dsanitize-thread   the same, built with ThreadSanitizer
//!   zig build test -Dvalgrind          the same, run under valgrind memcheck
//!   zig build dist                the npm platform packages, in zig-out/dist/npm/
//!   zig build check-dist          the same, then each package checked (native/tools/check_dist.zig)
//!   zig build bindings            regenerate lib/ffi/abi.gen.ts from the native source
//!   zig build musl-tests          the C tests against the musl library (.ci/check-musl)

const std = @import("std");

pub fn build(b: *std.Build) void {
    const sanitize_thread = b.option(bool, "sanitize-thread", "Build the library and the Zig tests with ThreadSanitizer") orelse false;
    const valgrind = b.option(bool, "valgrind", "Run the native tests under valgrind memcheck") orelse false;
    // Code for the native CPU may use AVX-512, which valgrind cannot run.
    const target = b.standardTargetOptions(.{ .default_target = if (valgrind) .{ .cpu_model = .baseline } else .{} });
    const optimize = b.standardOptimizeOption(.{});

    const library = addLibrary(b, target, optimize, sanitize_thread);
    // The header travels with the artifact: it is installed to include/, and whatever links
    // the library (here, or a dependent's `dep.artifact("refscope")`) can include it.
    library.installHeader(b.path("native/include/refscope.h"), "refscope.h");
    b.installArtifact(library);

    // The header translated to Zig, for the Zig code that must see exactly what C callers
    // see: the bindings, and header_test.zig, which checks it against the exports.
    const header_module = b.addTranslateC(.{
        .root_source_file = b.path("native/include/refscope.h"),
        .target = target,
        .optimize = optimize,
    }).createModule();

    // For Zig dependents (`dep.module("refscope")`): the header as Zig, plus a few wrappers.
    // Importing the module links the library, so a dependent needs nothing else.
    const zig_module = b.addModule("refscope", .{
        .root_source_file = b.path("native/zig/refscope.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    zig_module.addImport("refscope_h", header_module);
    // The library's own locks, for dependents whose callbacks (run on the library's threads)
    // share state with their other threads: Zig 0.17's std has locks only in std.Io.
    zig_module.addImport("sync", b.createModule(.{
        .root_source_file = b.path("native/src/sync.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    }));
    zig_module.linkLibrary(library);

    // Native helpers that only tests and benchmarks load (a thread that releases while JS
    // is busy, say). Kept out of librefscope so the shipped library has no test surface.
    const testkit_module = b.createModule(.{
        .root_source_file = b.path("native/testkit/testkit.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    testkit_module.linkLibrary(library);
    // The testkit runs code on the dispatcher thread (a stalling callback) and on its own
    // threads, so it pins itself in memory exactly as librefscope does.
    testkit_module.addImport("pin", b.createModule(.{
        .root_source_file = b.path("native/src/pin.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    }));
    testkit_module.addRPathSpecial("$ORIGIN");
    const testkit = b.addLibrary(.{
        .name = "refscope_testkit",
        .linkage = .dynamic,
        .use_llvm = true,
        .root_module = testkit_module,
    });
    b.installArtifact(testkit);

    const test_step = b.step("test", "Run the native tests");
    // The self-hosted backend (Debug's default) ignores sanitize_thread, writes debug info
    // that valgrind cannot read, and its test binaries crash in TSan's runtime.
    const test_llvm: ?bool = if (sanitize_thread or valgrind) true else null;
    const unit_tests = b.addTest(.{
        .use_llvm = test_llvm,
        .root_module = coreModule(b, target, optimize, sanitize_thread),
    });
    // header_test.zig checks the C header against the exports: it imports the header.
    unit_tests.root_module.addImport("refscope_h", header_module);
    test_step.dependOn(&b.addRunArtifact(unit_tests).step);
    // The Zig bindings, used as a dependent uses them.
    const binding_tests = b.addTest(.{ .use_llvm = test_llvm, .root_module = zig_module });
    test_step.dependOn(&b.addRunArtifact(binding_tests).step);

    addBindings(b, test_step, test_llvm);

    // C programs that use the header against the library: abi_test checks the declarations,
    // layouts and lifecycle; misuse_test is the misuse catalogue at the C ABI.
    for ([_][]const u8{ "abi_test", "misuse_test" }) |name| {
        test_step.dependOn(&b.addRunArtifact(addCTest(b, name, library, target, optimize)).step);
    }

    // Last, so that it sees every test above: valgrind memcheck runs each one and fails it
    // on any invalid access, use of undefined memory or lost block. (Blocks still reachable
    // at exit are not lost: the main thread's thread-exit record, which only a thread's
    // exit frees, is one.)
    if (valgrind) for (test_step.dependencies.items) |dependency| {
        const run = dependency.cast(std.Build.Step.Run) orelse continue;
        const memcheck = [_][]const u8{ "valgrind", "--quiet", "--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect" };
        for (memcheck, 0..) |arg, index| run.argv.insert(b.allocator, index, .{ .bytes = b.dupe(arg) }) catch @panic("OOM");
    };

    // `zig build fuzz --fuzz[=N]`: the core's fuzz tests alone (the other test programs
    // have none, and the fuzzer needs coverage from each program it is given). LLVM, for
    // the coverage instrumentation. A plain `zig build test` replays their corpus.
    const fuzz_step = b.step("fuzz", "Run the native fuzz tests (add --fuzz to explore; see README)");
    const fuzz_tests = b.addTest(.{
        .name = "fuzz",
        .use_llvm = true,
        .root_module = coreModule(b, target, optimize, false),
        .filters = &.{"fuzz"},
    });
    fuzz_tests.root_module.addImport("refscope_h", header_module);
    fuzz_step.dependOn(&b.addRunArtifact(fuzz_tests).step);

    const dist = addDist(b);
    addMuslTests(b, dist.libraries);
    addCheckDist(b, dist.step, test_step);
}

/// The build's own programs (native/tools/) run on this machine, built for its baseline CPU:
/// code for the native CPU may use AVX-512, which valgrind (whose stage runs their tests
/// too) cannot run.
fn toolTarget(b: *std.Build) std.Build.ResolvedTarget {
    return b.resolveTargetQuery(.{ .cpu_model = .baseline });
}

/// `zig build bindings`: lib/ffi/abi.gen.ts, every fact the TypeScript side uses about the
/// C ABI, generated from the core by native/tools/bindings.zig and checked in (the runtimes
/// load TypeScript, not build outputs). `zig build test` compares the checked-in file with
/// what the core generates, so a stale one fails the tests.
fn addBindings(b: *std.Build, test_step: *std.Build.Step, test_llvm: ?bool) void {
    const generated_path = "lib/ffi/abi.gen.ts";
    const host = toolTarget(b);
    const generator_module = b.createModule(.{
        .root_source_file = b.path("native/tools/bindings.zig"),
        .target = host,
        .optimize = .Debug,
        .link_libc = true,
    });
    generator_module.addImport("abi", coreModule(b, host, .Debug, false));
    const generator = b.addExecutable(.{ .name = "bindings", .use_llvm = true, .root_module = generator_module });
    const update = b.addUpdateSourceFiles();
    update.addCopyFileToSource(b.addRunArtifact(generator).captureStdOut(.{}), generated_path);
    b.step("bindings", "Regenerate " ++ generated_path ++ " from the native source").dependOn(&update.step);

    // The same program as a test, with the checked-in file to compare against.
    const check_module = b.createModule(.{
        .root_source_file = b.path("native/tools/bindings.zig"),
        .target = host,
        .optimize = .Debug,
        .link_libc = true,
    });
    check_module.addImport("abi", coreModule(b, host, .Debug, false));
    check_module.addAnonymousImport("abi.gen.ts", .{ .root_source_file = b.path(generated_path) });
    const check = b.addTest(.{ .name = "bindings", .use_llvm = test_llvm, .root_module = check_module });
    test_step.dependOn(&b.addRunArtifact(check).step);
}

/// librefscope itself, as every build of it (native, cross, dist) is made.
fn addLibrary(
    b: *std.Build,
    target: std.Build.ResolvedTarget,
    optimize: std.builtin.OptimizeMode,
    sanitize_thread: bool,
) *std.Build.Step.Compile {
    // libc is not optional: without it std.Thread spawns threads with raw clone() instead
    // of pthread_create, and Deno crashes when such a thread calls a JS callback.
    //
    // LLVM for every build of it, Debug included (where Zig's own x86_64 backend is the
    // default): ThreadSanitizer and valgrind need LLVM's output (see the tests below), and one
    // backend keeps the library the JS tests load in Debug like the one that ships. (Zig
    // 0.15's own backend also emitted a library that crashed in its first futex wait once
    // loaded with dlopen, as Deno and Bun load it; with 0.17 and the pthread locks of
    // sync.zig, its Debug library passed the JS suites tried on it.)
    return b.addLibrary(.{
        .name = "refscope",
        .linkage = .dynamic,
        .use_llvm = true,
        // Zig links its TSan runtime into each artifact built with it, and two in one process
        // crash: so the C tests, which link this library, run with its runtime (whose
        // interceptors it exports) and are not instrumented themselves.
        .root_module = coreModule(b, target, optimize, sanitize_thread),
    });
}

/// The native core (native/src/, rooted at the ABI): what the library is built from and
/// what the Zig unit tests test.
fn coreModule(
    b: *std.Build,
    target: std.Build.ResolvedTarget,
    optimize: std.builtin.OptimizeMode,
    sanitize_thread: bool,
) *std.Build.Module {
    const module = b.createModule(.{
        .root_source_file = b.path("native/src/abi.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .sanitize_thread = sanitize_thread,
    });
    // The fuzz tests' checked-in corpus (only the tests refer to it).
    module.addImport("fuzz_corpus", b.createModule(.{ .root_source_file = b.path("native/test/corpus/corpus.zig") }));
    return module;
}

const Platform = @import("native/npm/platform.zig").Platform;

/// A platform package's package.json. No main or exports: the resolver require.resolve()s
/// "@refscope/<name>/package.json" and joins `file` to its directory.
const PlatformManifest = struct {
    name: []const u8,
    version: []const u8,
    description: []const u8,
    license: []const u8 = "MIT",
    os: []const []const u8,
    cpu: []const []const u8,
    /// npm then skips the package on a Linux of the other libc, as it does for os and cpu.
    libc: ?[]const []const u8,
    files: []const []const u8,
    /// Yarn PnP must unpack it: a library is loaded by its path, never out of a zip.
    preferUnplugged: bool = true,
    /// npm publishes scoped packages as restricted unless told otherwise.
    publishConfig: struct { access: []const u8 = "public" } = .{},
};

const DistLibrary = struct { platform: Platform, library: *std.Build.Step.Compile };

/// What `addDist` makes: the `dist` step, and the library it builds for each platform.
const Dist = struct { step: *std.Build.Step, libraries: []const DistLibrary };

/// `zig build dist`: librefscope for each platform of native/npm/platforms.json (ReleaseSafe,
/// like the native `--release=safe` build), installed as its npm package in
/// zig-out/dist/npm/<name>/ with package.json, README.md and LICENSE, and the resolver
/// package that depends on them all in zig-out/dist/npm/native/; the version is the root
/// package.json's. A broken platforms.json or package.json fails this step alone.
fn addDist(b: *std.Build) Dist {
    const dist_step = b.step("dist", "Build the npm platform packages of librefscope, and their resolver, into zig-out/dist/npm/");
    const platforms = readJson([]const Platform, b, "native/npm/platforms.json") catch |err| {
        dist_step.dependOn(&b.addFail(b.fmt("native/npm/platforms.json: {t}", .{err})).step);
        return .{ .step = dist_step, .libraries = &.{} };
    };
    const version = (readJson(struct { version: []const u8 }, b, "package.json") catch |err| {
        dist_step.dependOn(&b.addFail(b.fmt("package.json: {t}", .{err})).step);
        return .{ .step = dist_step, .libraries = &.{} };
    }).version;

    const libraries = b.allocator.alloc(DistLibrary, platforms.len) catch @panic("OOM");
    for (platforms, libraries) |platform, *dist_library| {
        const query = std.Target.Query.parse(.{ .arch_os_abi = platform.zig }) catch |err| {
            dist_step.dependOn(&b.addFail(b.fmt("native/npm/platforms.json: {s}: target {s}: {t}", .{ platform.name, platform.zig, err })).step);
            return .{ .step = dist_step, .libraries = &.{} };
        };
        const library = addLibrary(b, b.resolveTargetQuery(query), .ReleaseSafe, false);
        dist_library.* = .{ .platform = platform, .library = library };
        if (!std.mem.eql(u8, library.out_filename, platform.file)) {
            dist_step.dependOn(&b.addFail(b.fmt("native/npm/platforms.json: {s}: file is {s}, but Zig names the library {s}", .{ platform.name, platform.file, library.out_filename })).step);
        }

        const directory = b.fmt("dist/npm/{s}", .{platform.name});
        dist_step.dependOn(&b.addInstallArtifact(library, .{
            .dest_dir = .{ .override = .{ .custom = directory } },
            // The library alone: no import library, PDB or header.
            .implib_dir = .disabled,
            .pdb_dir = .disabled,
            .h_dir = .disabled,
        }).step);

        const label = platformLabel(b, platform);
        const manifest: PlatformManifest = .{
            .name = b.fmt("@refscope/{s}", .{platform.name}),
            .version = version,
            .description = b.fmt("refscope's native library (librefscope), prebuilt for {s}", .{label}),
            .os = b.dupeStrings(&.{platform.os}),
            .cpu = b.dupeStrings(&.{platform.cpu}),
            .libc = if (platform.libc) |libc| b.dupeStrings(&.{libc}) else null,
            .files = b.dupeStrings(&.{ platform.file, "README.md", "LICENSE" }),
        };
        const manifest_json = std.json.Stringify.valueAlloc(b.allocator, manifest, .{
            .whitespace = .indent_2,
            .emit_null_optional_fields = false,
        }) catch @panic("OOM");
        const readme = b.fmt(
            \\# @refscope/{s}
            \\
            \\The native library of refscope, `{s}`, prebuilt for {s}.
            \\
            \\npm installs it automatically on that platform, as an optional dependency of
            \\`@refscope/native` (refscope's resolver package, which finds the library for the
            \\running platform). Do not install it directly: depend on `refscope`.
            \\
        , .{ platform.name, platform.file, label });
        const files = b.addWriteFiles();
        for ([_]struct { []const u8, std.Build.LazyPath }{
            .{ "package.json", files.add("package.json", b.fmt("{s}\n", .{manifest_json})) },
            .{ "README.md", files.add("README.md", readme) },
            .{ "LICENSE", b.path("LICENSE") },
        }) |file| {
            dist_step.dependOn(&b.addInstallFile(file[1], b.fmt("{s}/{s}", .{ directory, file[0] })).step);
        }
    }
    addResolverPackage(b, dist_step, platforms, version) catch |err| {
        dist_step.dependOn(&b.addFail(b.fmt("native/npm/package.json: {t}", .{err})).step);
    };
    return .{ .step = dist_step, .libraries = libraries };
}

/// The resolver package @refscope/native, in zig-out/dist/npm/native/: native/npm/ as it is,
/// with every platform package as an optional dependency at the same version (npm installs
/// the one whose os/cpu/libc fit). The checkout's own copy lists none, because the checkout
/// installs it from native/npm/ and must not ask the registry for unpublished packages.
fn addResolverPackage(b: *std.Build, dist_step: *std.Build.Step, platforms: []const Platform, version: []const u8) !void {
    const bytes = try readPackageFile(b, "native/npm/package.json");
    var manifest = try std.json.parseFromSliceLeaky(std.json.Value, b.allocator, bytes, .{});
    if (manifest != .object) return error.NotAnObject;
    var dependencies: std.json.ObjectMap = .empty;
    for (platforms) |platform| try dependencies.put(b.allocator, b.fmt("@refscope/{s}", .{platform.name}), .{ .string = version });
    try manifest.object.put(b.allocator, "version", .{ .string = version });
    try manifest.object.put(b.allocator, "optionalDependencies", .{ .object = dependencies });
    const manifest_json = try std.json.Stringify.valueAlloc(b.allocator, manifest, .{ .whitespace = .indent_2 });

    const files = b.addWriteFiles();
    for ([_]struct { []const u8, std.Build.LazyPath }{
        .{ "package.json", files.add("package.json", b.fmt("{s}\n", .{manifest_json})) },
        .{ "index.js", b.path("native/npm/index.js") },
        .{ "index.d.ts", b.path("native/npm/index.d.ts") },
        .{ "platforms.json", b.path("native/npm/platforms.json") },
        .{ "README.md", b.path("native/npm/README.md") },
        .{ "LICENSE", b.path("LICENSE") },
    }) |file| {
        dist_step.dependOn(&b.addInstallFile(file[1], b.fmt("dist/npm/native/{s}", .{file[0]})).step);
    }
}

/// "Linux x64 (glibc)", "macOS arm64", "Windows x64": for people, in the package's texts.
fn platformLabel(b: *std.Build, platform: Platform) []const u8 {
    const os_names = std.StaticStringMap([]const u8).initComptime(.{
        .{ "linux", "Linux" }, .{ "darwin", "macOS" }, .{ "win32", "Windows" },
    });
    const os = os_names.get(platform.os) orelse platform.os;
    if (platform.libc) |libc| return b.fmt("{s} {s} ({s})", .{ os, platform.cpu, libc });
    return b.fmt("{s} {s}", .{ os, platform.cpu });
}

/// Parses a JSON file of the repository (unknown fields ignored) at configure time.
fn readJson(comptime T: type, b: *std.Build, path: []const u8) !T {
    const bytes = try readPackageFile(b, path);
    return std.json.parseFromSliceLeaky(T, b.allocator, bytes, .{ .ignore_unknown_fields = true });
}

/// Reads a file of this package at configure time. Zig caches what the configure phase
/// produced and reruns it only when one of its declared inputs changes, so the file is
/// declared as one: an edit to it then configures the build afresh.
fn readPackageFile(b: *std.Build, sub_path: []const u8) ![]u8 {
    b.dependOnFileContents(b.path(sub_path));
    const path = try b.root.join(b.allocator, sub_path);
    return path.root_dir.handle.readFileAlloc(b.graph.io, path.sub_path, b.allocator, .limited(1 << 20));
}

/// `zig build check-dist`: native/tools/check_dist.zig, built for the host with the core as
/// its "abi" import, run over the packages that `zig build dist` installs to
/// <prefix>/dist/npm/. It prints TAP and fails the step on any failed check. The list of
/// functions comes from the core by reflection, and each library's expected format,
/// machine and C library from its platform's Zig target: no second copy of either.
fn addCheckDist(b: *std.Build, dist_step: *std.Build.Step, test_step: *std.Build.Step) void {
    const host = toolTarget(b);
    const checker_module = b.createModule(.{
        .root_source_file = b.path("native/tools/check_dist.zig"),
        .target = host,
        .optimize = .Debug,
        .link_libc = true,
    });
    checker_module.addImport("abi", coreModule(b, host, .Debug, false));
    checker_module.addAnonymousImport("platform", .{ .root_source_file = b.path("native/npm/platform.zig") });
    const checker = b.addExecutable(.{ .name = "check_dist", .use_llvm = true, .root_module = checker_module });
    const run = b.addRunArtifact(checker);
    run.addDirectoryArg2(b.graph.path(.install_prefix, "dist/npm"), .{});
    run.addFileArg(b.path("native/npm/platforms.json"));
    run.addFileArg(b.path("package.json"));
    // Every package's LICENSE must equal this one, which the checker finds beside package.json.
    run.addFileInput(b.path("LICENSE"));
    // After every install step of `zig build dist`: the checker reads what they installed.
    run.step.dependOn(dist_step);
    // The packages may have changed although no input of the run did: always run it.
    run.has_side_effects = true;
    b.step("check-dist", "Build the npm packages (zig build dist) and check each one").dependOn(&run.step);

    // Its unit tests (the readers and the expectations; no dist needed) run with the others.
    const checker_tests = b.addTest(.{ .name = "check_dist", .use_llvm = true, .root_module = checker_module });
    test_step.dependOn(&b.addRunArtifact(checker_tests).step);
}

/// `zig build musl-tests`: the C tests, built for x86_64-linux-musl and linked dynamically
/// against the musl library of `zig build dist`, installed beside it in zig-out/musl/ (they
/// find it through an $ORIGIN rpath). .ci/check-musl runs them with a musl dynamic loader:
/// the program's own interpreter, /lib/ld-musl-x86_64.so.1, is not on a glibc system.
fn addMuslTests(b: *std.Build, dist: []const DistLibrary) void {
    const musl_step = b.step("musl-tests", "Build the C tests against the x86_64-linux-musl dist library, into zig-out/musl/");
    const library = for (dist) |entry| {
        if (std.mem.eql(u8, entry.platform.zig, "x86_64-linux-musl")) break entry.library;
    } else {
        musl_step.dependOn(&b.addFail("native/npm/platforms.json has no x86_64-linux-musl platform").step);
        return;
    };
    const install_dir: std.Build.InstallDir = .{ .custom = "musl" };
    musl_step.dependOn(&b.addInstallArtifact(library, .{ .dest_dir = .{ .override = install_dir }, .h_dir = .disabled }).step);
    for ([_][]const u8{ "abi_test", "misuse_test" }) |name| {
        const c_test = addCTest(b, name, library, library.root_module.resolved_target.?, .Debug);
        c_test.root_module.addRPathSpecial("$ORIGIN");
        musl_step.dependOn(&b.addInstallArtifact(c_test, .{ .dest_dir = .{ .override = install_dir } }).step);
    }
}

/// Builds native/test/<name>.c against the header and the library: a program that exits
/// non-zero on the first failed check.
fn addCTest(
    b: *std.Build,
    name: []const u8,
    library: *std.Build.Step.Compile,
    target: std.Build.ResolvedTarget,
    optimize: std.builtin.OptimizeMode,
) *std.Build.Step.Compile {
    const c_test = b.addExecutable(.{
        .name = name,
        .root_module = b.createModule(.{ .target = target, .optimize = optimize, .link_libc = true }),
    });
    // C11 plus POSIX (clock_gettime, nanosleep): musl's headers, unlike glibc's, hide
    // POSIX from a strict -std=c11 unless a feature macro asks for it.
    c_test.root_module.addCSourceFile(.{ .file = b.path(b.fmt("native/test/{s}.c", .{name})), .flags = &.{ "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-pthread" } });
    c_test.root_module.addIncludePath(b.path("native/include"));
    c_test.root_module.linkLibrary(library);
    return c_test;
}
