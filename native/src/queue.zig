//! The callback queue: where callbacks wait between leaving the table and being run.
//!
//! Native callbacks wait in one FIFO that the dispatcher thread pops. Sink callbacks (tokens
//! for a JS runtime instance) wait in that sink's outbox, which its owner drains in batches.
//! Routing is O(1) per callback and never allocates: nodes are relinked, not copied.
//!
//! Each sink has a coalescing wake, in the manner of libuv's `uv_async_t`: the first token
//! into a sink that is not `armed` arms it and asks for one wake; later tokens ride on that
//! wake; a drain that finds the outbox empty disarms it (cancelling a wake not yet made),
//! so the next token asks again. The wake carries no data. When the sink's own thread
//! caused the release (`caller`), the wake is skipped and the caller is told to drain
//! instead: a JS release then costs no thread hop at all.
//!
//! A sink's wakes are made by its own waker thread (`dispatcher.waker`), because a wake
//! may block: a Deno thread-safe callback waits until its JS thread has run it, and never
//! returns if that thread's Worker is terminated meanwhile. So one busy or dead JS thread
//! delays only its own wakes, never native callbacks or another sink's.
//!
//! Not thread-safe; the counter's mutex guards it.

const std = @import("std");
const assert = std.debug.assert;
const callback = @import("callback.zig");

/// Sinks per counter: one per JS runtime instance (the main thread and each Worker).
pub const sink_count_max = 64;
pub const sink_none: u32 = std.math.maxInt(u32);

/// Called on the sink's waker thread, with no lock held, to tell its owner to drain.
pub const WakeFunction = *const fn (context: ?*anyopaque) callconv(.c) void;

pub const Sink = struct {
    /// The slot is in use: open, or closing.
    open: bool = false,
    /// Closed to new tokens and wakes, but not yet free: its waker may still be running.
    closing: bool = false,
    /// Closing because its thread exited: the waker finishes the close, as nobody else will.
    abandoned: bool = false,
    /// A waker thread serves the sink (it has a wake) and has not exited. The owner may
    /// free its wake callback only once the sink is closing and this is false.
    waker_running: bool = false,
    /// Bumped at each open, so that a closed sink's index reused by a new sink is told
    /// apart (by the thread-exit hook).
    generation: u32 = 0,
    wake: ?WakeFunction = null,
    wake_context: ?*anyopaque = null,
    /// The waker waits on this, with the counter's mutex.
    condition: std.Thread.Condition = .{},
    outbox: callback.List = .{},
    /// A drain is due: a wake was requested or the owner was told to drain. Cleared only
    /// by a drain that finds the outbox empty.
    armed: bool = false,
    /// The waker owes this sink a wake call. Invariant: `wake_requested => armed`.
    wake_requested: bool = false,
};

/// A native callback copied out of its node, to run with no lock held.
pub const Job = struct {
    function: callback.Function,
    context: ?*anyopaque,
    id: f64,
};

/// A wake copied out of its sink, to call with no lock held.
pub const Wake = struct {
    function: WakeFunction,
    context: ?*anyopaque,
};

pub const Routed = struct {
    /// The calling sink received tokens and was not armed: the caller must drain.
    drain_caller: bool = false,
    /// The dispatcher has new native callbacks.
    signal_dispatcher: bool = false,
    /// Sinks whose wakers have a wake to make (bit i: sink i).
    wake_sinks: u64 = 0,
    /// Tokens dropped because their sink is closed.
    discarded: u32 = 0,
};

