//! The threaded stress test (issue 5): the counter driven at random by several threads.
//!
//! "threads: ...": four threads (three with sinks, one acting as native code) create,
//! retain, release, lend to one another, borrow, take submitted and lineage references,
//! free, and register and unregister native callbacks at random on one counter with its
//! real dispatcher thread, on their own objects, on objects lent to them, and on a few
//! objects they all share; each callback counts its firings. At the end every reference is
//! released and nothing is live; every callback the counter accepted fired exactly once,
//! and every one it refused (after a free, after its object went out of scope) or gave back
//! (unregistered) never fired.
//!
//! The seed defaults to the test runner's `--seed` (`zig build test --seed <n>` replays a
//! crash); a failing check prints its seed and the command that replays it. Environment:
//!   REFSCOPE_STRESS_SEED=<n>   the seed (each thread derives its own)
//!   REFSCOPE_STRESS_OPS=<n>    operations per thread (default 50000); more to soak
//!   REFSCOPE_STRESS_SCALE=<x>  multiplies the default: 0.1 under valgrind, say

const std = @import("std");
const testing = std.testing;
const table_module = @import("table.zig");
const callback = @import("callback.zig");
const counter_module = @import("counter.zig");
const sync = @import("sync.zig");
const test_support = @import("testing.zig");
const Latch = test_support.Latch;
const envInteger = test_support.envInteger;
const scaledDefault = test_support.scaledDefault;
const sinkName = test_support.sinkName;
const Graveyard = test_support.Graveyard;

const Id = table_module.Id;
const Sink = table_module.Sink;
const CallbackKind = table_module.CallbackKind;
const Counter = counter_module.Counter;
const sink_none = table_module.sink_none;

const stress_thread_count = 4;
/// The first threads open a sink each; the others act as native code (`sink_none`).
const stress_sink_count = 3;
const stress_operations_default = 50_000;
/// Local references a thread holds before it stops creating objects.
const stress_held_max = 48;
const stress_leases_max = 8;
/// Objects every thread holds from its start to its end, and takes and drops more
/// references to often: contention on the same entries, and a race for the last release.
const stress_shared_count = 4;
/// Bounds every wait for another thread, to fail a hang rather than time a run: a minute,
/// plus 10 ms per operation of a thread (some 500 times what one takes in Debug).
fn stressTimeout(operations: u64) u64 {
    return 60 * std.time.ns_per_s +| operations *| (10 * std.time.ns_per_ms);
}

/// One registration of a native callback: its context, and how often it ran.
const Tally = struct {
    object_id: Id,
    kind: CallbackKind,
    /// Counts every tally's firings, for the test to wait on.
    firings: *Latch,
    fired: std.atomic.Value(u32) = .init(0),
    /// Runs given another object's id.
    misdirected: std.atomic.Value(u32) = .init(0),
    /// The counter accepted the registration. Written by the registering thread, read by
    /// the test once that thread has released everything.
    registered: bool = false,
    /// It must run once: registered and not unregistered.
    due: bool = false,

    fn run(id: f64, context: ?*anyopaque) callconv(.c) void {
        const tally: *Tally = @ptrCast(@alignCast(context.?));
        if (id != tally.object_id) _ = tally.misdirected.fetchAdd(1, .monotonic);
        _ = tally.fired.fetchAdd(1, .acq_rel);
        tally.firings.add();
    }

    fn callbackOf(tally: *Tally) callback.Callback {
        return .{ .native = .{ .function = run, .context = tally } };
    }
};

/// Points the threads and the test meet at. Every wait is bounded and ends early once a
/// thread has failed (`abort`).
const Phase = enum {
    /// Every thread has its sink: they start together, to overlap as much as they can.
    started,
    /// Every thread has stopped lending: what is in an inbox now is all it will get.
    sent,
    /// Every thread has released everything.
    released,
    /// The test has checked that nothing is live: the threads may close their sinks.
    checked,
};

