//! Runs cleanup when a thread that opened sinks exits without closing them.
//!
//! A sink belongs to the JS thread that opened it (the main thread or a Worker). When a
//! Worker is terminated, its thread exits and its isolate is gone: nothing will ever drain
//! that sink, and its wake must never be called again. A POSIX thread-specific key with a
//! destructor notices the exit and closes each such sink, which releases every reference
//! the sink held on its behalf; on Windows a fiber-local storage slot's callback does the
//! same. (The process's exit runs none of this: it ends everything anyway.)
//!
//! A registration names its counter by registry key and its sink by index and generation,
//! never by pointer, so a registration whose sink was closed explicitly (or whose counter
//! was freed) finds nothing and does nothing. Each thread touches only its own record, so
//! no lock is needed here.

const std = @import("std");
const builtin = @import("builtin");
const sync = @import("sync.zig");

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
/// Registrations one thread may hold at once: one per sink it opened, one per counter it
/// opened (a JS thread that opens a counter uses two).
pub const registrations_max = 128;

/// The sinks one thread opened (some may have been closed since).
const ThreadSinks = struct {
    /// Kept per thread, like everything here: threads track sinks concurrently.
    hooks: Hooks,
    count: usize = 0,
    registrations: [registrations_max]Registration = undefined,
};

/// The calling thread's `ThreadSinks`, in a slot whose destructor runs when the thread
/// exits: `create` (once), `get`, `set`.
const Slot = switch (builtin.os.tag) {
    .linux, .macos, .freebsd, .netbsd, .openbsd, .dragonfly => PthreadSlot,
    .windows => FlsSlot,
    else => void,
};
const supported = Slot != void;

const PthreadSlot = struct {
    /// An unsigned long on Darwin, a 32-bit integer elsewhere: declared too narrow, the key
    /// would have pthread_key_create write past it.
    const Key = switch (builtin.os.tag) {
        .macos => c_ulong,
        else => c_uint,
    };
    extern "c" fn pthread_key_create(key: *Key, destructor: ?*const fn (?*anyopaque) callconv(.c) void) c_int;
    extern "c" fn pthread_getspecific(key: Key) ?*anyopaque;
    extern "c" fn pthread_setspecific(key: Key, value: ?*const anyopaque) c_int;

    var key: Key = 0;

    fn create() bool {
        return pthread_key_create(&key, destroy) == 0;
    }

    fn get() ?*anyopaque {
        return pthread_getspecific(key);
    }

    fn set(value: *anyopaque) bool {
        return pthread_setspecific(key, value) == 0;
    }

    /// Not run for the thread that calls exit(), which is how the process ends.
    fn destroy(value: ?*anyopaque) callconv(.c) void {
        onThreadExit(value);
    }
};

/// Fiber-local storage: unlike TLS (which has no destructor) its callback runs when a
/// thread exits, outside the loader lock. JS runtimes' threads never switch fibers, so
/// per fiber is per thread here. Compiled for Windows in CI, but never run there: no
/// Windows machine runs the tests.
const FlsSlot = struct {
    // Not in Zig 0.17's std.os.windows.
    const FLS_OUT_OF_INDEXES: u32 = 0xFFFFFFFF;
    extern "kernel32" fn FlsAlloc(callback: ?*const fn (?*anyopaque) callconv(.winapi) void) callconv(.winapi) u32;
    extern "kernel32" fn FlsGetValue(index: u32) callconv(.winapi) ?*anyopaque;
    extern "kernel32" fn FlsSetValue(index: u32, value: ?*anyopaque) callconv(.winapi) c_int;
    extern "ntdll" fn RtlDllShutdownInProgress() callconv(.winapi) u8;

    var index: u32 = FLS_OUT_OF_INDEXES;

    /// The index is never freed: FlsFree would run the callback for every thread at once,
    /// and the library is pinned (see `pin.zig`), so nothing unloads the callback's code.
    fn create() bool {
        index = FlsAlloc(destroy);
        return index != FLS_OUT_OF_INDEXES;
    }

    fn get() ?*anyopaque {
        return FlsGetValue(index);
    }

    fn set(value: *anyopaque) bool {
        return FlsSetValue(index, value) != 0;
    }

    fn destroy(value: ?*anyopaque) callconv(.winapi) void {
        // Unlike a pthread key's, the callback also runs for the thread that ends the
        // process (LdrShutdownProcess), after every other thread was killed wherever it
        // was, perhaps holding a counter's lock: closing sinks then could hang the exit.
        // The loader sets the flag this reads before it runs the callbacks.
        if (RtlDllShutdownInProgress() != 0) return;
        onThreadExit(value);
    }
};

var slot_once: sync.Once(createSlot) = .{};
var slot_ok = false;

fn createSlot() void {
    slot_ok = Slot.create();
}

/// Makes room in the calling thread's record for one more registration, which `record`
/// then fills: reserve, then commit, so that a caller never has to undo what it opened
/// because it could not be tracked. `ThreadLimit` when this thread already takes part in
/// `registrations_max` counters that are still open; `OutOfMemory` when no record could be
/// made.
pub fn reserve(counter_hooks: Hooks) error{ ThreadLimit, OutOfMemory }!void {
    if (!supported) return;
    slot_once.call();
    if (!slot_ok) return error.OutOfMemory;
    const sinks: *ThreadSinks = if (Slot.get()) |pointer| @ptrCast(@alignCast(pointer)) else blk: {
        const created = std.heap.c_allocator.create(ThreadSinks) catch return error.OutOfMemory;
        created.* = .{ .hooks = counter_hooks };
        if (!Slot.set(created)) {
            std.heap.c_allocator.destroy(created);
            return error.OutOfMemory;
        }
        break :blk created;
    };
    if (sinks.count < registrations_max) return;
    // A thread that opens and closes many counters fills its record with closed sinks:
    // forget those, keeping every open one.
    var kept: usize = 0;
    for (sinks.registrations[0..sinks.count]) |registration| {
        if (!counter_hooks.is_open(registration.key, registration.sink, registration.generation)) continue;
        sinks.registrations[kept] = registration;
        kept += 1;
    }
    sinks.count = kept;
    if (kept == registrations_max) return error.ThreadLimit;
}

/// Records that the calling thread opened the sink (or, with `opener`, the counter), in
/// the room that `reserve` made on this thread, with no call in between that could have
/// used it.
pub fn record(registration_key: f64, sink: u32, generation: u32) void {
    if (!supported) return;
    const sinks: *ThreadSinks = @ptrCast(@alignCast(Slot.get().?));
    std.debug.assert(sinks.count < registrations_max);
    sinks.registrations[sinks.count] = .{ .key = registration_key, .sink = sink, .generation = generation };
    sinks.count += 1;
}

fn onThreadExit(value: ?*anyopaque) void {
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
