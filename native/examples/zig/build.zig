//! A Zig program that depends on refscope as a package (see build.zig.zon): it imports the
//! `refscope` module, which links librefscope.
//!
//!   zig build run     build and run it
//!   zig build         install it to zig-out/ (bin/refscope-example, lib/librefscope.so)

const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});

    // Options passed here reach refscope's own build.zig: the library is built for the same
    // target and mode as this program.
    const refscope = b.dependency("refscope", .{ .target = target, .optimize = optimize });

    const exe = b.addExecutable(.{
        .name = "refscope-example",
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/main.zig"),
            .target = target,
            .optimize = optimize,
            .imports = &.{.{ .name = "refscope", .module = refscope.module("refscope") }},
        }),
    });
    // Linking a shared library from the build gives the program an rpath to the library in
    // the build cache, which is enough for `zig build run`. An installed program finds the
    // library installed next to it instead: bin/../lib (Windows looks in bin/, where the
    // DLL is installed).
    if (target.result.os.tag.isDarwin()) {
        exe.root_module.addRPathSpecial("@loader_path/../lib");
    } else if (target.result.os.tag != .windows) {
        exe.root_module.addRPathSpecial("$ORIGIN/../lib");
    }
    b.installArtifact(exe);
    b.installArtifact(refscope.artifact("refscope"));

    const run = b.addRunArtifact(exe);
    run.step.dependOn(b.getInstallStep());
    b.step("run", "Run the example").dependOn(&run.step);
}