const Phases = struct {
    /// How many have arrived at each phase.
    arrived: std.EnumArray(Phase, Latch),
    /// The thread whose failure aborted the run first; null if none did (or the test did).
    /// Written by that thread alone, and read by the test once it has joined every thread.
    culprit: ?usize = null,

    fn init(timeout_ns: u64) Phases {
        return .{ .arrived = .initFill(.{ .timeout_ns = timeout_ns }) };
    }

    fn arrive(phases: *Phases, phase: Phase) void {
        phases.arrived.getPtr(phase).add();
    }

    /// Ends every wait, on a failure of thread `culprit` (null: of the test itself). Others
    /// fail in turn (a thread that aborts closes its sink, releasing what it lent), so the
    /// first is the one to report.
    fn abort(phases: *Phases, culprit: ?usize) void {
        // The first phase's latch tells which abort came first; every latch is aborted.
        if (phases.arrived.getPtr(.started).abort()) phases.culprit = culprit;
        for (&phases.arrived.values) |*latch| _ = latch.abort();
    }

    fn wait(phases: *Phases, phase: Phase, count: u32) !void {
        return phases.arrived.getPtr(phase).waitFor(count);
    }
};

/// A local reference a thread holds, and the object's owner (to know whether the thread
/// may free it or register on it).
const Held = struct { id: Id, owner: Sink };

/// A reference lent to a thread: `lender` lent it, the receiver borrows it.
const Lent = struct { id: Id, lender: Sink, owner: Sink };

const Lease = struct {
    kind: enum { submitted, lineage },
    ids: [3]Id,
    len: usize,
};

const Inbox = struct {
    mutex: sync.Mutex = .{},
    lent: std.ArrayList(Lent) = .empty,
};

const StressOperation = enum {
    create,
    retain,
    release,
    release_batch,
    lend,
    receive,
    share,
    submitted,
    lineage,
    lease_release,
    free,
    register,
    register_late,
    unregister,
    inspect,
};

const stress_weights = std.enums.EnumArray(StressOperation, u32).init(.{
    .create = 12,
    .retain = 8,
    .release = 14,
    .release_batch = 4,
    .lend = 8,
    .receive = 8,
    .share = 8,
    .submitted = 4,
    .lineage = 3,
    .lease_release = 6,
    .free = 2,
    .register = 8,
    .register_late = 3,
    .unregister = 3,
    .inspect = 3,
});

const Stress = struct {
    counter: *Counter,
    seed: u64,
    operations: u64,
    /// Native objects lent to every thread by the test, and borrowed by each at its start.
    shared: [stress_shared_count]Id = undefined,
    phases: Phases,
    /// Callback firings, of every tally.
    firings: Latch,
    workers: [stress_thread_count]Worker = undefined,

    fn report(stress: *const Stress, comptime format: []const u8, args: anytype) void {
        std.debug.print("\nthreads test: " ++ format ++ "\n", args);
        std.debug.print("  seed {d}; run again with:\n  REFSCOPE_STRESS_SEED={d} REFSCOPE_STRESS_OPS={d} bash .ci/zig build test --summary all\n", .{ stress.seed, stress.seed, stress.operations });
    }

    /// The test's side of the end: once every thread released everything, nothing is live
    /// and every callback due has run. Returns how many are due.
    fn expectQuiescent(stress: *Stress) !u64 {
        try stress.phases.wait(.released, stress_thread_count);
        var registered: u64 = 0;
        var due: u64 = 0;
        for (&stress.workers) |*worker| {
            for (worker.tallies[0..worker.tally_count]) |*tally| {
                registered += @intFromBool(tally.registered);
                due += @intFromBool(tally.due);
            }
        }
        const stats = stress.counter.stats();
        if (stats.objects_live != 0 or stats.bytes_live != 0) {
            stress.report("{d} objects ({d} bytes) live after every thread released everything", .{ stats.objects_live, stats.bytes_live });
            return error.ObjectsLeftLive;
        }
        if (stats.callbacks_registered != registered or stats.callbacks_released != due) {
            stress.report("the counter registered {d} callbacks and released {d}; the threads saw {d} accepted, {d} due", .{ stats.callbacks_registered, stats.callbacks_released, registered, due });
            return error.CallbackCount;
        }
        stress.firings.waitFor(due) catch |err| {
            stress.report("{d} of {d} callbacks ran", .{ stress.firings.get(), due });
            return err;
        };
        return due;
    }

    /// After the counter's destruction (every queued callback has run): each callback ran
    /// exactly as often as it was due, with its own object's id.
    fn expectExactlyOnce(stress: *Stress, due: u64) !void {
        for (&stress.workers) |*worker| {
            for (worker.tallies[0..worker.tally_count], 0..) |*tally, index| {
                const fired = tally.fired.load(.acquire);
                const misdirected = tally.misdirected.load(.monotonic);
                if (fired == @intFromBool(tally.due) and misdirected == 0) continue;
                stress.report("thread {d}'s callback #{d} ({t} on {d}, accepted: {}, due: {}) ran {d} times, {d} with another id", .{ worker.index, index, tally.kind, tally.object_id, tally.registered, tally.due, fired, misdirected });
                return error.NotExactlyOnce;
            }
        }
        try testing.expectEqual(due, stress.firings.get());
    }
};

