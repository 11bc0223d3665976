//! Tests of the counter with its real dispatcher thread: thread identity, ordering,
//! exactly-once under races, re-entrancy, concurrency, shutdown. Every wait is bounded, and
//! `std.testing.allocator` fails any test that leaks.

const std = @import("std");
const testing = std.testing;
const counter_module = @import("counter.zig");
const Counter = counter_module.Counter;
const Id = counter_module.Id;
const sink_none = counter_module.sink_none;
const Latch = @import("testing.zig").Latch;
const scaledDefault = @import("testing.zig").scaledDefault;
const Deadline = @import("testing.zig").Deadline;
const wait_timeout_ns = @import("testing.zig").wait_timeout_ns_default;

fn countCallback(_: f64, context: ?*anyopaque) callconv(.c) void {
    const latch: *Latch = @ptrCast(@alignCast(context.?));
    latch.add();
}

/// Records which registration ran, in which order and on which thread.
const Recorder = struct {
    /// The next callback's position. Its own counter, not the latch's: a callback writes
    /// its position's record before it adds to the latch, which publishes the record.
    next: std.atomic.Value(u32) = .init(0),
    latch: Latch = .{},
    order: [8]u32 = undefined,
    threads: [8]std.Thread.Id = undefined,

    const Tag = struct { recorder: *Recorder, tag: u32 };

    fn callback(_: f64, context: ?*anyopaque) callconv(.c) void {
        const tag: *Tag = @ptrCast(@alignCast(context.?));
        const recorder = tag.recorder;
        // Monotonic: the position only has to be unique; the latch orders the record.
        const position = recorder.next.fetchAdd(1, .monotonic);
        recorder.order[position] = tag.tag;
        recorder.threads[position] = std.Thread.getCurrentId();
        recorder.latch.add();
    }
};

fn releaseOnThread(counter: *Counter, id: Id, thread_id: *std.Thread.Id) void {
    thread_id.* = std.Thread.getCurrentId();
    _ = counter.release(id, sink_none) catch unreachable;
}

test "native callbacks run on the dispatcher thread, in registration order" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;

    var recorder: Recorder = .{};
    var tags: [3]Recorder.Tag = undefined;
    const id = try counter.create(sink_none, .{ .size_bytes = 64 });
    for (&tags, 0..) |*tag, index| {
        tag.* = .{ .recorder = &recorder, .tag = @intCast(index) };
        try testing.expect(try counter.register(id, sink_none, .out_of_scope, .{ .native = .{ .function = Recorder.callback, .context = tag } }));
    }

    var releasing_thread_id: std.Thread.Id = 0;
    const thread = try std.Thread.spawn(.{}, releaseOnThread, .{ counter, id, &releasing_thread_id });
    thread.join();
    try recorder.latch.waitFor(3);

    try testing.expectEqualSlices(u32, &.{ 0, 1, 2 }, recorder.order[0..3]);
    const dispatcher_id = counter.dispatcher_thread_id.load(.acquire);
    for (recorder.threads[0..3]) |thread_id| {
        try testing.expectEqual(dispatcher_id, thread_id);
        try testing.expect(thread_id != releasing_thread_id);
        try testing.expect(thread_id != std.Thread.getCurrentId());
    }
    try testing.expectEqual(@as(u64, 0), counter.stats().objects_live);
}

fn freeObject(counter: *Counter, id: Id) void {
    // Losing the race to the last release is fine: the object is then already deleted.
    _ = counter.free(id, sink_none) catch |err| std.debug.assert(err == error.StaleId);
}

fn releaseTwice(counter: *Counter, id: Id) void {
    _ = counter.release(id, sink_none) catch unreachable;
    _ = counter.release(id, sink_none) catch unreachable;
}

test "exactly once when an explicit free races the last release" {
    const counter = try Counter.open(testing.allocator);
    var latch: Latch = .{};
    const rounds = 500;
    for (0..rounds) |_| {
        const id = try counter.create(sink_none, .{ .size_bytes = 1 });
        try counter.retain(id, sink_none);
        try testing.expect(try counter.register(id, sink_none, .out_of_scope, .{ .native = .{ .function = countCallback, .context = &latch } }));
        const freer = try std.Thread.spawn(.{}, freeObject, .{ counter, id });
        const releaser = try std.Thread.spawn(.{}, releaseTwice, .{ counter, id });
        freer.join();
        releaser.join();
    }
    try latch.waitFor(rounds);
    // Destroy runs whatever is still queued: a duplicate would show up here.
    try counter.destroy();
    try testing.expectEqual(@as(u64, rounds), latch.get());
}

/// A callback that re-enters the counter: it creates an object, registers itself on it and
/// releases it, `depth` times over. Each release runs on the dispatcher thread.
const Chain = struct {
    counter: *Counter,
    latch: Latch = .{},
    depth_max: u32,

    fn callback(_: f64, context: ?*anyopaque) callconv(.c) void {
        const chain: *Chain = @ptrCast(@alignCast(context.?));
        chain.latch.add();
        if (chain.latch.get() >= chain.depth_max) return;
        const id = chain.counter.create(sink_none, .{ .size_bytes = 8 }) catch unreachable;
        _ = chain.counter.info(id) catch unreachable;
        _ = chain.counter.register(id, sink_none, .out_of_scope, .{ .native = .{ .function = callback, .context = chain } }) catch unreachable;
        _ = chain.counter.release(id, sink_none) catch unreachable;
    }
};

test "a native callback that calls back into the counter does not deadlock" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;

    var chain: Chain = .{ .counter = counter, .depth_max = 100 };
    const id = try counter.create(sink_none, .{ .size_bytes = 8 });
    try testing.expect(try counter.register(id, sink_none, .out_of_scope, .{ .native = .{ .function = Chain.callback, .context = &chain } }));
    _ = try counter.release(id, sink_none);
    try chain.latch.waitFor(100);
    // The first object plus one created by each of the first 99 callbacks.
    try testing.expectEqual(@as(u64, 100), counter.stats().objects_created);
}

