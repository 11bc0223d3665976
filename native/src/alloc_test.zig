//! Every allocation failure. A scenario drives each entry point that allocates (open, sink
//! open with and without a wake, attach, create with nesting and lineage, native and sink
//! callbacks, lend and borrow, the batch operations) far enough to grow every pool, and
//! `std.testing.checkAllAllocationFailures` runs it once per allocation it makes, failing
//! that one. Each failure must be `error.OutOfMemory` from the call that allocated, leave
//! the table as it was (its figures and every object's record, compared around the call),
//! and leak nothing (the testing allocator checks, once the scenario has torn down).

const std = @import("std");
const testing = std.testing;
const counter_module = @import("counter.zig");
const table_module = @import("table.zig");
const Counter = counter_module.Counter;
const Id = counter_module.Id;
const sink_none = counter_module.sink_none;
const Deadline = @import("testing.zig").Deadline;
const wait_timeout_ns = @import("testing.zig").wait_timeout_ns_default;

/// Objects the scenario creates: enough to grow the entry, extension, link, holder and
/// callback pools past their first allocation several times.
const object_count = 300;

fn ignoreCallback(_: f64, _: ?*anyopaque) callconv(.c) void {}
fn ignoreWake(_: ?*anyopaque) callconv(.c) void {}

fn Payload(comptime Result: type) type {
    return @typeInfo(Result).error_union.payload;
}

/// What a failed call must leave as it was: the figures that count table contents, and
/// the record of every object created so far.
const Snapshot = struct {
    objects_live: u64,
    bytes_live: u64,
    objects_created: u64,
    callbacks_registered: u64,
    callbacks_released: u64,
    sink_tokens_pending: u64,
    sinks_open: u64,
    infos: [object_count]?table_module.Info,

    fn take(counter: *Counter, ids: []const Id) Snapshot {
        const stats = counter.stats();
        var snapshot: Snapshot = .{
            .objects_live = stats.objects_live,
            .bytes_live = stats.bytes_live,
            .objects_created = stats.objects_created,
            .callbacks_registered = stats.callbacks_registered,
            .callbacks_released = stats.callbacks_released,
            .sink_tokens_pending = stats.sink_tokens_pending,
            .sinks_open = stats.sinks_open,
            .infos = @splat(null),
        };
        for (ids, 0..) |id, index| snapshot.infos[index] = counter.info(id) catch null;
        return snapshot;
    }

    /// Passes `result` on; when it is `error.OutOfMemory`, first checks that nothing changed.
    fn guard(before: *const Snapshot, counter: *Counter, ids: []const Id, result: anytype) anyerror!Payload(@TypeOf(result)) {
        _ = result catch |err| {
            if (err == error.OutOfMemory) {
                const after = Snapshot.take(counter, ids);
                try testing.expectEqualDeep(before.*, after);
            }
        };
        return result;
    }
};