pub const Queue = struct {
    native: callback.List = .{},
    sinks: [sink_count_max]Sink = [_]Sink{.{}} ** sink_count_max,

    comptime {
        assert(sink_count_max <= @bitSizeOf(@FieldType(Routed, "wake_sinks")));
    }

    pub fn sinkOpen(queue: *Queue, wake: ?WakeFunction, wake_context: ?*anyopaque) error{Limit}!u32 {
        for (&queue.sinks, 0..) |*sink, index| {
            if (sink.open) continue;
            assert(sink.outbox.len == 0 and !sink.armed and !sink.wake_requested and !sink.waker_running);
            const generation = sink.generation +% 1; // A temporary: `sink.*` is being written.
            sink.* = .{
                .open = true,
                .generation = generation,
                .wake = wake,
                .wake_context = wake_context,
                .waker_running = wake != null,
            };
            return @intCast(index);
        }
        return error.Limit;
    }

    /// An open sink, not closing.
    pub fn isSink(queue: *const Queue, sink: u32) bool {
        return sink < sink_count_max and queue.sinks[sink].open and !queue.sinks[sink].closing;
    }

    /// A slot in use: open, or closing with a wake in flight.
    pub fn isSinkSlot(queue: *const Queue, sink: u32) bool {
        return sink < sink_count_max and queue.sinks[sink].open;
    }

    pub fn isSinkGeneration(queue: *const Queue, sink: u32, generation: u32) bool {
        return queue.isSinkSlot(sink) and queue.sinks[sink].generation == generation;
    }

    /// True when the dispatcher has nothing to do.
    pub fn isIdle(queue: *const Queue) bool {
        return queue.native.len == 0;
    }

    /// Moves every callback of `released` to its destination, preserving order per
    /// destination (so each object's callbacks keep their registration order).
    pub fn route(queue: *Queue, pool: *callback.Pool, released: *callback.List, caller_sink: u32) Routed {
        var routed: Routed = .{};
        while (true) {
            const index = released.pop(pool);
            if (index == callback.nil) break;
            switch (pool.at(index).callback) {
                .native => {
                    queue.native.push(pool, index);
                    routed.signal_dispatcher = true;
                },
                .sink => |target| {
                    if (!queue.isSink(target.sink)) {
                        // The sink closed (its JS thread is gone): nobody can run this.
                        pool.destroy(index);
                        routed.discarded += 1;
                        continue;
                    }
                    const sink = &queue.sinks[target.sink];
                    sink.outbox.push(pool, index);
                    if (sink.armed) continue;
                    sink.armed = true;
                    if (target.sink == caller_sink) {
                        routed.drain_caller = true;
                    } else if (sink.wake != null) {
                        assert(!sink.wake_requested);
                        sink.wake_requested = true;
                        routed.wake_sinks |= @as(u64, 1) << @intCast(target.sink);
                    }
                },
            }
        }
        assert(released.len == 0);
        return routed;
    }

    /// Pops up to `jobs.len` native callbacks, returning their nodes to the pool.
    pub fn popNative(queue: *Queue, pool: *callback.Pool, jobs: []Job) usize {
        var count: usize = 0;
        while (count < jobs.len) : (count += 1) {
            const index = queue.native.pop(pool);
            if (index == callback.nil) break;
            const node = pool.at(index);
            jobs[count] = .{
                .function = node.callback.native.function,
                .context = node.callback.native.context,
                .id = node.object_id,
            };
            pool.destroy(index);
        }
        return count;
    }

    /// The waker's next wake to make for the sink, or null when there is none (yet). The
    /// sink stays armed until drained empty.
    pub fn takeWake(queue: *Queue, sink_index: u32) ?Wake {
        const sink = &queue.sinks[sink_index];
        if (!sink.wake_requested or sink.closing) return null;
        assert(sink.armed and sink.open);
        sink.wake_requested = false;
        return .{ .function = sink.wake.?, .context = sink.wake_context };
    }

    /// Copies up to `tokens.len` tokens out of the sink's outbox, in order. Returning zero
    /// disarms the sink (cancelling a wake not yet sent), so that the next token asks for a
    /// wake again. The owner may drain at any time, not only when woken.
    pub fn drain(queue: *Queue, pool: *callback.Pool, sink_index: u32, tokens: []u32) usize {
        assert(queue.isSink(sink_index));
        const sink = &queue.sinks[sink_index];
        var count: usize = 0;
        while (count < tokens.len) : (count += 1) {
            const index = sink.outbox.pop(pool);
            if (index == callback.nil) break;
            tokens[count] = pool.at(index).callback.sink.token;
            pool.destroy(index);
        }
        if (count == 0 and tokens.len > 0) {
            // Disarm, and cancel a wake still owed: the owner has just seen the outbox
            // empty, so that wake would announce nothing. This keeps the invariant
            // `wake_requested => armed`, so the next token requests a wake afresh.
            sink.armed = false;
            sink.wake_requested = false;
        }
        return count;
    }

    /// Starts closing a sink: drops its undelivered tokens, cancels a wake it is owed, and
    /// refuses it new tokens and wakes. Returns how many tokens were dropped. The slot is
    /// freed by `sinkFree` once its waker has exited (the caller signals the waker).
    pub fn sinkClose(queue: *Queue, pool: *callback.Pool, sink_index: u32) u32 {
        assert(queue.isSinkSlot(sink_index));
        const sink = &queue.sinks[sink_index];
        if (sink.closing) return 0;
        const dropped = sink.outbox.len;
        sink.outbox.clear(pool);
        sink.wake_requested = false;
        sink.armed = false;
        sink.closing = true;
        return dropped;
    }

    /// Frees the slot for a later `sinkOpen`. Only `open` changes: `closing` stays set, so
    /// that a thread that reads the sink without the queue's lock (holding just a table
    /// shard's) never sees it as open.
    pub fn sinkFree(queue: *Queue, sink_index: u32) void {
        const sink = &queue.sinks[sink_index];
        assert(sink.open and sink.closing and !sink.waker_running and sink.outbox.len == 0);
        sink.open = false;
    }

    /// Returns every queued node to the pool, for teardown after the dispatcher has exited
    /// and sinks were abandoned with tokens in them.
    pub fn discardAll(queue: *Queue, pool: *callback.Pool) void {
        assert(queue.native.len == 0);
        for (&queue.sinks) |*sink| {
            while (true) {
                const index = sink.outbox.pop(pool);
                if (index == callback.nil) break;
                pool.destroy(index);
            }
            const generation = sink.generation;
            sink.* = .{ .generation = generation };
        }
    }
};

const testing = std.testing;