const Worker = struct {
    fn run(counter: *Counter, shared: []const Id, latch: *Latch, objects: u32) void {
        var ids: [64]Id = undefined;
        var created: u32 = 0;
        while (created < objects) {
            const batch = @min(ids.len, objects - created);
            for (ids[0..batch]) |*id| {
                id.* = counter.create(sink_none, .{ .size_bytes = 16 }) catch unreachable;
                _ = counter.register(id.*, sink_none, .out_of_scope, .{ .native = .{ .function = countCallback, .context = latch } }) catch unreachable;
            }
            // Alternate single releases with batch releases to cover both paths.
            if (created % 128 == 0) {
                _ = counter.releaseBatch(ids[0..batch], sink_none) catch unreachable;
            } else {
                for (ids[0..batch]) |id| _ = counter.release(id, sink_none) catch unreachable;
            }
            created += batch;
        }
        for (shared) |id| _ = counter.release(id, sink_none) catch unreachable;
    }
};

test "threads releasing concurrently: every callback fires exactly once" {
    const counter = try Counter.open(testing.allocator);
    var latch: Latch = .{};
    const thread_count = 4;
    const objects_per_thread = 2000;

    // Shared objects start with one reference per thread: the last thread to release one
    // sends it out of scope, whichever thread that is.
    var shared: [32]Id = undefined;
    for (&shared) |*id| {
        id.* = try counter.create(sink_none, .{ .size_bytes = 4 });
        for (1..thread_count) |_| try counter.retain(id.*, sink_none);
        try testing.expect(try counter.register(id.*, sink_none, .out_of_scope, .{ .native = .{ .function = countCallback, .context = &latch } }));
    }

    var threads: [thread_count]std.Thread = undefined;
    for (&threads) |*thread| {
        thread.* = try std.Thread.spawn(.{}, Worker.run, .{ counter, &shared, &latch, objects_per_thread });
    }
    for (threads) |thread| thread.join();

    const expected = thread_count * objects_per_thread + shared.len;
    try latch.waitFor(expected);
    const stats = counter.stats();
    try testing.expectEqual(@as(u64, 0), stats.objects_live);
    try testing.expectEqual(@as(u64, 0), stats.bytes_live);
    try counter.destroy();
    try testing.expectEqual(@as(u64, expected), latch.get());
}

/// Runs `action` on the counter from a native callback, on the dispatcher thread, and
/// records its error.
const FromCallback = struct {
    counter: *Counter,
    action: *const fn (*Counter) counter_module.Error!void,
    result: ?counter_module.Error = null,
    latch: Latch = .{},

    fn callback(_: f64, context: ?*anyopaque) callconv(.c) void {
        const self: *FromCallback = @ptrCast(@alignCast(context.?));
        self.action(self.counter) catch |err| {
            self.result = err;
        };
        self.latch.add();
    }

    /// Registers on a new object and releases it, then waits for the callback to have run.
    fn run(self: *FromCallback) !void {
        const id = try self.counter.create(sink_none, .{ .size_bytes = 0 });
        try testing.expect(try self.counter.register(id, sink_none, .out_of_scope, .{ .native = .{ .function = callback, .context = self } }));
        _ = try self.counter.release(id, sink_none);
        try self.latch.waitFor(1);
    }
};

test "destroy from a callback is refused instead of deadlocking" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;

    var destroyer: FromCallback = .{ .counter = counter, .action = Counter.destroy };
    try destroyer.run();
    try testing.expectEqual(@as(?counter_module.Error, error.WrongThread), destroyer.result);
}

test "close delivers the callbacks of every live object and refuses later calls" {
    const counter = try Counter.open(testing.allocator);
    var latch: Latch = .{};
    var ids: [100]Id = undefined;
    for (&ids) |*id| {
        id.* = try counter.create(sink_none, .{ .size_bytes = 1 });
        try testing.expect(try counter.register(id.*, sink_none, .out_of_scope, .{ .native = .{ .function = countCallback, .context = &latch } }));
    }
    try testing.expectEqual(counter_module.Outcome.ok, try counter.close(sink_none));
    try testing.expectError(error.Closed, counter.create(sink_none, .{ .size_bytes = 1 }));
    try testing.expectError(error.Closed, counter.release(ids[0], sink_none));
    try testing.expectError(error.Closed, counter.close(sink_none));
    try counter.destroy();
    try testing.expectEqual(@as(u64, ids.len), latch.get());
}

/// Closes a sink, letting a wake still in flight finish first, then waits for its waker
/// (if it had one) to exit: a waker let go frees what it holds on its own thread.
fn closeSink(counter: *Counter, sink: u32) void {
    const wakers = counter.stats().wakers_live;
    counter.lock();
    const had_waker = counter.queue.sinks[sink].waker != null;
    counter.mutex.unlock();
    while (counter.sinkClose(sink) catch unreachable == .pending) std.Thread.yield() catch {};
    if (had_waker) waitForWakers(counter, wakers - 1) catch unreachable;
}

/// Waits, with a bound, until the counter has `count` waker threads left.
fn waitForWakers(counter: *Counter, count: u64) !void {
    const deadline: Deadline = .fromNow(wait_timeout_ns);
    while (counter.stats().wakers_live != count) {
        if (deadline.passed()) return error.Timeout;
        std.Thread.yield() catch {};
    }
}

const WakeCount = struct {
    latch: Latch = .{},

    fn wake(context: ?*anyopaque) callconv(.c) void {
        const self: *WakeCount = @ptrCast(@alignCast(context.?));
        self.latch.add();
    }
};