const Worker = struct {
    stress: *Stress,
    index: usize,
    prng: std.Random.DefaultPrng,
    /// Its own registrations, in a fixed array: the dispatcher reads them meanwhile.
    tallies: []Tally,
    tally_count: usize = 0,
    sink: Sink = sink_none,
    held: std.ArrayList(Held) = .empty,
    leases: std.ArrayList(Lease) = .empty,
    /// Objects it freed lately: an out-of-scope registration on one must be refused.
    freed: Graveyard = .{},
    /// What others lent it; they append, it takes.
    inbox: Inbox = .{},
    /// What it was doing, and how it failed: read by the test once it has exited.
    doing: []const u8 = "starting",
    failure: ?anyerror = null,

    fn main(worker: *Worker) void {
        worker.run() catch |err| worker.fail(err);
        if (worker.sink != sink_none) {
            // No wake, so no waker: the close finishes at once.
            if (worker.stress.counter.sinkClose(worker.sink)) |closed| {
                if (closed != .closed) worker.fail(error.SinkNotClosed);
            } else |err| worker.fail(err);
        }
        worker.held.deinit(testing.allocator);
        worker.leases.deinit(testing.allocator);
    }

    fn fail(worker: *Worker, err: anyerror) void {
        if (worker.failure == null) worker.failure = err;
        worker.stress.phases.abort(worker.index);
    }

    fn run(worker: *Worker) !void {
        const phases = &worker.stress.phases;
        if (worker.index < stress_sink_count) worker.sink = try worker.stress.counter.sinkOpen(null, null, false);
        for (worker.stress.shared) |id| try worker.counter().borrow(id, sink_none, worker.sink);
        phases.arrive(.started);
        try phases.wait(.started, stress_thread_count);
        for (0..worker.stress.operations) |_| try worker.randomStep();
        worker.doing = "waiting until nobody lends";
        phases.arrive(.sent);
        try phases.wait(.sent, stress_thread_count);
        try worker.receive();
        try worker.releaseEverything();
        worker.doing = "waiting for the check";
        phases.arrive(.released);
        try phases.wait(.checked, 1);
    }

    fn random(worker: *Worker) std.Random {
        return worker.prng.random();
    }

    fn chance(worker: *Worker, probability: f64) bool {
        return worker.random().float(f64) < probability;
    }

    fn counter(worker: *Worker) *Counter {
        return worker.stress.counter;
    }

    /// Native code owns everything it holds; a sink, only what it created.
    fn owns(worker: *const Worker, held: Held) bool {
        return worker.sink == sink_none or held.owner == worker.sink;
    }

    fn randomStep(worker: *Worker) !void {
        var roll = worker.random().uintLessThan(u32, stressWeightsTotal());
        const chosen = for (std.enums.values(StressOperation)) |operation| {
            if (roll < stress_weights.get(operation)) break operation;
            roll -= stress_weights.get(operation);
        } else unreachable;
        worker.doing = @tagName(chosen);
        switch (chosen) {
            .create => try worker.create(),
            .retain => try worker.retain(),
            .release => try worker.release(),
            .release_batch => try worker.releaseBatch(),
            .lend => try worker.lend(),
            .receive => try worker.receive(),
            .share => try worker.share(),
            .submitted => try worker.lease(.submitted),
            .lineage => try worker.lease(.lineage),
            .lease_release => try worker.leaseRelease(),
            .free => try worker.free(),
            .register => if (worker.pickHeld()) |index| {
                try worker.register(worker.held.items[index], if (worker.random().boolean()) .out_of_scope else .deleted);
            },
            .register_late => try worker.registerLate(),
            .unregister => try worker.unregister(),
            .inspect => try worker.inspect(),
        }
    }

    fn stressWeightsTotal() u32 {
        var total: u32 = 0;
        for (stress_weights.values) |weight| total += weight;
        return total;
    }

    fn pickHeld(worker: *Worker) ?usize {
        if (worker.held.items.len == 0) return null;
        return worker.random().uintLessThan(usize, worker.held.items.len);
    }

    /// Up to three ids of objects it holds (repeats allowed), with `probability`.
    fn heldIds(worker: *Worker, buffer: *[3]Id, probability: f64) []const Id {
        if (worker.held.items.len == 0 or !worker.chance(probability)) return &.{};
        const count = 1 + worker.random().uintLessThan(usize, buffer.len);
        for (buffer[0..count]) |*id| id.* = worker.held.items[worker.pickHeld().?].id;
        return buffer[0..count];
    }

    fn create(worker: *Worker) !void {
        if (worker.held.items.len >= stress_held_max) return worker.release();
        var contains_buffer: [3]Id = undefined;
        var lineage_buffer: [3]Id = undefined;
        const id = try worker.counter().create(worker.sink, .{
            .size_bytes = worker.random().uintAtMost(u64, 64),
            .reconstructable = worker.chance(0.3),
            .contains = worker.heldIds(&contains_buffer, 0.2),
            .lineage = worker.heldIds(&lineage_buffer, 0.15),
        });
        const held: Held = .{ .id = id, .owner = worker.sink };
        try worker.held.append(testing.allocator, held);
        if (worker.chance(0.6)) try worker.register(held, .out_of_scope);
        if (worker.chance(0.3)) try worker.register(held, .deleted);
    }

    fn retain(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.items[index];
        try worker.counter().retain(held.id, worker.sink);
        try worker.held.append(testing.allocator, held);
    }

    fn release(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.swapRemove(index);
        _ = try worker.counter().release(held.id, worker.sink);
    }

    fn releaseBatch(worker: *Worker) !void {
        var ids: [8]Id = undefined;
        const count = @min(worker.held.items.len, 1 + worker.random().uintLessThan(usize, ids.len));
        for (ids[0..count]) |*id| id.* = worker.held.swapRemove(worker.pickHeld().?).id;
        _ = try worker.counter().releaseBatch(ids[0..count], worker.sink);
    }

    /// Lends one of its references to another thread, which borrows it later.
    fn lend(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.swapRemove(index);
        try worker.counter().lend(held.id, worker.sink);
        var target = worker.random().uintLessThan(usize, stress_thread_count - 1);
        if (target >= worker.index) target += 1;
        const inbox = &worker.stress.workers[target].inbox;
        inbox.mutex.lock();
        defer inbox.mutex.unlock();
        try inbox.lent.append(testing.allocator, .{ .id = held.id, .lender = worker.sink, .owner = held.owner });
    }

    /// Borrows everything lent to it so far.
    fn receive(worker: *Worker) !void {
        var lent: std.ArrayList(Lent) = blk: {
            worker.inbox.mutex.lock();
            defer worker.inbox.mutex.unlock();
            const taken = worker.inbox.lent;
            worker.inbox.lent = .empty;
            break :blk taken;
        };
        defer lent.deinit(testing.allocator);
        for (lent.items) |item| {
            try worker.counter().borrow(item.id, item.lender, worker.sink);
            try worker.held.append(testing.allocator, .{ .id = item.id, .owner = item.owner });
        }
    }

    /// Takes one more reference to a shared object (it holds one until its end).
    fn share(worker: *Worker) !void {
        const id = worker.stress.shared[worker.random().uintLessThan(usize, stress_shared_count)];
        try worker.counter().retain(id, worker.sink);
        try worker.held.append(testing.allocator, .{ .id = id, .owner = sink_none });
    }

    fn lease(worker: *Worker, kind: @FieldType(Lease, "kind")) !void {
        if (worker.leases.items.len >= stress_leases_max) return worker.leaseRelease();
        var taken: Lease = .{ .kind = kind, .ids = undefined, .len = 0 };
        taken.len = worker.heldIds(&taken.ids, 1).len;
        if (taken.len == 0) return;
        switch (kind) {
            .submitted => try worker.counter().submittedAdd(taken.ids[0..taken.len], worker.sink),
            .lineage => try worker.counter().lineageAdd(taken.ids[0..taken.len], worker.sink),
        }
        try worker.leases.append(testing.allocator, taken);
    }

    fn leaseRelease(worker: *Worker) !void {
        if (worker.leases.items.len == 0) return;
        const taken = worker.leases.swapRemove(worker.random().uintLessThan(usize, worker.leases.items.len));
        _ = switch (taken.kind) {
            .submitted => try worker.counter().submittedRemove(taken.ids[0..taken.len], worker.sink),
            .lineage => try worker.counter().lineageRemove(taken.ids[0..taken.len], worker.sink),
        };
    }

    fn free(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.items[index];
        const result = worker.counter().free(held.id, worker.sink);
        if (!worker.owns(held)) {
            if (result) |_| return error.FreedByBorrower else |err| if (err != error.NotOwned) return err;
            return;
        }
        _ = try result;
        worker.freed.add(held.id);
    }

    fn newTally(worker: *Worker, id: Id, kind: CallbackKind) ?*Tally {
        if (worker.tally_count == worker.tallies.len) return null;
        const tally = &worker.tallies[worker.tally_count];
        tally.* = .{ .object_id = id, .kind = kind, .firings = &worker.stress.firings };
        worker.tally_count += 1;
        return tally;
    }

    /// Registers on an object it holds: refused to a borrower (NotOwned); always accepted
    /// for a deleted callback (the object is live); an out-of-scope callback only until the
    /// object is freed (by it, or by a native thread).
    fn register(worker: *Worker, held: Held, kind: CallbackKind) !void {
        const tally = worker.newTally(held.id, kind) orelse return;
        const result = worker.counter().register(held.id, worker.sink, kind, tally.callbackOf());
        if (!worker.owns(held)) {
            if (result) |_| return error.RegisteredByBorrower else |err| if (err != error.NotOwned) return err;
            return;
        }
        const registered = try result;
        tally.registered = registered;
        tally.due = registered;
        if (kind == .deleted and !registered) return error.HeldObjectRefusedRegistration;
        const freed = std.mem.indexOfScalar(Id, worker.freed.ids[0..worker.freed.len], held.id) != null;
        if (kind == .out_of_scope and registered and freed) return error.RegisteredAfterFree;
    }

    /// Finds a registration of its own that has run, and registers on that object again:
    /// its object is freed, out of scope or deleted, so the counter must refuse.
    fn registerLate(worker: *Worker) !void {
        const ran = worker.pickTally(hasRun) orelse return;
        // A deleted callback ran: the object is gone, so any kind is refused. An
        // out-of-scope one ran: the object may still be live (lineage-pinned, or freed).
        const kind: CallbackKind = if (ran.kind == .deleted and worker.random().boolean()) .deleted else .out_of_scope;
        const tally = worker.newTally(ran.object_id, kind) orelse return;
        if (try worker.counter().register(ran.object_id, worker.sink, kind, tally.callbackOf())) {
            tally.registered = true;
            tally.due = true;
            return error.RegisteredAfterOutOfScope;
        }
    }

    fn hasRun(tally: *const Tally) bool {
        return tally.due and tally.fired.load(.acquire) > 0;
    }

    fn isDue(tally: *const Tally) bool {
        return tally.due;
    }

    /// Removes a registration still due: if the counter still had it, it must never run;
    /// if not, it has left the table and must run once.
    fn unregister(worker: *Worker) !void {
        const tally = worker.pickTally(isDue) orelse return;
        if (try worker.counter().unregister(tally.object_id, worker.sink, tally.kind, tally.callbackOf())) tally.due = false;
    }

    /// A few random tries at one of its registrations that satisfies `matches`.
    fn pickTally(worker: *Worker, comptime matches: fn (*const Tally) bool) ?*Tally {
        if (worker.tally_count == 0) return null;
        for (0..8) |_| {
            const tally = &worker.tallies[worker.random().uintLessThan(usize, worker.tally_count)];
            if (matches(tally)) return tally;
        }
        return null;
    }

    /// An object it holds is live, in scope, and owned by whom it was told.
    fn inspect(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.items[index];
        const info = try worker.counter().info(held.id);
        if (info.out_of_scope) return error.HeldObjectOutOfScope;
        if (info.owner != held.owner) return error.WrongOwner;
    }

    fn releaseEverything(worker: *Worker) !void {
        worker.doing = "releasing everything";
        while (worker.leases.items.len > 0) try worker.leaseRelease();
        while (worker.held.items.len > 0) {
            if (worker.chance(0.2)) try worker.releaseBatch() else try worker.release();
        }
        for (worker.stress.shared) |id| _ = try worker.counter().release(id, worker.sink);
    }
};

