//! Runs cleanup when a thread that opened sinks exits without closing them.
//!
//! A sink belongs to the JS thread that opened it (the main thread or a Worker). When a
//! Worker is terminated, its thread exits and its isolate is gone: nothing will ever drain
//! that sink, and its wake must never be called again. A POSIX thread-specific key with a
//! destructor notices the exit and closes each such sink, which releases every reference
//! the sink held on its behalf. (The process's main thread never runs these destructors;
//! nor does it need to: its exit ends everything.)
//!
//! A registration names its counter by registry key and its sink by index and generation,
//! never by pointer, so a registration whose sink was closed explicitly (or whose counter
//! was freed) finds nothing and does nothing. Each thread touches only its own record, so
//! no lock is needed here.

const std = @import("std");
const builtin = @import("builtin");

/// What the counter layer provides: closing an abandoned sink, and telling whether a sink
/// is still open. Both do nothing (false) for a counter or sink that no longer exists.
pub const Hooks = struct {
    close: *const fn (key: f64, sink: u32, generation: u32) void,
    is_open: *const fn (key: f64, sink: u32, generation: u32) bool,
};

const Registration = struct { key: f64, sink: u32, generation: u32 };

/// The `sink` of a registration that stands for the counter's opener (see
/// `Counter.destroyOnThreadExit`) rather than for one of its sinks.
pub const opener: u32 = std.math.maxInt(u32);
const registrations_max = 64;

/// The sinks one thread opened (some may have been closed since).
const ThreadSinks = struct {
    /// Kept per thread, like everything here: threads track sinks concurrently.
    hooks: Hooks,
    count: usize = 0,
    registrations: [registrations_max]Registration = undefined,
};

const pthread_key_t = c_uint;
extern "c" fn pthread_key_create(key: *pthread_key_t, destructor: ?*const fn (?*anyopaque) callconv(.c) void) c_int;
extern "c" fn pthread_getspecific(key: pthread_key_t) ?*anyopaque;
extern "c" fn pthread_setspecific(key: pthread_key_t, value: ?*const anyopaque) c_int;

const supported = switch (builtin.os.tag) {
    .linux, .macos, .freebsd, .netbsd, .openbsd, .dragonfly => true,
    else => false, // TODO(windows): FlsAlloc with a callback.
};

var key_once = std.once(createKey);
var thread_key: pthread_key_t = 0;
var key_ok = false;

fn createKey() void {
    key_ok = pthread_key_create(&thread_key, onThreadExit) == 0;
}

/// Records that the calling thread opened the sink. False when it cannot be tracked (too
/// many sinks opened on this thread, or no memory): the caller should then refuse the sink.
pub fn track(registration_key: f64, sink: u32, generation: u32, counter_hooks: Hooks) bool {
    if (!supported) return true;
    key_once.call();
    if (!key_ok) return false;
    const existing = pthread_getspecific(thread_key);
    const sinks: *ThreadSinks = if (existing) |pointer| @ptrCast(@alignCast(pointer)) else blk: {
        const created = std.heap.c_allocator.create(ThreadSinks) catch return false;
        created.* = .{ .hooks = counter_hooks };
        if (pthread_setspecific(thread_key, created) != 0) {
            std.heap.c_allocator.destroy(created);
            return false;
        }
        break :blk created;
    };
    if (sinks.count == registrations_max) {
        // A thread that opens and closes many counters fills its record with closed sinks:
        // forget those, keeping every open one.
        var kept: usize = 0;
        for (sinks.registrations[0..sinks.count]) |registration| {
            if (!counter_hooks.is_open(registration.key, registration.sink, registration.generation)) continue;
            sinks.registrations[kept] = registration;
            kept += 1;
        }
        sinks.count = kept;
        if (kept == registrations_max) return false;
    }
    sinks.registrations[sinks.count] = .{ .key = registration_key, .sink = sink, .generation = generation };
    sinks.count += 1;
    return true;
}

fn onThreadExit(value: ?*anyopaque) callconv(.c) void {
    const sinks: *ThreadSinks = @ptrCast(@alignCast(value orelse return));
    defer std.heap.c_allocator.destroy(sinks);
    // Sinks first: a counter this thread opened must not route its closing deliveries to
    // this thread's own sink, whose isolate is gone.
    for ([_]bool{ false, true }) |openers| {
        for (sinks.registrations[0..sinks.count]) |registration| {
            if ((registration.sink == opener) != openers) continue;
            sinks.hooks.close(registration.key, registration.sink, registration.generation);
        }
    }
}
