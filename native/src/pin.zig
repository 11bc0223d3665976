//! Keeps the shared library that contains this file loaded for the rest of the process,
//! once it has started a thread (librefscope, and the test-only librefscope_testkit).
//!
//! A dispatcher thread runs code from this library. If the host unloads the library while
//! that thread exists (Deno `dlclose`s FFI libraries when an isolate shuts down, even at
//! process exit), the thread's next instruction is in unmapped memory and the process
//! crashes. So before the first thread starts, the library takes a reference to itself
//! that no unload can drop: later `dlclose`/`FreeLibrary` calls by the host then never
//! unmap it. This is the usual cure for thread-owning shared libraries; Zig's build API
//! has no `-z nodelete`. (Bun also unloads an FFI library when its JS object is
//! garbage-collected.)

const std = @import("std");
const builtin = @import("builtin");
const sync = @import("sync.zig");

const DlInfo = extern struct {
    dli_fname: ?[*:0]const u8,
    dli_fbase: ?*anyopaque,
    dli_sname: ?[*:0]const u8,
    dli_saddr: ?*anyopaque,
};
extern "c" fn dladdr(address: *const anyopaque, info: *DlInfo) c_int;

// Not in Zig 0.17's std.os.windows.
const GET_MODULE_HANDLE_EX_FLAG_PIN: u32 = 0x1;
const GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS: u32 = 0x4;
extern "kernel32" fn GetModuleHandleExW(
    flags: u32,
    /// With FLAG_FROM_ADDRESS: any address inside the module, instead of its name.
    module_name: *const anyopaque,
    module: *?*anyopaque,
) callconv(.winapi) c_int;

var once: sync.Once(pinOnce) = .{};
var pinned: bool = false;

/// Pins the library (once per process). False when it could not: then no thread may start.
pub fn pin() bool {
    once.call();
    return pinned;
}

fn pinOnce() void {
    pinned = switch (builtin.os.tag) {
        .linux, .macos, .freebsd, .netbsd, .openbsd, .dragonfly => pinWithDlopen(),
        .windows => pinWithModuleHandle(),
        else => true,
    };
}

/// Opens the library again by its own path, with RTLD_NODELETE (honoured by glibc, musl
/// and macOS's dyld alike). The handle is deliberately never closed: it is the reference
/// that keeps us loaded.
fn pinWithDlopen() bool {
    var info: DlInfo = undefined;
    if (dladdr(@ptrCast(&pinOnce), &info) == 0) return false;
    const path = info.dli_fname orelse return false;
    return std.c.dlopen(path, .{ .NOW = true, .NOLOAD = true, .NODELETE = true }) != null;
}

/// FLAG_PIN marks the DLL as never to be unloaded, whatever FreeLibrary calls follow; the
/// handle it returns needs no release. (Compiled for Windows in CI, but never run there:
/// no Windows machine runs the tests.)
fn pinWithModuleHandle() bool {
    var module: ?*anyopaque = null;
    const flags = GET_MODULE_HANDLE_EX_FLAG_PIN | GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS;
    return GetModuleHandleExW(flags, @ptrCast(&pinOnce), &module) != 0;
}
