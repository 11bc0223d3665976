//! One entry of native/npm/platforms.json, the one list of platforms with a prebuilt library
//! on npm. build.zig (the `dist` step), native/tools/check_dist.zig and the resolver package
//! (@refscope/native, with .ci/dist.mjs) read that list; the Zig ones parse it with this.

/// A platform package: @refscope/<name>, holding `file` built for `zig`.
pub const Platform = struct {
    /// The package is @refscope/<name>.
    name: []const u8,
    /// The Zig target triple: where every expectation about the library comes from.
    zig: []const u8,
    /// npm's `os` and `cpu` (Node's process.platform and process.arch) and, on Linux only,
    /// `libc` ("glibc" or "musl"): what the package's package.json must say.
    os: []const u8,
    cpu: []const u8,
    libc: ?[]const u8,
    /// The library's file name in the package.
    file: []const u8,
};
