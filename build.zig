//! Builds librefscope (the shared library that Deno and Bun load), its C header, the
//! test-only companion library librefscope_testkit, and runs the Zig tests.
//!
//!   zig build                     install to zig-out/ (lib/, include/)
//!   zig build --release=safe      the optimised build the JS side loads
//!   zig build test                the native test suite

const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
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
        .root_module = b.createModule(.{
            .root_source_file = b.path("native/src/abi.zig"),
            .target = target,
            .optimize = optimize,
            .link_libc = true,
        }),
    });
    test_step.dependOn(&b.addRunArtifact(unit_tests).step);

    // The header checked against the library by a C program that uses it.
    const c_test = b.addExecutable(.{
        .name = "abi_test",
        .root_module = b.createModule(.{ .target = target, .optimize = optimize, .link_libc = true }),
    });
    c_test.root_module.addCSourceFile(.{ .file = b.path("native/test/abi_test.c"), .flags = &.{ "-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread" } });
    c_test.root_module.addIncludePath(b.path("native/include"));
    c_test.root_module.linkLibrary(library);
    test_step.dependOn(&b.addRunArtifact(c_test).step);
}