fn noopWake(_: ?*anyopaque) callconv(.c) void {}
fn noopCallback(_: f64, _: ?*anyopaque) callconv(.c) void {}

fn releasedList(pool: *callback.Pool, callbacks: []const callback.Callback) !callback.List {
    var list: callback.List = .{};
    for (callbacks) |cb| list.push(pool, try pool.create(testing.allocator, .{ .callback = cb, .object_id = 0 }));
    return list;
}

fn wakeBit(sink: u32) u64 {
    return @as(u64, 1) << @intCast(sink);
}

test "one wake per batch: the first token arms the sink, a drain to empty disarms it" {
    var pool: callback.Pool = .{};
    defer pool.deinit(testing.allocator);
    var queue: Queue = .{};
    const sink = try queue.sinkOpen(noopWake, null);
    var tokens: [8]u32 = undefined;

    var first = try releasedList(&pool, &.{ .{ .sink = .{ .sink = sink, .token = 1 } }, .{ .sink = .{ .sink = sink, .token = 2 } } });
    try testing.expectEqual(Routed{ .wake_sinks = wakeBit(sink) }, queue.route(&pool, &first, sink_none));
    var second = try releasedList(&pool, &.{.{ .sink = .{ .sink = sink, .token = 3 } }});
    try testing.expectEqual(Routed{}, queue.route(&pool, &second, sink_none));
    try testing.expect(queue.takeWake(sink) != null);
    try testing.expect(queue.takeWake(sink) == null);

    try testing.expectEqual(@as(usize, 3), queue.drain(&pool, sink, &tokens));
    try testing.expectEqualSlices(u32, &.{ 1, 2, 3 }, tokens[0..3]);
    try testing.expect(queue.sinks[sink].armed);
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, sink, &tokens));
    try testing.expect(!queue.sinks[sink].armed);

    var third = try releasedList(&pool, &.{.{ .sink = .{ .sink = sink, .token = 4 } }});
    try testing.expectEqual(Routed{ .wake_sinks = wakeBit(sink) }, queue.route(&pool, &third, sink_none));
    try testing.expect(queue.takeWake(sink) != null);
    try testing.expectEqual(@as(usize, 1), queue.drain(&pool, sink, &tokens));
    try testing.expectEqual(@as(usize, 0), pool.countInUse());
}

test "an owner that drains before its wake is made cancels the wake, and is woken again later" {
    var pool: callback.Pool = .{};
    defer pool.deinit(testing.allocator);
    var queue: Queue = .{};
    const sink = try queue.sinkOpen(noopWake, null);
    var tokens: [8]u32 = undefined;

    // A token from another thread owes a wake; the waker has not made it yet when the
    // owner drains on its own (closing, or before exit).
    var first = try releasedList(&pool, &.{.{ .sink = .{ .sink = sink, .token = 1 } }});
    try testing.expectEqual(Routed{ .wake_sinks = wakeBit(sink) }, queue.route(&pool, &first, sink_none));
    try testing.expectEqual(@as(usize, 1), queue.drain(&pool, sink, &tokens));
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, sink, &tokens));
    try testing.expect(!queue.sinks[sink].armed and !queue.sinks[sink].wake_requested);
    try testing.expect(queue.takeWake(sink) == null);

    // The next token requests a wake afresh.
    var second = try releasedList(&pool, &.{.{ .sink = .{ .sink = sink, .token = 2 } }});
    try testing.expectEqual(Routed{ .wake_sinks = wakeBit(sink) }, queue.route(&pool, &second, sink_none));
    try testing.expect(queue.takeWake(sink) != null);
    try testing.expectEqual(@as(usize, 1), queue.drain(&pool, sink, &tokens));
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, sink, &tokens));
}

test "the calling sink is told to drain instead of being woken; a closing sink drops tokens" {
    var pool: callback.Pool = .{};
    defer pool.deinit(testing.allocator);
    var queue: Queue = .{};
    const sink = try queue.sinkOpen(noopWake, null);
    var tokens: [8]u32 = undefined;

    var list = try releasedList(&pool, &.{
        .{ .sink = .{ .sink = sink, .token = 1 } },
        .{ .native = .{ .function = noopCallback, .context = null } },
    });
    try testing.expectEqual(Routed{ .drain_caller = true, .signal_dispatcher = true }, queue.route(&pool, &list, sink));
    try testing.expect(queue.takeWake(sink) == null);
    var jobs: [4]Job = undefined;
    try testing.expectEqual(@as(usize, 1), queue.popNative(&pool, &jobs));
    try testing.expectEqual(@as(usize, 1), queue.drain(&pool, sink, &tokens));
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, sink, &tokens));
    try testing.expect(queue.isIdle());

    var late = try releasedList(&pool, &.{.{ .sink = .{ .sink = sink, .token = 2 } }});
    _ = queue.sinkClose(&pool, sink);
    try testing.expectEqual(Routed{ .discarded = 1 }, queue.route(&pool, &late, sink_none));
    queue.sinks[sink].waker_running = false; // As the waker does when it sees the close.
    queue.sinkFree(sink);
    try testing.expectEqual(@as(usize, 0), pool.countInUse());
}
