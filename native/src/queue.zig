//! The callback queue: where callbacks wait between leaving the table and being run.
//!
//! Native callbacks wait in one FIFO that the dispatcher thread pops. Sink callbacks (tokens
//! for a JS runtime instance) wait in that sink's outbox, which its owner drains in batches.
//! Routing is O(1) per callback and never allocates: nodes are relinked, not copied.
//!
//! Each sink has a coalescing wake, in the manner of libuv's `uv_async_t`: the first token
//! into a sink that is not `armed` arms it and asks for one wake; later tokens ride on that
//! wake; a drain that finds the outbox empty disarms it, so the next token asks again. The
//! wake carries no data. When the sink's own thread caused the release (`caller_sink`), the
//! wake is skipped and the caller is told to drain instead: a JS release then costs no
//! thread hop at all.
//!
//! Not thread-safe; the counter's mutex guards it.

const std = @import("std");
const assert = std.debug.assert;
const callback = @import("callback.zig");

/// Sinks per counter: one per JS runtime instance (the main thread and each Worker).
pub const sink_count_max = 64;
pub const sink_none: u32 = std.math.maxInt(u32);

/// Called on the dispatcher thread, with no lock held, to tell a sink's owner to drain.
pub const WakeFunction = *const fn (context: ?*anyopaque) callconv(.c) void;

pub const Sink = struct {
    /// The slot is in use: open, or closing.
    open: bool = false,
    /// Closed to new tokens and wakes, but not yet free: a wake may still be in flight.
    closing: bool = false,
    /// Closing because its thread exited: the dispatcher finishes the close.
    abandoned: bool = false,
    /// Wakes taken by the dispatcher and not yet returned. The owner may free its wake
    /// callback only once this is zero and the sink is closing.
    wakes_in_flight: u32 = 0,
    /// Bumped at each open, so that a closed sink's index reused by a new sink is told
    /// apart (by the thread-exit hook).
    generation: u32 = 0,
    wake: ?WakeFunction = null,
    wake_context: ?*anyopaque = null,
    outbox: callback.List = .{},
    /// A drain is due: a wake was requested or the owner was told to drain. Cleared only
    /// by a drain that finds the outbox empty.
    armed: bool = false,
    /// The dispatcher owes this sink a wake call. Invariant: `wake_requested => armed`.
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
    sink: u32,
};

pub const Routed = struct {
    /// The calling sink received tokens and was not armed: the caller must drain.
    drain_caller: bool = false,
    /// The dispatcher has new work (native callbacks or wakes).
    signal_dispatcher: bool = false,
    /// Tokens dropped because their sink is closed.
    discarded: u32 = 0,
};