test "a sink gets one coalesced wake per batch, and its tokens in order" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;

    var wakes: WakeCount = .{};
    const sink = try counter.sinkOpen(WakeCount.wake, &wakes, false);
    defer closeSink(counter, sink);
    var ids: [1000]Id = undefined;
    for (&ids, 0..) |*id, index| {
        id.* = try counter.create(sink, .{});
        try testing.expect(try counter.register(id.*, sink, .out_of_scope, .{ .sink = .{ .sink = sink, .token = @intCast(index) } }));
    }
    try testing.expectEqual(counter_module.Outcome.ok, try counter.releaseBatch(&ids, sink_none));
    try wakes.latch.waitFor(1);

    var tokens: [256]u32 = undefined;
    var received: u32 = 0;
    while (true) {
        const count = try counter.sinkDrain(sink, &tokens);
        if (count == 0) break;
        for (tokens[0..count]) |token| {
            try testing.expectEqual(received, token);
            received += 1;
        }
    }
    try testing.expectEqual(@as(u32, ids.len), received);
    try testing.expectEqual(@as(u64, 1), wakes.latch.get());

    // Disarmed by the empty drain: the next token asks for a wake again. A release by the
    // sink's own thread asks it to drain instead.
    const id = try counter.create(sink, .{});
    try testing.expect(try counter.register(id, sink, .out_of_scope, .{ .sink = .{ .sink = sink, .token = 7 } }));
    try testing.expectEqual(counter_module.Outcome.drain, try counter.release(id, sink));
    try testing.expectEqual(@as(usize, 1), try counter.sinkDrain(sink, &tokens));
    try testing.expectEqual(@as(usize, 0), try counter.sinkDrain(sink, &tokens));
    try testing.expectEqual(@as(u64, 1), wakes.latch.get());
    try testing.expectError(error.InvalidArgument, counter.sinkDrain(sink + 1, &tokens));
    try testing.expectError(error.InvalidArgument, counter.release(id, sink + 1));
}

/// A thread that attaches by key, borrows a lent reference, and exits without closing its
/// sink, as a terminated Worker would.
fn borrowAndExit(key: f64, id: Id, lender: counter_module.Sink, sink_out: *u32) void {
    const attached = Counter.attach(key, null, null, false) catch unreachable;
    attached.counter.borrow(id, lender, attached.sink) catch unreachable;
    attached.counter.retain(id, attached.sink) catch unreachable;
    sink_out.* = attached.sink;
}

test "a thread that exits with its sink open has it closed, and its references released" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;

    var latch: Latch = .{};
    const id = try counter.create(sink_none, .{});
    try testing.expect(try counter.register(id, sink_none, .out_of_scope, .{ .native = .{ .function = countCallback, .context = &latch } }));
    try counter.lend(id, sink_none);

    var sink: u32 = undefined;
    const thread = try std.Thread.spawn(.{}, borrowAndExit, .{ counter.key, id, sink_none, &sink });
    thread.join();
    // Its thread-exit hook ran: the sink is closed, its two references are gone.
    try latch.waitFor(1);
    try testing.expectEqual(@as(u64, 0), counter.stats().sinks_open);
    try testing.expectError(error.StaleId, counter.info(id));
}

test "attach: by key only; a sink's close releases what it held; the last hold frees the counter" {
    const counter = try Counter.open(testing.allocator);
    try testing.expectError(error.Closed, Counter.attach(counter.key + 1, null, null, false));
    const attached = try Counter.attach(counter.key, null, null, false);
    try testing.expectEqual(counter, attached.counter);

    const owned = try counter.create(attached.sink, .{});
    const borrowed = try counter.create(sink_none, .{});
    try counter.lend(borrowed, sink_none);
    try counter.borrow(borrowed, sink_none, attached.sink);
    try testing.expectError(error.NotOwned, counter.free(borrowed, attached.sink));
    try testing.expectEqual(@as(u64, 2), counter.stats().objects_live);

    // The opener destroys first; the sink still holds the counter, closed but readable.
    _ = try counter.close(sink_none);
    while (counter.stateGet() != .closed) std.Thread.yield() catch {};
    try testing.expectError(error.Closed, Counter.attach(counter.key, null, null, false));
    _ = owned;
    try counter.destroy();
    // The sink's close is the last hold: it frees the counter (the allocator checks).
    try testing.expectEqual(Counter.SinkClosed.closed, try counter.sinkClose(attached.sink));
}

/// Creates containers in its own shard holding objects of other shards, and releases
/// everything: settles that follow links across shards take every shard's lock.
fn crossShardWorker(counter: *Counter, shared: []const Id, latch: *Latch, rounds: u32) void {
    for (0..rounds) |_| {
        const inner = counter.create(sink_none, .{}) catch unreachable;
        _ = counter.register(inner, sink_none, .out_of_scope, .{ .native = .{ .function = countCallback, .context = latch } }) catch unreachable;
        const outer = counter.create(sink_none, .{ .contains = &.{ inner, shared[0] }, .lineage = shared[1..2] }) catch unreachable;
        _ = counter.register(outer, sink_none, .out_of_scope, .{ .native = .{ .function = countCallback, .context = latch } }) catch unreachable;
        _ = counter.release(inner, sink_none) catch unreachable;
        _ = counter.release(outer, sink_none) catch unreachable;
    }
}

test "threads in different shards settle nested and lineage links across shards" {
    const counter = try Counter.open(testing.allocator);
    var latch: Latch = .{};
    const shared = [_]Id{ try counter.create(sink_none, .{}), try counter.create(sink_none, .{}) };
    const thread_count = 4;
    const rounds = 2000;
    var threads: [thread_count]std.Thread = undefined;
    for (&threads) |*thread| thread.* = try std.Thread.spawn(.{}, crossShardWorker, .{ counter, &shared, &latch, rounds });
    for (threads) |thread| thread.join();
    try latch.waitFor(2 * thread_count * rounds);
    // Only the two shared objects are left; their containers and dependents are gone.
    try testing.expectEqual(@as(u64, 2), counter.stats().objects_live);
    try testing.expectEqual(@as(u32, 0), (try counter.info(shared[0])).contained_in_owned);
    try testing.expectEqual(@as(u32, 0), (try counter.info(shared[1])).refs_lineage);
    try counter.destroy();
    try testing.expectEqual(@as(u64, 2 * thread_count * rounds), latch.get());
}

