//! Keeps the shared library that contains this file loaded for the rest of the process,
//! once it has started a thread (librefscope, and the test-only librefscope_testkit).
//!
//! A dispatcher thread runs code from this library. If the host unloads the library while
//! that thread exists (Deno `dlclose`s FFI libraries when an isolate shuts down, even at
//! process exit), the thread's next instruction is in unmapped memory and the process
//! crashes. So before the first thread starts, the library takes a reference to itself
//! with RTLD_NODELETE: later `dlclose` calls by the host then never unmap it. This is the
//! usual cure for thread-owning shared libraries; Zig's build API has no `-z nodelete`.
//! (Bun also unloads an FFI library when its JS object is garbage-collected.)

const std = @import("std");
const builtin = @import("builtin");

const DlInfo = extern struct {
    dli_fname: ?[*:0]const u8,
    dli_fbase: ?*anyopaque,
    dli_sname: ?[*:0]const u8,
    dli_saddr: ?*anyopaque,
};
extern "c" fn dladdr(address: *const anyopaque, info: *DlInfo) c_int;

var once = std.once(pinOnce);
var pinned: bool = false;

/// Pins the library (once per process). False when it could not: then no thread may start.
pub fn pin() bool {
    once.call();
    return pinned;
}

fn pinOnce() void {
    switch (builtin.os.tag) {
        .linux, .macos, .freebsd, .netbsd, .openbsd, .dragonfly => {},
        // TODO(windows): GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_PIN, ...).
        else => {
            pinned = true;
            return;
        },
    }
    var info: DlInfo = undefined;
    if (dladdr(@ptrCast(&pinOnce), &info) == 0) return;
    const path = info.dli_fname orelse return;
    // The handle is deliberately never closed: it is the reference that keeps us loaded.
    pinned = std.c.dlopen(path, .{ .NOW = true, .NOLOAD = true, .NODELETE = true }) != null;
}