fn scenario(allocator: std.mem.Allocator) !void {
    const counter = try Counter.open(allocator);
    defer {
        // Every sink is closed by now: a let-go waker frees its record, and may drop the
        // counter's last hold, as it exits. Destroyed only once none is left, so that the
        // memory is freed before the scenario returns to the leak check.
        waitForWakers(counter);
        counter.destroy() catch unreachable;
    }

    var ids: [object_count]Id = undefined;
    var created: usize = 0;

    // Sinks: one with a wake (its waker's record is allocated), one without, one attached.
    var before = Snapshot.take(counter, ids[0..created]);
    const woken = try before.guard(counter, ids[0..created], counter.sinkOpen(ignoreWake, null, true));
    defer closeSink(counter, woken);
    before = Snapshot.take(counter, ids[0..created]);
    const plain = try before.guard(counter, ids[0..created], counter.sinkOpen(null, null, false));
    defer closeSink(counter, plain);
    before = Snapshot.take(counter, ids[0..created]);
    const attached = try before.guard(counter, ids[0..created], Counter.attach(counter.key, null, null, false));
    defer closeSink(counter, attached.sink);

    // Objects, each containing the one before and depending on the one before that.
    for (0..object_count) |index| {
        const contains: []const Id = if (index >= 1) ids[index - 1 .. index] else &.{};
        const lineage: []const Id = if (index >= 2) ids[index - 2 .. index - 1] else &.{};
        before = Snapshot.take(counter, ids[0..created]);
        ids[index] = try before.guard(counter, ids[0..created], counter.create(plain, .{
            .size_bytes = index,
            .contains = contains,
            .lineage = lineage,
            .reconstructable = index % 3 == 0,
        }));
        created += 1;
    }
    const live = ids[0..created];

    // Callbacks: a native one and a sink one on every object.
    for (live, 0..) |id, index| {
        before = Snapshot.take(counter, live);
        _ = try before.guard(counter, live, counter.register(id, plain, .out_of_scope, .{
            .native = .{ .function = ignoreCallback, .context = null },
        }));
        before = Snapshot.take(counter, live);
        _ = try before.guard(counter, live, counter.register(id, plain, .deleted, .{
            .sink = .{ .sink = plain, .token = @intCast(index) },
        }));
    }

    // Lend every object to the attached sink, which borrows it (a holder record each).
    for (live) |id| {
        before = Snapshot.take(counter, live);
        try before.guard(counter, live, counter.retain(id, plain));
        before = Snapshot.take(counter, live);
        try before.guard(counter, live, counter.lend(id, plain));
        before = Snapshot.take(counter, live);
        try before.guard(counter, live, counter.borrow(id, plain, attached.sink));
    }

    // The batch operations, over every object.
    before = Snapshot.take(counter, live);
    try before.guard(counter, live, counter.submittedAdd(live, plain));
    before = Snapshot.take(counter, live);
    try before.guard(counter, live, counter.lineageAdd(live, plain));
    before = Snapshot.take(counter, live);
    _ = try before.guard(counter, live, counter.submittedRemove(live, plain));
    before = Snapshot.take(counter, live);
    _ = try before.guard(counter, live, counter.releaseBatch(live, plain));
    before = Snapshot.take(counter, live);
    _ = try before.guard(counter, live, counter.lineageRemove(live, plain));
}

/// Closes `sink`, waiting out a waker still inside a wake.
fn closeSink(counter: *Counter, sink: u32) void {
    const deadline: Deadline = .fromNow(wait_timeout_ns);
    while ((counter.sinkClose(sink) catch unreachable) != .closed) {
        if (deadline.passed()) @panic("a sink did not close");
        std.Thread.yield() catch {};
    }
}

fn waitForWakers(counter: *Counter) void {
    const deadline: Deadline = .fromNow(wait_timeout_ns);
    while (counter.stats().wakers_live != 0) {
        if (deadline.passed()) @panic("a waker did not exit");
        std.Thread.yield() catch {};
    }
}

/// The testing allocator, never growing a block in place: growth then always allocates, so
/// that how many allocations a run makes does not depend on where the runs before it left
/// the heap (`checkAllAllocationFailures` needs the same count every run).
const no_resize: std.mem.Allocator = .{
    .ptr = undefined,
    .vtable = &.{
        .alloc = struct {
            fn alloc(_: *anyopaque, len: usize, alignment: std.mem.Alignment, ret_addr: usize) ?[*]u8 {
                return testing.allocator.rawAlloc(len, alignment, ret_addr);
            }
        }.alloc,
        .resize = std.mem.Allocator.noResize,
        .remap = std.mem.Allocator.noRemap,
        .free = struct {
            fn free(_: *anyopaque, memory: []u8, alignment: std.mem.Alignment, ret_addr: usize) void {
                testing.allocator.rawFree(memory, alignment, ret_addr);
            }
        }.free,
    },
};

test "every allocation failure of every allocating entry point is OutOfMemory, changes nothing, leaks nothing" {
    try testing.checkAllAllocationFailures(no_resize, scenario, .{});
}
