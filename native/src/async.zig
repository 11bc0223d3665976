//! An event-loop wake (`refscope_async_*`): for a runtime whose FFI makes no callback that
//! a foreign thread may call (Node's `node:ffi`), but whose event loop a foreign thread can
//! signal through `int send(void *handle)` (libuv's `uv_async_send`).
//!
//! The record is allocated here, not by the runtime: the waker thread may be inside a wake
//! while the runtime tears its heap down at exit, and this memory outlives that. Its handle
//! bytes are zeroed and 16-byte aligned; the caller initialises them on its loop's thread
//! (`uv_async_init`). `wake` is a `refscope_wake_fn` whose context is the record: it calls
//! `send(handle)`, type-correctly (the runtime could not hand over `uv_async_send` itself
//! as a `void (*)(void *)` without a mistyped call).

const std = @import("std");

pub const SendFunction = *const fn (handle: ?*anyopaque) callconv(.c) c_int;

/// The largest handle accepted: libuv's `uv_async_t` is 128 bytes on 64-bit Linux.
pub const handle_size_max: u32 = 64 * 1024;

const alignment: std.mem.Alignment = .@"16";

pub const Async = struct {
    send: SendFunction,
    /// Bytes allocated in all, this header included.
    length: usize,

    const header = alignment.forward(@sizeOf(Async));

    /// A record with `handle_size` zeroed bytes of handle after the header.
    pub fn create(allocator: std.mem.Allocator, send: SendFunction, handle_size: u32) error{ InvalidArgument, OutOfMemory }!*Async {
        if (handle_size == 0 or handle_size > handle_size_max) return error.InvalidArgument;
        const length = header + handle_size;
        const bytes = try allocator.alignedAlloc(u8, alignment, length);
        @memset(bytes, 0);
        const async_wake: *Async = @ptrCast(bytes.ptr);
        async_wake.* = .{ .send = send, .length = length };
        return async_wake;
    }

    pub fn handle(async_wake: *Async) *anyopaque {
        const base: [*]align(16) u8 = @ptrCast(@alignCast(async_wake));
        return base + header;
    }

    pub fn destroy(async_wake: *Async, allocator: std.mem.Allocator) void {
        const base: [*]align(16) u8 = @ptrCast(@alignCast(async_wake));
        allocator.free(base[0..async_wake.length]);
    }

    /// A `refscope_wake_fn`: signals the loop. Called on the sink's waker thread.
    pub fn wake(context: ?*anyopaque) callconv(.c) void {
        const async_wake: *Async = @ptrCast(@alignCast(context orelse return));
        // libuv's result is 0, or an error that only a closing handle reports: the wake
        // is a signal, and the sink's owner stops wakes before it closes the handle.
        _ = async_wake.send(async_wake.handle());
    }
};

test "a wake calls send with the record's handle, 16-byte aligned and zeroed" {
    const Probe = struct {
        var seen: ?*anyopaque = null;
        var calls: u32 = 0;
        fn send(handle: ?*anyopaque) callconv(.c) c_int {
            seen = handle;
            calls += 1;
            return 0;
        }
    };
    const allocator = std.testing.allocator;
    try std.testing.expectError(error.InvalidArgument, Async.create(allocator, Probe.send, 0));
    try std.testing.expectError(error.InvalidArgument, Async.create(allocator, Probe.send, handle_size_max + 1));
    const async_wake = try Async.create(allocator, Probe.send, 128);
    defer async_wake.destroy(allocator);
    const handle: [*]u8 = @ptrCast(async_wake.handle());
    try std.testing.expect(@intFromPtr(handle) % 16 == 0);
    for (handle[0..128]) |byte| try std.testing.expectEqual(@as(u8, 0), byte);
    Async.wake(async_wake);
    Async.wake(null);
    try std.testing.expectEqual(@as(u32, 1), Probe.calls);
    try std.testing.expectEqual(@as(?*anyopaque, async_wake.handle()), Probe.seen);
}