test "calls made while the dispatcher exits find the counter closed" {
    // The dispatcher marks the counter closed as it exits, while a call holding just a
    // shard's lock may be reading the state: under ThreadSanitizer (tests/run) this checks
    // that the two share a lock. Several rounds, as the dispatcher must exit mid-loop.
    for (0..20) |_| {
        const counter = try Counter.open(testing.allocator);
        const id = try counter.create(sink_none, .{});
        _ = try counter.close(sink_none);
        while (counter.stateGet() != .closed) {
            try testing.expectError(error.Closed, counter.retain(id, sink_none));
            // Under valgrind, which runs one thread at a time, the dispatcher could otherwise
            // find the locks it needs always taken when its turn comes.
            std.Thread.yield() catch {};
        }
        try counter.destroy();
    }
}

/// Attaches and, once `count` threads have, exits with its sink open.
fn attachAndExit(key: f64, attached: *Latch, count: u32) void {
    _ = Counter.attach(key, null, null, false) catch unreachable;
    attached.add();
    attached.waitFor(count) catch unreachable;
}

test "threads that attach at once and exit with their sinks open have them closed" {
    // Each thread records its sink for its exit hook while the others do: under
    // ThreadSanitizer this checks that they share nothing unguarded.
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    var attached: Latch = .{};
    var threads: [4]std.Thread = undefined;
    for (&threads) |*thread| thread.* = try std.Thread.spawn(.{}, attachAndExit, .{ counter.key, &attached, threads.len });
    for (threads) |thread| thread.join();
    try testing.expectEqual(@as(u64, 0), counter.stats().sinks_open);
}

/// Creates objects without links, in its own shard, and lends and takes back each one,
/// which gives it a holder record (an extension) and frees it again.
fn createAndLend(counter: *Counter, rounds: u32) void {
    for (0..rounds) |_| {
        const id = counter.create(sink_none, .{}) catch unreachable;
        counter.lend(id, sink_none) catch unreachable;
        counter.borrow(id, sink_none, sink_none) catch unreachable;
        _ = counter.release(id, sink_none) catch unreachable;
    }
}

test "threads in different shards create and lend at once, each holding just its own shard" {
    // Under ThreadSanitizer this checks that such calls touch no other shard's state.
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    var threads: [4]std.Thread = undefined;
    for (&threads) |*thread| thread.* = try std.Thread.spawn(.{}, createAndLend, .{ counter, 1000 });
    for (threads) |thread| thread.join();
    try testing.expectEqual(@as(u64, 0), counter.stats().objects_live);
}

/// A wake that blocks until the test lets it return: a JS thread that is busy, or gone.
const Gate = struct {
    entered: Latch = .{},
    opened: Latch = .{},

    fn wake(context: ?*anyopaque) callconv(.c) void {
        const gate: *Gate = @ptrCast(@alignCast(context.?));
        gate.entered.add();
        gate.opened.waitFor(1) catch unreachable;
    }
};

/// Attaches, lends a new object with a token registered on it, and exits with its sink
/// open once its waker is blocked in a wake that the object's release caused.
fn lendAndExitInWake(key: f64, gate: *Gate, lent: *Latch, id_out: *Id, sink_out: *u32) void {
    const attached = Counter.attach(key, Gate.wake, gate, false) catch unreachable;
    const counter = attached.counter;
    const id = counter.create(attached.sink, .{}) catch unreachable;
    _ = counter.register(id, attached.sink, .out_of_scope, .{ .sink = .{ .sink = attached.sink, .token = 1 } }) catch unreachable;
    counter.lend(id, attached.sink) catch unreachable;
    id_out.* = id;
    sink_out.* = attached.sink;
    lent.add();
    gate.entered.waitFor(1) catch unreachable;
}

test "a sink whose thread exits mid-wake is freed at once; its blocked waker is let go" {
    // The thread exits while its waker is blocked in a wake (a runtime that never returns
    // from it): the slot, and everything the sink held, must not wait for that wake.
    // Meanwhile calls naming the dead sink hold just a shard's lock and read the sink's
    // slot: under ThreadSanitizer this checks that they share a lock with its freeing.
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    var gate: Gate = .{};
    var lent: Latch = .{};
    var id: Id = undefined;
    var sink: u32 = undefined;
    const thread = try std.Thread.spawn(.{}, lendAndExitInWake, .{ counter.key, &gate, &lent, &id, &sink });
    try lent.waitFor(1);
    try counter.borrow(id, sink, sink_none);
    _ = try counter.release(id, sink_none); // Out of scope: the token asks for a wake.
    thread.join();

    // The slot was freed at once, and the waker let go while blocked in its wake.
    try testing.expectEqual(@as(u64, 0), counter.stats().sinks_open);
    try testing.expectEqual(@as(u64, 1), counter.stats().wakers_blocked);
    const other = try counter.create(sink_none, .{});
    gate.opened.add();
    const deadline: Deadline = .fromNow(wait_timeout_ns);
    while (counter.stats().wakers_blocked != 0) {
        // Many calls between two `stats` (which takes the queue's lock, ordering whatever
        // the waker did before it): most of them overlap the waker's close.
        for (0..256) |_| try testing.expectError(error.InvalidArgument, counter.retain(other, sink));
        if (deadline.passed()) return error.Timeout;
        // Under valgrind, which runs one thread at a time, the waker could otherwise find
        // the lock it needs always taken when its turn comes.
        std.Thread.yield() catch {};
    }
    _ = try counter.release(other, sink_none);
    try testing.expectEqual(@as(u64, 0), counter.stats().objects_live);
    try waitForWakers(counter, 0); // It frees its record, and drops its hold, as it exits.
}

/// Opens sinks on `counters` from this thread until it reaches its registration limit,
/// then checks that one more sink or opener registration is refused with nothing opened.
fn fillThreadRegistrations(counters: []const *Counter, gate: *Gate, result: *?anyerror) void {
    fillThreadRegistrationsChecked(counters, gate) catch |err| {
        result.* = err;
    };
}