test "threads: lending, borrowing and releasing at random, every callback runs exactly once" {
    const seed = try envInteger("REFSCOPE_STRESS_SEED") orelse testing.random_seed;
    const operations = try envInteger("REFSCOPE_STRESS_OPS") orelse try scaledDefault(stress_operations_default);
    // Each operation registers at most two callbacks.
    const tally_capacity = 2 * operations + 2;

    const timeout_ns = stressTimeout(operations);
    var stress: Stress = .{
        .counter = undefined,
        .seed = seed,
        .operations = operations,
        .phases = .init(timeout_ns),
        .firings = .{ .timeout_ns = timeout_ns },
    };
    var workers_ready: usize = 0;
    defer for (stress.workers[0..workers_ready]) |*worker| {
        testing.allocator.free(worker.tallies);
        worker.inbox.lent.deinit(testing.allocator);
    };
    for (&stress.workers, 0..) |*worker, index| {
        worker.* = .{
            .stress = &stress,
            .index = index,
            .prng = .init(seed +% index *% 0x9e3779b97f4a7c15),
            .tallies = try testing.allocator.alloc(Tally, tally_capacity),
        };
        workers_ready += 1;
    }
    // Destroyed before the tallies are freed: closing runs the callbacks still registered.
    const counter = try Counter.open(testing.allocator);
    // The dispatcher gives memory back as soon as a shard empties, while the threads run.
    counter.table.trim_min = 0;
    counter.trim_delay_ns = 0;
    stress.counter = counter;
    var destroyed = false;
    defer if (!destroyed) counter.destroy() catch unreachable;
    // The test lends each shared object once to every thread, and keeps no reference.
    for (&stress.shared) |*id| {
        id.* = try counter.create(sink_none, .{ .size_bytes = 8 });
        for (1..stress_thread_count) |_| try counter.retain(id.*, sink_none);
        for (0..stress_thread_count) |_| try counter.lend(id.*, sink_none);
    }

    var threads: [stress_thread_count]std.Thread = undefined;
    var running: usize = 0;
    errdefer {
        stress.phases.abort(null);
        for (threads[0..running]) |thread| thread.join();
    }
    for (&threads, &stress.workers) |*thread, *worker| {
        thread.* = try std.Thread.spawn(.{}, Worker.main, .{worker});
        running += 1;
    }

    const quiescent = stress.expectQuiescent();
    if (quiescent) |_| stress.phases.arrive(.checked) else |_| stress.phases.abort(null);
    for (threads) |thread| thread.join();
    running = 0;
    // Destroying joins the dispatcher: whatever was still queued has run.
    try counter.destroy();
    destroyed = true;

    if (stress.phases.culprit) |index| {
        const worker = &stress.workers[index];
        stress.report("thread {d} ({f}) failed while {s}: {s}", .{ index, sinkName(worker.sink), worker.doing, @errorName(worker.failure.?) });
        return worker.failure.?;
    }
    const due = try quiescent;
    try stress.expectExactlyOnce(due);
}
