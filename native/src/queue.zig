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
const lifecycle = @import("lifecycle.zig");
const sync = @import("sync.zig");
pub const SinkState = lifecycle.SinkState;

/// Sinks per counter: one per JS runtime instance (the main thread and each Worker).
pub const sink_count_max = 64;
pub const sink_none: u32 = std.math.maxInt(u32);

/// Called on the sink's waker thread, with no lock held, to tell its owner to drain.
pub const WakeFunction = *const fn (context: ?*anyopaque) callconv(.c) void;

pub const Sink = struct {
    /// See `lifecycle.zig`. Written with every lock held: calls holding just a table
    /// shard's lock read it (`isSink`).
    state: SinkState = .free,
    /// Bumped at each open, so that a slot's successive sinks are told apart (by
    /// the thread-exit hook, and by a borrow naming its lender).
    generation: u32 = 0,
    wake: ?WakeFunction = null,
    wake_context: ?*anyopaque = null,
    /// Its owner relays wakes to wake-less sinks (`Queue.relay_owed`) when woken.
    relays: bool = false,
    /// The thread that makes this sink's wakes, while one does (only with a wake).
    waker: ?*Waker = null,
    outbox: callback.List = .{},
    /// A drain is due: a wake was requested or the owner was told to drain. Cleared only
    /// by a drain that finds the outbox empty. Invariant: `outbox.len > 0 => armed`, so
    /// that no token waits without a drain due (`route` asserts it as it pushes, `drain`
    /// as it pops).
    armed: bool = false,
    /// The waker owes this sink a wake call. Invariant: `wake_requested => armed`.
    wake_requested: bool = false,
};

/// A waker thread's own record, apart from the slot, so that the slot can be freed and
/// reused while the waker is still inside a wake call (its sink's thread exited,
/// and the runtime never returns from that call). Allocated by whoever starts the waker;
/// freed by the waker itself as it exits. Guarded by the counter's mutex.
pub const Waker = struct {
    sink: u32,
    /// The waker waits on this, with the counter's mutex.
    condition: sync.Condition = .{},
    /// Inside a call to the wake function, with no lock held.
    calling: bool = false,
    /// The slot let go of it: it exits at its next look, touching no slot.
    let_go: bool = false,
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
    /// Wake-less sinks were newly owed a wake (`Queue.relay_owed`), and the caller is a
    /// relaying sink: it must take them (`takeRelay`) and pass them on. (When the caller is
    /// not, a relaying sink with a wake was armed instead, in `wake_sinks`.)
    relay_caller: bool = false,
    /// Tokens dropped because their sink is closed.
    discarded: u32 = 0,
};

