//! Builds librefscope (the shared library that Deno and Bun load), its C header, the
//! test-only companion library librefscope_testkit, and runs the Zig tests.
//!
//!   zig build                     install to zig-out/ (lib/, include/)
//!   zig build --release=safe      the optimised build the JS side loads
//!   zig build test                the native test suite
//!   zig build test -Dsanitize-thread   the same, built with ThreadSanitizer
//!   zig build test -Dvalgrind          the same, run under valgrind memcheck

const std = @import("std");

pub fn build(b: *std.Build) void {
    const sanitize_thread = b.option(bool, "sanitize-thread", "Build the library and the Zig tests with ThreadSanitizer") orelse false;
    const valgrind = b.option(bool, "valgrind", "Run the native tests under valgrind memcheck") orelse false;
    // Code for the native CPU may use AVX-512, which valgrind cannot run.
    const target = b.standardTargetOptions(.{ .default_target = if (valgrind) .{ .cpu_model = .baseline } else .{} });
    const optimize = b.standardOptimizeOption(.{});

    // libc is not optional: without it std.Thread spawns threads with raw clone() instead
    // of pthread_create, and Deno crashes when such a thread calls a JS callback.
    //
    // LLVM is not optional either: Zig 0.15's own x86_64 backend (the default for Debug)
    // emits a library that crashes in its first futex wait once loaded with dlopen, which
    // is exactly how Deno and Bun load it.
    const library = b.addLibrary(.{
        .name = "refscope",
        .linkage = .dynamic,
        .use_llvm = true,
        .root_module = b.createModule(.{
            .root_source_file = b.path("native/src/abi.zig"),
            .target = target,
            .optimize = optimize,
            .link_libc = true,
            // Zig links its TSan runtime into each artifact built with it, and two in one
            // process crash: so the C tests, which link this library, run with its runtime
            // (whose interceptors it exports) and are not instrumented themselves.
            .sanitize_thread = sanitize_thread,
        }),
    });
    b.installArtifact(library);
    b.getInstallStep().dependOn(&b.addInstallHeaderFile(b.path("native/include/refscope.h"), "refscope.h").step);

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
    const unit_tests = b.addTest(.{
        // The self-hosted backend (Debug's default) ignores sanitize_thread, and writes
        // debug info that valgrind cannot read.
        .use_llvm = if (sanitize_thread or valgrind) true else null,
        .root_module = b.createModule(.{
            .root_source_file = b.path("native/src/abi.zig"),
            .target = target,
            .optimize = optimize,
            .link_libc = true,
            .sanitize_thread = sanitize_thread,
        }),
    });
    test_step.dependOn(&b.addRunArtifact(unit_tests).step);

    // C programs that use the header against the library: abi_test checks the declarations,
    // layouts and lifecycle; misuse_test is the misuse catalogue at the C ABI.
    for ([_][]const u8{ "abi_test", "misuse_test" }) |name| {
        test_step.dependOn(&addCTest(b, name, library, target, optimize).step);
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
}

/// Builds native/test/<name>.c against the header and the library; the returned run step
/// fails when the program exits non-zero.
fn addCTest(
    b: *std.Build,
    name: []const u8,
    library: *std.Build.Step.Compile,
    target: std.Build.ResolvedTarget,
    optimize: std.builtin.OptimizeMode,
) *std.Build.Step.Run {
    const c_test = b.addExecutable(.{
        .name = name,
        .root_module = b.createModule(.{ .target = target, .optimize = optimize, .link_libc = true }),
    });
    c_test.root_module.addCSourceFile(.{ .file = b.path(b.fmt("native/test/{s}.c", .{name})), .flags = &.{ "-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread" } });
    c_test.root_module.addIncludePath(b.path("native/include"));
    c_test.root_module.linkLibrary(library);
    return b.addRunArtifact(c_test);
}