fn fillThreadRegistrationsChecked(counters: []const *Counter, gate: *Gate) !void {
    var opened: usize = 0;
    for (counters[0..2]) |counter| {
        for (0..64) |_| {
            _ = try counter.sinkOpen(null, null, false);
            opened += 1;
        }
    }
    try testing.expectEqual(@as(usize, 128), opened);
    const last = counters[2];
    const before = last.stats();
    // With a wake, so that a waker would be running had the sink been opened first.
    try testing.expectError(error.ThreadLimit, last.sinkOpen(Gate.wake, gate, true));
    try testing.expectError(error.ThreadLimit, Counter.attach(last.key, Gate.wake, gate, true));
    try testing.expectError(error.ThreadLimit, last.destroyOnThreadExit());
    const after = last.stats();
    try testing.expectEqual(before.sinks_open, after.sinks_open);
    try testing.expectEqual(@as(u64, 0), gate.entered.get());
    // The thread exits now: its 128 sinks are closed for it.
}

test "a thread at its registration limit is refused with ThreadLimit, and nothing is opened" {
    var counters: [3]*Counter = undefined;
    for (&counters) |*counter| counter.* = try Counter.open(testing.allocator);
    defer for (counters) |counter| counter.destroy() catch unreachable;
    var gate: Gate = .{};
    var result: ?anyerror = null;
    const thread = try std.Thread.spawn(.{}, fillThreadRegistrations, .{ &counters, &gate, &result });
    thread.join();
    if (result) |err| return err;
    for (counters) |counter| try testing.expectEqual(@as(u64, 0), counter.stats().sinks_open);
}

test "a counter full of sinks refuses one more with SinkLimit" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    var sinks: [64]u32 = undefined;
    for (&sinks) |*sink| sink.* = try counter.sinkOpen(null, null, false);
    try testing.expectError(error.SinkLimit, counter.sinkOpen(null, null, false));
    try testing.expectError(error.SinkLimit, Counter.attach(counter.key, null, null, false));
    for (sinks) |sink| try testing.expectEqual(Counter.SinkClosed.closed, try counter.sinkClose(sink));
}

test "destroy-on-thread-exit from a callback is refused: the dispatcher would join itself" {
    const counter = try Counter.open(testing.allocator);
    var hook: FromCallback = .{ .counter = counter, .action = Counter.destroyOnThreadExit };
    try hook.run();
    try testing.expectEqual(@as(?counter_module.Error, error.WrongThread), hook.result);
    _ = try counter.close(sink_none);
    try counter.destroy(); // The dispatcher exits with no hook that would join it.
}

test "a lend is claimed only from the participant that made it, not a later one in its slot" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    const id = try counter.create(sink_none, .{});
    defer _ = counter.release(id, sink_none) catch unreachable;

    // Participant A borrows a reference and lends it on, then ends: its lend is released.
    const a = try counter.sinkOpen(null, null, false);
    const a_generation = try counter.sinkGeneration(a);
    try counter.retain(id, sink_none);
    try counter.lend(id, sink_none);
    try counter.borrowFrom(id, sink_none, 0, a);
    try counter.lend(id, a);
    try testing.expectEqual(Counter.SinkClosed.closed, try counter.sinkClose(a));

    // B gets the same slot, and lends a reference of its own.
    const b = try counter.sinkOpen(null, null, false);
    try testing.expectEqual(a, b);
    const b_generation = try counter.sinkGeneration(b);
    try testing.expect(b_generation != a_generation);
    try counter.retain(id, sink_none);
    try counter.lend(id, sink_none);
    try counter.borrowFrom(id, sink_none, 0, b);
    try counter.lend(id, b);

    // A's stale claim is refused and leaves B's lend where it is; B's own claim works.
    try testing.expectError(error.NoReference, counter.borrowFrom(id, a, a_generation, sink_none));
    try testing.expectEqual(@as(u32, 1), (try counter.info(id)).refs_lent);
    try counter.borrowFrom(id, b, b_generation, sink_none);
    _ = try counter.release(id, sink_none);
    try testing.expectEqual(Counter.SinkClosed.closed, try counter.sinkClose(b));
}

/// Counts live allocations, so that a test can wait until a thread it cannot join (a
/// detached waker) has freed what it was the last to hold.
const CountingAllocator = struct {
    live: std.atomic.Value(usize) = .init(0),

    fn allocator(self: *CountingAllocator) std.mem.Allocator {
        return .{ .ptr = self, .vtable = &.{ .alloc = alloc, .resize = resize, .remap = remap, .free = free } };
    }

    fn alloc(context: *anyopaque, len: usize, alignment: std.mem.Alignment, ret_addr: usize) ?[*]u8 {
        const self: *CountingAllocator = @ptrCast(@alignCast(context));
        const memory = testing.allocator.rawAlloc(len, alignment, ret_addr) orelse return null;
        _ = self.live.fetchAdd(1, .monotonic);
        return memory;
    }

    fn resize(_: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ret_addr: usize) bool {
        return testing.allocator.rawResize(memory, alignment, new_len, ret_addr);
    }

    fn remap(_: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ret_addr: usize) ?[*]u8 {
        return testing.allocator.rawRemap(memory, alignment, new_len, ret_addr);
    }

    fn free(context: *anyopaque, memory: []u8, alignment: std.mem.Alignment, ret_addr: usize) void {
        const self: *CountingAllocator = @ptrCast(@alignCast(context));
        testing.allocator.rawFree(memory, alignment, ret_addr);
        // Release: pairs with the waiting test's acquire, after which the memory is gone.
        _ = self.live.fetchSub(1, .release);
    }

    fn waitForNone(self: *CountingAllocator) !void {
        const deadline: Deadline = .fromNow(wait_timeout_ns);
        while (self.live.load(.acquire) != 0) {
            if (deadline.passed()) return error.Timeout;
            std.Thread.yield() catch {};
        }
    }
};