pub const Queue = struct {
    native: callback.List = .{},
    sinks: [sink_count_max]Sink = [_]Sink{.{}} ** sink_count_max,
    /// How many sinks have `wake_requested` set, so the dispatcher's wait predicate is O(1).
    wakes_requested: u32 = 0,

    pub fn sinkOpen(queue: *Queue, wake: ?WakeFunction, wake_context: ?*anyopaque) error{Limit}!u32 {
        for (&queue.sinks, 0..) |*sink, index| {
            if (sink.open) continue;
            assert(sink.outbox.len == 0 and !sink.armed and !sink.wake_requested);
            const generation = sink.generation +% 1; // A temporary: `sink.*` is being written.
            sink.* = .{ .open = true, .generation = generation, .wake = wake, .wake_context = wake_context };
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
        return queue.native.len == 0 and queue.wakes_requested == 0;
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
                        queue.wakes_requested += 1;
                        routed.signal_dispatcher = true;
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

    /// Takes every requested wake. The sinks stay armed until drained empty.
    pub fn takeWakes(queue: *Queue, wakes: *[sink_count_max]Wake) usize {
        var count: usize = 0;
        if (queue.wakes_requested == 0) return 0;
        for (&queue.sinks, 0..) |*sink, index| {
            if (!sink.wake_requested) continue;
            assert(sink.armed and sink.open and !sink.closing);
            sink.wake_requested = false;
            sink.wakes_in_flight += 1;
            wakes[count] = .{ .function = sink.wake.?, .context = sink.wake_context, .sink = @intCast(index) };
            count += 1;
        }
        assert(count == queue.wakes_requested);
        queue.wakes_requested = 0;
        return count;
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
            if (sink.wake_requested) {
                sink.wake_requested = false;
                queue.wakes_requested -= 1;
            }
        }
        return count;
    }

    /// A wake call returned. True when that completes an abandoned sink's close, which
    /// the caller must then finish (`sinkFree`).
    pub fn wakeDone(queue: *Queue, sink_index: u32) bool {
        const sink = &queue.sinks[sink_index];
        assert(sink.open and sink.wakes_in_flight > 0);
        sink.wakes_in_flight -= 1;
        return sink.wakes_in_flight == 0 and sink.closing and sink.abandoned;
    }

    /// Starts closing a sink: drops its undelivered tokens, cancels a wake it is owed, and
    /// refuses it new tokens and wakes. Returns how many tokens were dropped. The slot is
    /// freed by `sinkFree` once no wake is in flight.
    pub fn sinkClose(queue: *Queue, pool: *callback.Pool, sink_index: u32) u32 {
        assert(queue.isSinkSlot(sink_index));
        const sink = &queue.sinks[sink_index];
        if (sink.closing) return 0;
        const dropped = sink.outbox.len;
        sink.outbox.clear(pool);
        if (sink.wake_requested) {
            sink.wake_requested = false;
            queue.wakes_requested -= 1;
        }
        sink.armed = false;
        sink.closing = true;
        return dropped;
    }

    pub fn sinkFree(queue: *Queue, sink_index: u32) void {
        const sink = &queue.sinks[sink_index];
        assert(sink.open and sink.closing and sink.wakes_in_flight == 0 and sink.outbox.len == 0);
        const generation = sink.generation;
        sink.* = .{ .generation = generation };
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
        queue.wakes_requested = 0;
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

test "one wake per batch: the first token arms the sink, a drain to empty disarms it" {
    var pool: callback.Pool = .{};
    defer pool.deinit(testing.allocator);
    var queue: Queue = .{};
    const sink = try queue.sinkOpen(noopWake, null);
    var wakes: [sink_count_max]Wake = undefined;
    var tokens: [8]u32 = undefined;

    var first = try releasedList(&pool, &.{ .{ .sink = .{ .sink = sink, .token = 1 } }, .{ .sink = .{ .sink = sink, .token = 2 } } });
    try testing.expectEqual(Routed{ .signal_dispatcher = true }, queue.route(&pool, &first, sink_none));
    var second = try releasedList(&pool, &.{.{ .sink = .{ .sink = sink, .token = 3 } }});
    try testing.expectEqual(Routed{}, queue.route(&pool, &second, sink_none));
    try testing.expectEqual(@as(usize, 1), queue.takeWakes(&wakes));
    try testing.expectEqual(@as(usize, 0), queue.takeWakes(&wakes));

    try testing.expectEqual(@as(usize, 3), queue.drain(&pool, sink, &tokens));
    try testing.expectEqualSlices(u32, &.{ 1, 2, 3 }, tokens[0..3]);
    try testing.expect(queue.sinks[sink].armed);
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, sink, &tokens));
    try testing.expect(!queue.sinks[sink].armed);

    var third = try releasedList(&pool, &.{.{ .sink = .{ .sink = sink, .token = 4 } }});
    try testing.expectEqual(Routed{ .signal_dispatcher = true }, queue.route(&pool, &third, sink_none));
    try testing.expectEqual(@as(usize, 1), queue.takeWakes(&wakes));
    try testing.expectEqual(@as(usize, 1), queue.drain(&pool, sink, &tokens));
    try testing.expectEqual(@as(usize, 0), pool.countInUse());
}

test "an owner that drains before its wake is sent cancels the wake, and is woken again later" {
    var pool: callback.Pool = .{};
    defer pool.deinit(testing.allocator);
    var queue: Queue = .{};
    const sink = try queue.sinkOpen(noopWake, null);
    var wakes: [sink_count_max]Wake = undefined;
    var tokens: [8]u32 = undefined;

    // A token from another thread owes a wake; the dispatcher has not sent it yet (busy in
    // a native callback) when the owner drains on its own (closing, or before exit).
    var first = try releasedList(&pool, &.{.{ .sink = .{ .sink = sink, .token = 1 } }});
    try testing.expectEqual(Routed{ .signal_dispatcher = true }, queue.route(&pool, &first, sink_none));
    try testing.expectEqual(@as(usize, 1), queue.drain(&pool, sink, &tokens));
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, sink, &tokens));
    try testing.expect(!queue.sinks[sink].armed and !queue.sinks[sink].wake_requested);
    try testing.expectEqual(@as(usize, 0), queue.takeWakes(&wakes));

    // The next token requests a wake afresh.
    var second = try releasedList(&pool, &.{.{ .sink = .{ .sink = sink, .token = 2 } }});
    try testing.expectEqual(Routed{ .signal_dispatcher = true }, queue.route(&pool, &second, sink_none));
    try testing.expectEqual(@as(usize, 1), queue.takeWakes(&wakes));
    try testing.expectEqual(@as(usize, 1), queue.drain(&pool, sink, &tokens));
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, sink, &tokens));
    try testing.expect(queue.isIdle());
}

test "the calling sink is told to drain instead of being woken" {
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
    try testing.expectEqual(@as(u32, 0), queue.wakes_requested);
    var jobs: [4]Job = undefined;
    try testing.expectEqual(@as(usize, 1), queue.popNative(&pool, &jobs));
    try testing.expectEqual(@as(usize, 1), queue.drain(&pool, sink, &tokens));
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, sink, &tokens));
    try testing.expect(queue.isIdle());
}