pub const Queue = struct {
    native: callback.List = .{},
    sinks: [sink_count_max]Sink = @splat(.{}),
    /// Wake-less sinks that are owed a wake (bit i: sink i), until a relaying owner takes
    /// them (`takeRelay`) and wakes them itself.
    relay_owed: u64 = 0,

    comptime {
        assert(sink_count_max <= @bitSizeOf(@FieldType(Routed, "wake_sinks")));
    }

    pub fn sinkOpen(queue: *Queue, wake: ?WakeFunction, wake_context: ?*anyopaque, relays: bool) error{SinkLimit}!u32 {
        for (&queue.sinks, 0..) |*sink, index| {
            if (sink.state != .free) continue;
            // What `sinkStop` and `sinkFree` left.
            assert(sink.outbox.len == 0);
            assert(!sink.armed);
            assert(!sink.wake_requested);
            assert(sink.waker == null);
            assert(queue.relay_owed & bit(@intCast(index)) == 0);
            lifecycle.transition(SinkState, &sink.state, .open);
            sink.generation +%= 1;
            sink.wake = wake;
            sink.wake_context = wake_context;
            sink.relays = relays;
            return @intCast(index);
        }
        return error.SinkLimit;
    }

    /// An open sink: it holds references and receives tokens.
    pub fn isSink(queue: *const Queue, sink: u32) bool {
        return sink < sink_count_max and queue.sinks[sink].state == .open;
    }

    /// A slot in use: open, or closing while its waker is inside a wake.
    pub fn isSinkSlot(queue: *const Queue, sink: u32) bool {
        return sink < sink_count_max and queue.sinks[sink].state != .free;
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
        var relay_added = false;
        // One pass per callback, and one more to find the list empty.
        for (0..@as(usize, released.len) + 1) |_| {
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
                    // Not armed, so it had nothing waiting: this token is the first of a batch.
                    assert(sink.outbox.len == 1);
                    sink.armed = true;
                    if (target.sink == caller_sink) {
                        routed.drain_caller = true;
                    } else if (sink.wake != null) {
                        assert(!sink.wake_requested);
                        sink.wake_requested = true;
                        routed.wake_sinks |= bit(target.sink);
                    } else {
                        relay_added = true;
                        queue.relay_owed |= bit(target.sink);
                    }
                },
            }
        } else unreachable;
        assert(released.len == 0);
        if (relay_added) {
            if (queue.isSink(caller_sink) and queue.sinks[caller_sink].relays) {
                routed.relay_caller = true;
            } else {
                queue.armRelay(&routed);
            }
        }
        return routed;
    }

    /// Asks a relaying sink with a wake to take the wakes owed to wake-less sinks: arms it
    /// as a token would. When none is open, the owed wakes wait for a relaying sink to take
    /// them (a later caller, a wake-less owner draining on its own, or one that opens).
    pub fn armRelay(queue: *Queue, routed: *Routed) void {
        for (&queue.sinks, 0..) |*sink, index| {
            if (sink.state != .open or !sink.relays or sink.wake == null) continue;
            // Already armed: a drain is due, and its owner takes the relayed wakes after it.
            if (sink.armed) return;
            sink.armed = true;
            sink.wake_requested = true;
            routed.wake_sinks |= bit(@intCast(index));
            return;
        }
    }

    /// Moves the open sinks owed a relayed wake into `out` (at least `sink_count_max`
    /// long), clearing them; returns how many.
    pub fn takeRelay(queue: *Queue, out: []u32) usize {
        assert(out.len >= sink_count_max);
        var owed = queue.relay_owed;
        queue.relay_owed = 0;
        var count: usize = 0;
        while (owed != 0) : (owed &= owed - 1) {
            const sink: u32 = @ctz(owed);
            if (!queue.isSink(sink)) continue;
            out[count] = sink;
            count += 1;
        }
        return count;
    }

    /// Pops up to `jobs.len` native callbacks, returning their nodes to the pool.
    pub fn popNative(queue: *Queue, pool: *callback.Pool, jobs: []Job) usize {
        var count: usize = 0;
        while (count < jobs.len) : (count += 1) {
            const index = queue.native.pop(pool);
            if (index == callback.nil) break;
            const node = pool.at(index);
            // `route` pushes only native callbacks here.
            assert(node.callback == .native);
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
        if (!sink.wake_requested or sink.state != .open) return null;
        assert(sink.armed);
        sink.wake_requested = false;
        return .{ .function = sink.wake.?, .context = sink.wake_context };
    }

    /// Copies up to `tokens.len` tokens out of the sink's outbox, in order. Returning zero
    /// disarms the sink (cancelling a wake not yet sent), so that the next token asks for a
    /// wake again. The owner may drain at any time, not only when woken.
    pub fn drain(queue: *Queue, pool: *callback.Pool, sink_index: u32, tokens: []u32) usize {
        assert(queue.isSink(sink_index));
        const sink = &queue.sinks[sink_index];
        // What `route` left: every waiting token has a drain due.
        if (sink.outbox.len > 0) assert(sink.armed);
        if (sink.wake_requested) assert(sink.armed);
        var count: usize = 0;
        while (count < tokens.len) : (count += 1) {
            const index = sink.outbox.pop(pool);
            if (index == callback.nil) break;
            // `route` pushes here only this sink's tokens.
            const target = pool.at(index).callback.sink;
            assert(target.sink == sink_index);
            tokens[count] = target.token;
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

    /// Ends a sink's deliveries: drops its undelivered tokens, cancels a wake it is owed
    /// (by its waker or by a relay), and disarms it: `open` → `closing` (see
    /// `lifecycle.zig`), refused new tokens from then on. Returns how many tokens were
    /// dropped.
    pub fn sinkStop(queue: *Queue, pool: *callback.Pool, sink_index: u32) u32 {
        assert(queue.isSink(sink_index));
        const sink = &queue.sinks[sink_index];
        lifecycle.transition(SinkState, &sink.state, .closing);
        const dropped = sink.outbox.len;
        sink.outbox.clear(pool);
        sink.wake_requested = false;
        sink.armed = false;
        queue.relay_owed &= ~bit(sink_index);
        return dropped;
    }

    /// Frees the slot for a later `sinkOpen`. Its waker, if any, must have been let go.
    pub fn sinkFree(queue: *Queue, sink_index: u32) void {
        const sink = &queue.sinks[sink_index];
        assert(sink.waker == null);
        assert(sink.outbox.len == 0);
        assert(!sink.armed);
        assert(!sink.wake_requested);
        assert(queue.relay_owed & bit(sink_index) == 0);
        lifecycle.transition(SinkState, &sink.state, .free);
        sink.wake = null;
        sink.wake_context = null;
    }

    /// Asserts, before the counter's memory goes, that nothing is left to discard: the
    /// dispatcher ran every native callback before the counter became `closed`, and every
    /// sink was stopped (its outbox emptied, its owed relay cancelled) and freed before its
    /// hold on the counter was dropped.
    pub fn assertDrained(queue: *const Queue) void {
        assert(queue.native.len == 0);
        assert(queue.relay_owed == 0);
        for (&queue.sinks) |*sink| {
            assert(sink.state == .free);
            assert(sink.outbox.len == 0);
            assert(!sink.armed);
            assert(!sink.wake_requested);
            assert(sink.waker == null);
        }
    }
};

fn bit(sink: u32) u64 {
    return @as(u64, 1) << @intCast(sink);
}

const testing = std.testing;

fn noopWake(_: ?*anyopaque) callconv(.c) void {}
fn noopCallback(_: f64, _: ?*anyopaque) callconv(.c) void {}

fn releasedList(pool: *callback.Pool, callbacks: []const callback.Callback) !callback.List {
    var list: callback.List = .{};
    for (callbacks) |released_callback| {
        list.push(pool, try pool.create(testing.allocator, .{ .callback = released_callback, .object_id = 0 }));
    }
    return list;
}

fn wakeBit(sink: u32) u64 {
    return @as(u64, 1) << @intCast(sink);
}

test "one wake per batch: the first token arms the sink, a drain to empty disarms it" {
    var pool: callback.Pool = .{};
    defer pool.deinit(testing.allocator);
    var queue: Queue = .{};
    const sink = try queue.sinkOpen(noopWake, null, false);
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
    const sink = try queue.sinkOpen(noopWake, null, false);
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
    const sink = try queue.sinkOpen(noopWake, null, false);
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
    _ = queue.sinkStop(&pool, sink);
    queue.sinkFree(sink);
    try testing.expectEqual(Routed{ .discarded = 1 }, queue.route(&pool, &late, sink_none));
    try testing.expectEqual(@as(usize, 0), pool.countInUse());
}

test "a wake-less sink is woken through a relay: the relaying caller, or else a relaying sink's wake" {
    var pool: callback.Pool = .{};
    defer pool.deinit(testing.allocator);
    var queue: Queue = .{};
    const main = try queue.sinkOpen(noopWake, null, true); // a runtime's main thread
    const worker = try queue.sinkOpen(null, null, true); // a Worker: no wake function
    var tokens: [8]u32 = undefined;
    var relayed: [sink_count_max]u32 = undefined;

    // The main thread's own release: it is told to relay, and nobody is woken natively.
    var first = try releasedList(&pool, &.{.{ .sink = .{ .sink = worker, .token = 1 } }});
    try testing.expectEqual(Routed{ .relay_caller = true }, queue.route(&pool, &first, main));
    try testing.expectEqual(@as(usize, 1), queue.takeRelay(&relayed));
    try testing.expectEqual(worker, relayed[0]);
    try testing.expectEqual(@as(usize, 0), queue.takeRelay(&relayed));

    // Still armed (not drained): a second token rides on the first relay.
    var second = try releasedList(&pool, &.{.{ .sink = .{ .sink = worker, .token = 2 } }});
    try testing.expectEqual(Routed{}, queue.route(&pool, &second, sink_none));
    try testing.expectEqual(@as(usize, 2), queue.drain(&pool, worker, &tokens));
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, worker, &tokens));

    // A native thread's release: the relaying sink with a wake is woken to pass it on.
    var third = try releasedList(&pool, &.{.{ .sink = .{ .sink = worker, .token = 3 } }});
    try testing.expectEqual(Routed{ .wake_sinks = wakeBit(main) }, queue.route(&pool, &third, sink_none));
    try testing.expect(queue.takeWake(main) != null);
    try testing.expectEqual(@as(usize, 0), queue.drain(&pool, main, &tokens));
    try testing.expectEqual(@as(usize, 1), queue.takeRelay(&relayed));

    // A sink that stops is no longer owed anything.
    var fourth = try releasedList(&pool, &.{.{ .sink = .{ .sink = worker, .token = 4 } }});
    _ = queue.route(&pool, &fourth, main);
    try testing.expectEqual(@as(u32, 2), queue.sinkStop(&pool, worker));
    queue.sinkFree(worker);
    try testing.expectEqual(@as(usize, 0), queue.takeRelay(&relayed));
    try testing.expectEqual(@as(u32, 0), queue.sinkStop(&pool, main));
    queue.sinkFree(main);
    try testing.expectEqual(@as(usize, 0), pool.countInUse());
}