test "the last hold, dropped by a waker let go, never frees the memory under its closer's locks" {
    // The opener has destroyed the counter; a sink's close lets its waker go, and the
    // waker drops the last hold. It must wait for the closer to leave its every-lock
    // section before freeing: ThreadSanitizer and valgrind see the use after free if not.
    var counting: CountingAllocator = .{};
    for (0..200) |_| {
        const counter = try Counter.open(counting.allocator());
        var wakes: WakeCount = .{};
        const sink = try counter.sinkOpen(WakeCount.wake, &wakes, true);
        try counter.destroy(); // The sink and its waker keep the memory.
        // Nothing is owed to the sink, so its waker is idle: the close is immediate.
        try testing.expectEqual(Counter.SinkClosed.closed, try counter.sinkClose(sink));
        try counting.waitForNone(); // The waker freed the counter.
    }
}

fn createReleaseMany(counter: *Counter, ids: []Id) !void {
    for (ids) |*id| id.* = try counter.create(sink_none, .{ .size_bytes = 8 });
    for (ids) |id| _ = try counter.release(id, sink_none);
}

test "the dispatcher gives an emptied shard's memory back once it has stayed empty for the delay, and not before" {
    var ids: [2000]Id = undefined;

    // A delay never reached: the memory stays while the shard empties and refills.
    const keeping = try Counter.open(testing.allocator);
    defer keeping.destroy() catch unreachable;
    keeping.table.trim_min = 64;
    keeping.trim_delay_ns = std.math.maxInt(u64);
    try createReleaseMany(keeping, &ids);
    const peak = keeping.stats().memory_bytes;
    try testing.expect(peak >= ids.len * 40);
    try createReleaseMany(keeping, &ids);
    try testing.expectEqual(peak, keeping.stats().memory_bytes);

    // A short one: given back a round or two after the delay.
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    counter.table.trim_min = 64;
    counter.trim_delay_ns = 20 * std.time.ns_per_ms;
    try createReleaseMany(counter, &ids);
    const deadline: Deadline = .fromNow(wait_timeout_ns);
    while (counter.stats().memory_bytes >= peak) {
        if (deadline.passed()) return error.TestUnexpectedResult;
        std.Thread.yield() catch {};
    }
    // Each slot's generation stays, and keeps the old ids stale.
    try testing.expect(counter.stats().memory_bytes <= ids.len * @sizeOf(u32) * 2);
    for (ids) |id| try testing.expectError(error.StaleId, counter.info(id));
    const fresh = try counter.create(sink_none, .{});
    for (ids) |id| try testing.expect(fresh != id);
    _ = try counter.release(fresh, sink_none);
}

// --- Counts without the lock (`Table.retainFast`, `Table.releaseFast`) racing the locked paths.
// Each shape runs `race_rounds_default` times (scaled), the locked side starting at a random
// offset into the other thread's run of operations.

/// Rounds of each race: 300, times REFSCOPE_STRESS_SCALE (0.1 under valgrind).
const race_rounds_default = 300;
const race_spins_max = 2000;

/// Retains and releases `id` as `caller` until `stop`, in pairs; counts the calls that failed
/// after `ended` was seen set before them, and the ones that succeeded then (which must not).
const Hammer = struct {
    counter: *Counter,
    id: Id,
    caller: u32,
    started: std.atomic.Value(bool) = .init(false),
    ended: std.atomic.Value(bool) = .init(false),
    stop: std.atomic.Value(bool) = .init(false),
    /// Calls made after `ended` was seen that succeeded: the fast path let a call through
    /// that the locked path refuses.
    succeeded_after_end: u32 = 0,
    pairs: u32 = 0,

    fn run(hammer: *Hammer) void {
        hammer.started.store(true, .release);
        while (!hammer.stop.load(.acquire)) {
            const ended = hammer.ended.load(.acquire);
            const retained = if (hammer.counter.retain(hammer.id, hammer.caller)) |_| true else |_| false;
            if (ended and retained) hammer.succeeded_after_end += 1;
            if (retained) {
                const released = if (hammer.counter.release(hammer.id, hammer.caller)) |_| true else |_| false;
                if (ended and released) hammer.succeeded_after_end += 1;
                hammer.pairs += 1;
            }
            // Past the end, one more round of calls shows they all fail; then stop.
            if (ended) break;
        }
    }

    fn waitStarted(hammer: *Hammer) void {
        while (!hammer.started.load(.acquire)) std.Thread.yield() catch {};
    }
};

/// Waits until every callback that left the table has run (native callbacks only here).
fn waitCallbacksRun(counter: *Counter) !void {
    const deadline: Deadline = .fromNow(wait_timeout_ns);
    while (true) {
        const stats = counter.stats();
        if (stats.native_callbacks_run == stats.callbacks_released) return;
        if (deadline.passed()) return error.Timeout;
        std.Thread.yield() catch {};
    }
}

/// Registers a native out-of-scope callback on `id` that counts its runs into `fired`.
fn registerCount(counter: *Counter, id: Id, caller: u32, fired: *Latch) !bool {
    return counter.register(id, caller, .out_of_scope, .{ .native = .{ .function = countCallback, .context = fired } });
}

/// Starts `hammer` on a thread of its own, and returns once it runs and a random number of
/// spins later: the offset at which the caller's locked operation starts.
fn startHammer(hammer: *Hammer, random: std.Random) !std.Thread {
    const thread = try std.Thread.spawn(.{}, Hammer.run, .{hammer});
    hammer.waitStarted();
    spinRandom(random);
    return thread;
}

/// Takes a native object holding one local reference through a retain and two releases,
/// checking its count at each step, and that it is gone after the last.
fn expectExactCounts(counter: *Counter, id: Id) !void {
    try counter.retain(id, sink_none);
    try testing.expectEqual(@as(u32, 2), (try counter.info(id)).refs_local);
    _ = try counter.release(id, sink_none);
    try testing.expectEqual(@as(u32, 1), (try counter.info(id)).refs_local);
    _ = try counter.release(id, sink_none);
    try testing.expectError(error.StaleId, counter.info(id));
}

fn spinRandom(random: std.Random) void {
    for (0..random.uintLessThan(u32, race_spins_max)) |_| std.atomic.spinLoopHint();
}

test "fast counts race the owner's end: none gets through after it, and the object goes out of scope once" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    var prng = std.Random.DefaultPrng.init(testing.random_seed);
    for (0..try scaledDefault(race_rounds_default)) |_| {
        const sink = try counter.sinkOpen(null, null, false);
        const id = try counter.create(sink, .{});
        var fired: Latch = .{};
        try testing.expect(try registerCount(counter, id, sink, &fired));
        // Another thread acting as the owner (the C ABI allows it): its calls take the fast
        // path while the owner's count is above zero.
        var hammer: Hammer = .{ .counter = counter, .id = id, .caller = sink };
        const thread = try startHammer(&hammer, prng.random());
        try testing.expectEqual(Counter.SinkClosed.closed, try counter.sinkClose(sink));
        hammer.ended.store(true, .release);
        thread.join();
        try testing.expectEqual(@as(u32, 0), hammer.succeeded_after_end);
        try fired.waitFor(1);
        try testing.expectError(error.StaleId, counter.info(id));
        try waitCallbacksRun(counter);
        try testing.expectEqual(@as(u64, 1), fired.get());
    }
    try testing.expectEqual(@as(u64, 0), counter.stats().objects_live);
}

test "fast counts race the counter's close: none gets through after it" {
    var prng = std.Random.DefaultPrng.init(testing.random_seed);
    for (0..(try scaledDefault(race_rounds_default)) / 3 + 1) |_| {
        const counter = try Counter.open(testing.allocator);
        const id = try counter.create(sink_none, .{});
        var fired: Latch = .{};
        try testing.expect(try registerCount(counter, id, sink_none, &fired));
        var hammer: Hammer = .{ .counter = counter, .id = id, .caller = sink_none };
        const thread = try startHammer(&hammer, prng.random());
        _ = try counter.close(sink_none);
        hammer.ended.store(true, .release);
        thread.join();
        try testing.expectEqual(@as(u32, 0), hammer.succeeded_after_end);
        // Destroying waits for the dispatcher to run every callback.
        try counter.destroy();
        try testing.expectEqual(@as(u64, 1), fired.get());
    }
}

test "fast counts on a stale id never reach the slot's next objects, whose counts stay exact" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    var prng = std.Random.DefaultPrng.init(testing.random_seed);
    for (0..try scaledDefault(race_rounds_default)) |_| {
        // The slot's object goes; a thread keeps calling with its id while the slot is
        // reused again and again (a freed slot is the first taken).
        const stale = try counter.create(sink_none, .{});
        _ = try counter.release(stale, sink_none);
        var hammer: Hammer = .{ .counter = counter, .id = stale, .caller = sink_none };
        hammer.ended.store(true, .release);
        const Loop = struct {
            fn run(h: *Hammer) void {
                while (!h.stop.load(.acquire)) {
                    if (h.counter.retain(h.id, h.caller)) |_| h.succeeded_after_end += 1 else |_| {}
                    if (h.counter.release(h.id, h.caller)) |_| h.succeeded_after_end += 1 else |_| {}
                }
            }
        };
        const thread = try std.Thread.spawn(.{}, Loop.run, .{&hammer});
        spinRandom(prng.random());
        for (0..20) |_| {
            const id = try counter.create(sink_none, .{});
            try testing.expect(id != stale);
            try expectExactCounts(counter, id);
        }
        hammer.stop.store(true, .release);
        thread.join();
        try testing.expectEqual(@as(u32, 0), hammer.succeeded_after_end);
    }
    try testing.expectEqual(@as(u64, 0), counter.stats().objects_live);
}

test "fast counts race locked counts to zero: exact at every step, out of scope exactly once" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    var prng = std.Random.DefaultPrng.init(testing.random_seed);
    for (0..try scaledDefault(race_rounds_default)) |_| {
        const id = try counter.create(sink_none, .{});
        var fired: Latch = .{};
        try testing.expect(try registerCount(counter, id, sink_none, &fired));
        // The hammer's pairs keep the count above zero only while it holds one; the test's
        // own reference goes at a random point, so the last release is either side's.
        var hammer: Hammer = .{ .counter = counter, .id = id, .caller = sink_none };
        const thread = try startHammer(&hammer, prng.random());
        _ = try counter.release(id, sink_none);
        hammer.stop.store(true, .release);
        thread.join();
        try fired.waitFor(1);
        try testing.expectError(error.StaleId, counter.info(id));
        try waitCallbacksRun(counter);
        try testing.expectEqual(@as(u64, 1), fired.get());
    }
    try testing.expectEqual(@as(u64, 0), counter.stats().objects_live);
}

test "a last release without the lock: stale at once, out of the figures, and its slot reused" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    const id = try counter.create(sink_none, .{ .size_bytes = 100 });
    const keep = try counter.create(sink_none, .{ .size_bytes = 1 });
    try testing.expectEqual(counter_module.Outcome.ok, try counter.release(id, sink_none));
    // Every lookup finds it gone, before any lock was taken for it.
    try testing.expectError(error.StaleId, counter.info(id));
    try testing.expectError(error.StaleId, counter.retain(id, sink_none));
    try testing.expectError(error.StaleId, counter.release(id, sink_none));
    try testing.expectError(error.StaleId, counter.lend(id, sink_none));
    try testing.expectEqual(false, try counter.register(id, sink_none, .out_of_scope, .{ .native = .{ .function = countCallback, .context = null } }));
    const stats = counter.stats();
    try testing.expectEqual(@as(u64, 1), stats.objects_live);
    try testing.expectEqual(@as(u64, 1), stats.bytes_live);
    var start: u32 = 0;
    var records: [4]counter_module.Record = undefined;
    const count = try counter.snapshot(&start, &records);
    try testing.expectEqual(@as(usize, 1), count);
    try testing.expectEqual(keep, records[0].id);
    // Its slot is the next one taken, in a new generation.
    const again = try counter.create(sink_none, .{});
    const table_module = @import("table.zig");
    try testing.expectEqual(table_module.IdParts.decode(id).?.slot, table_module.IdParts.decode(again).?.slot);
    try testing.expect(again != id);
    _ = try counter.release(again, sink_none);
    _ = try counter.release(keep, sink_none);
    try testing.expectEqual(@as(u64, 0), counter.stats().objects_live);
}

/// Releases each of `ids` once as `caller`, at once with other threads doing the same.
const Releaser = struct {
    counter: *Counter,
    ids: []const Id,
    caller: u32,
    go: *std.atomic.Value(bool),
    failed: u32 = 0,

    fn run(releaser: *Releaser) void {
        while (!releaser.go.load(.acquire)) std.atomic.spinLoopHint();
        for (releaser.ids) |id| {
            _ = releaser.counter.release(id, releaser.caller) catch {
                releaser.failed += 1;
            };
        }
    }
};

test "last releases without the lock race each other, registrations and borrows: each object goes once" {
    const counter = try Counter.open(testing.allocator);
    defer counter.destroy() catch unreachable;
    var prng = std.Random.DefaultPrng.init(testing.random_seed);
    const per_round = 64;
    for (0..try scaledDefault(race_rounds_default)) |_| {
        // Each object: two references, released by two threads at once; the test meanwhile
        // registers a callback on, or lends and borrows back, some of them.
        var ids: [per_round]Id = undefined;
        for (&ids) |*id| {
            id.* = try counter.create(sink_none, .{ .size_bytes = 8 });
            try counter.retain(id.*, sink_none);
        }
        var fired: Latch = .{};
        var go: std.atomic.Value(bool) = .init(false);
        var releasers = [2]Releaser{
            .{ .counter = counter, .ids = &ids, .caller = sink_none, .go = &go },
            .{ .counter = counter, .ids = &ids, .caller = sink_none, .go = &go },
        };
        var threads: [2]std.Thread = undefined;
        for (&threads, &releasers) |*thread, *releaser| thread.* = try std.Thread.spawn(.{}, Releaser.run, .{releaser});
        go.store(true, .release);
        spinRandom(prng.random());
        var registered: u64 = 0;
        for (ids, 0..) |id, index| {
            if (index % 2 == 0) {
                const accepted = registerCount(counter, id, sink_none, &fired) catch |err| {
                    try testing.expectEqual(error.StaleId, err);
                    continue;
                };
                registered += @intFromBool(accepted);
            } else {
                // A lend made while the object is in scope, claimed back at once.
                counter.retain(id, sink_none) catch continue;
                try counter.lend(id, sink_none);
                try counter.borrow(id, sink_none, sink_none);
                _ = try counter.release(id, sink_none);
            }
        }
        for (threads) |thread| thread.join();
        try testing.expectEqual(@as(u32, 0), releasers[0].failed + releasers[1].failed);
        for (ids) |id| try testing.expectError(error.StaleId, counter.info(id));
        try fired.waitFor(registered);
        try waitCallbacksRun(counter);
        try testing.expectEqual(registered, fired.get());
        const stats = counter.stats();
        try testing.expectEqual(@as(u64, 0), stats.objects_live);
        try testing.expectEqual(@as(u64, 0), stats.bytes_live);
    }
}

test "last releases without the lock race the counter's close and the owner's end: nothing stays live" {
    var prng = std.Random.DefaultPrng.init(testing.random_seed);
    const per_round = 64;
    for (0..(try scaledDefault(race_rounds_default)) / 3 + 1) |round| {
        const counter = try Counter.open(testing.allocator);
        const sink = try counter.sinkOpen(null, null, false);
        var ids: [per_round]Id = undefined;
        for (&ids) |*id| id.* = try counter.create(sink, .{ .size_bytes = 8 });
        var go: std.atomic.Value(bool) = .init(false);
        // Another thread acting as the owner (the C ABI allows it) releases them all.
        var releaser: Releaser = .{ .counter = counter, .ids = &ids, .caller = sink, .go = &go };
        const thread = try std.Thread.spawn(.{}, Releaser.run, .{&releaser});
        go.store(true, .release);
        spinRandom(prng.random());
        if (round % 2 == 0) {
            _ = try counter.close(sink_none);
        } else {
            try testing.expectEqual(Counter.SinkClosed.closed, try counter.sinkClose(sink));
        }
        thread.join();
        if (round % 2 == 1) {
            try testing.expectEqual(@as(u64, 0), counter.stats().objects_live);
            for (ids) |id| try testing.expectError(error.StaleId, counter.info(id));
        } else {
            try testing.expectEqual(Counter.SinkClosed.closed, try counter.sinkClose(sink));
        }
        // Destroying asserts, on the dispatcher's way out, that nothing is live.
        try counter.destroy();
    }
}

test "REFSCOPE_LOCKED_COUNTS: a counter opened with it takes the lock for every count change" {
    const libc = struct {
        extern "c" fn setenv(name: [*:0]const u8, value: [*:0]const u8, overwrite: c_int) c_int;
        extern "c" fn unsetenv(name: [*:0]const u8) c_int;
    };
    try testing.expectEqual(@as(c_int, 0), libc.setenv("REFSCOPE_LOCKED_COUNTS", "1", 1));
    const locked = Counter.open(testing.allocator);
    try testing.expectEqual(@as(c_int, 0), libc.setenv("REFSCOPE_LOCKED_COUNTS", "0", 1));
    const zero = Counter.open(testing.allocator);
    try testing.expectEqual(@as(c_int, 0), libc.unsetenv("REFSCOPE_LOCKED_COUNTS"));
    for ([_]*Counter{ try locked, try zero }, [_]bool{ false, true }) |counter, fast| {
        defer counter.destroy() catch unreachable;
        try testing.expectEqual(fast, counter.table.lock_free);
        // Exact either way.
        const id = try counter.create(sink_none, .{});
        try expectExactCounts(counter, id);
        try testing.expectEqual(@as(u64, 0), counter.stats().objects_live);
    }
}
