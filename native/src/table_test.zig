//! The table against Ray's `reference_counter_test.cc` scenarios (each test names the Ray
//! test it ports), plus ids, batches and limits. Every test ends with nothing live:
//! `Table.deinit` asserts it, and `std.testing.allocator` fails on a leak, like Ray's
//! TearDown.

const std = @import("std");
const testing = std.testing;
const table_module = @import("table.zig");
const pool_module = @import("pool.zig");
const callback = @import("callback.zig");

const Table = table_module.Table;
const Id = table_module.Id;
const IdParts = table_module.IdParts;
const List = pool_module.List;
const none = table_module.sink_none;

/// A table plus the list that callbacks leave into, and helpers to read that list.
const Fixture = struct {
    table: Table,
    released: List = .{},

    fn init() Fixture {
        return .{ .table = Table.init(testing.allocator) };
    }

    /// Tears down even after a failed test, so that one failure does not abort the rest.
    fn deinit(f: *Fixture) void {
        if (f.table.objectsLive() != 0) f.table.releaseAll(&f.released);
        f.released.clear(&f.table.callbacks);
        f.table.deinit();
    }

    /// What every test ends with, as Ray's TearDown: nothing live, nothing held.
    fn expectEmpty(f: *Fixture) !void {
        try testing.expectEqual(@as(u32, 0), f.table.objectsLive());
        try testing.expectEqual(@as(u64, 0), f.table.bytesLive());
        for (&f.table.shards) |*shard| {
            try testing.expectEqual(@as(usize, 0), shard.holders.countInUse());
            try testing.expectEqual(@as(usize, 0), shard.links.countInUse());
            try testing.expectEqual(@as(usize, 0), shard.exts.countInUse());
        }
    }

    fn create(f: *Fixture, options: table_module.CreateOptions) !Id {
        return f.table.create(options);
    }

    /// Registers an out-of-scope (or deleted) callback that reports `label`.
    fn on(f: *Fixture, id: Id, kind: table_module.CallbackKind, label: u32) !bool {
        const owner = (f.table.info(id) catch return f.table.register(id, none, kind, token(label))).owner;
        return f.table.register(id, if (owner == table_module.sink_gone) none else owner, kind, token(label));
    }

    fn token(label: u32) callback.Callback {
        return .{ .sink = .{ .sink = 0, .token = label } };
    }

    /// The labels of every callback released since the last call, in order.
    fn fired(f: *Fixture, buffer: []u32) []u32 {
        var count: usize = 0;
        while (true) {
            const index = f.released.pop(&f.table.callbacks);
            if (index == pool_module.nil) break;
            buffer[count] = f.table.callbacks.at(index).callback.sink.token;
            count += 1;
            f.table.callbacks.destroy(index);
        }
        return buffer[0..count];
    }

    fn expectFired(f: *Fixture, expected: []const u32) !void {
        var buffer: [64]u32 = undefined;
        try testing.expectEqualSlices(u32, expected, f.fired(&buffer));
    }

    fn release(f: *Fixture, id: Id, caller: table_module.Sink) !void {
        try f.table.release(id, caller, &f.released);
    }

    fn isLive(f: *Fixture, id: Id) bool {
        _ = f.table.info(id) catch return false;
        return true;
    }
};

test "TestBasic: local and submitted references each keep an object in scope" {
    var f = Fixture.init();
    defer f.deinit();

    const a = try f.create(.{ .size_bytes = 100 });
    const b = try f.create(.{});
    try testing.expect(try f.on(a, .out_of_scope, 1));
    try testing.expect(try f.on(b, .out_of_scope, 2));
    try f.table.retain(a, none);
    try f.table.submittedAdd(&.{ a, b }, none);
    const info = try f.table.info(a);
    try testing.expectEqual(@as(u32, 2), info.refs_local);
    try testing.expectEqual(@as(u32, 1), info.refs_submitted);

    try f.release(a, none);
    try f.release(a, none);
    try f.release(b, none);
    try f.expectFired(&.{});
    try testing.expectEqual(@as(u32, 2), f.table.objectsLive());
    // The task finishes: both are out of scope, in argument order.
    try f.table.submittedRemove(&.{ a, b }, none, &f.released);
    try f.expectFired(&.{ 1, 2 });
    try testing.expectEqual(@as(u32, 0), f.table.objectsLive());
    try testing.expectEqual(@as(u64, 0), f.table.bytesLive());
    try f.expectEmpty();
}

test "TestUnreconstructableObjectOutOfScope: registration fails before the object exists; lineage keeps it in scope" {
    var f = Fixture.init();
    defer f.deinit();

    // Before creation there is no entry: an id this table never issued.
    try testing.expectError(error.InvalidId, f.table.register(IdParts.encode(.{ .slot = 0, .generation = 1 }), none, .out_of_scope, Fixture.token(1)));
    const id = try f.create(.{});
    try testing.expect(try f.on(id, .out_of_scope, 1));
    try f.release(id, none);
    try f.expectFired(&.{1});
    try testing.expect(!f.isLive(id));

    // With a submitted task holding lineage (ReferenceCountLineageEnabledTest): an object
    // that cannot be reconstructed stays in scope until the lineage is released.
    const pinned = try f.create(.{});
    try testing.expect(try f.on(pinned, .out_of_scope, 2));
    try f.table.submittedAdd(&.{pinned}, none);
    try f.table.lineageAdd(&.{pinned}, none);
    try f.release(pinned, none);
    try f.table.submittedRemove(&.{pinned}, none, &f.released);
    try f.expectFired(&.{});
    try testing.expect(!(try f.table.info(pinned)).out_of_scope);
    try f.table.lineageRemove(&.{pinned}, none, &f.released);
    try f.expectFired(&.{2});
    try testing.expect(!f.isLive(pinned));
    try f.expectEmpty();
}

test "TestUnreconstructableObjectOutOfScope (lineage-pinned variant): a reconstructable object goes out of scope but is kept" {
    var f = Fixture.init();
    defer f.deinit();

    const id = try f.create(.{ .reconstructable = true });
    try testing.expect(try f.on(id, .out_of_scope, 1));
    try testing.expect(try f.on(id, .deleted, 10));
    try f.table.lineageAdd(&.{id}, none);
    try f.release(id, none);
    // Out of scope: its out-of-scope callback fires; lineage keeps the entry.
    try f.expectFired(&.{1});
    const info = try f.table.info(id);
    try testing.expect(info.out_of_scope);
    try testing.expectEqual(@as(u32, 1), info.refs_lineage);
    // In that window registration is refused (Ray), and no new reference can be taken.
    try testing.expect(!try f.on(id, .out_of_scope, 2));
    try testing.expectError(error.StaleId, f.table.retain(id, none));
    // Releasing the lineage reference deletes it.
    try f.table.lineageRemove(&.{id}, none, &f.released);
    try f.expectFired(&.{10});
    try testing.expect(!f.isLive(id));
    try f.expectEmpty();
}

test "TestPinLineageRecursive: deleting the last object releases the lineage it pinned, recursively" {
    var f = Fixture.init();
    defer f.deinit();

    // ids[i] was made by a task that took ids[i - 1]: its lineage pins ids[i - 1].
    var ids: [3]Id = undefined;
    for (&ids, 0..) |*id, index| {
        id.* = try f.create(.{ .reconstructable = true, .lineage = if (index == 0) &.{} else ids[index - 1 .. index] });
        try testing.expect(try f.on(id.*, .out_of_scope, @intCast(index)));
        try testing.expect(try f.on(id.*, .deleted, @intCast(10 + index)));
    }
    try f.release(ids[0], none);
    try f.release(ids[1], none);
    try f.expectFired(&.{ 0, 1 });
    for (ids[0..2]) |id| {
        try testing.expect((try f.table.info(id)).out_of_scope);
        try testing.expect(!try f.on(id, .out_of_scope, 99));
    }
    try testing.expectEqual(@as(u32, 3), f.table.objectsLive());
    // Dropping the last releases all three; dependencies are erased before dependents.
    try f.release(ids[2], none);
    try f.expectFired(&.{ 2, 10, 11, 12 });
    try f.expectEmpty();
}

test "TestFree: before registration, after registration, and the flag gone with the entry" {
    var f = Fixture.init();
    defer f.deinit();

    // Freed before registration: registration is refused.
    const early = try f.create(.{});
    try f.table.free(early, none, &f.released);
    try testing.expect(!try f.on(early, .out_of_scope, 1));
    try testing.expect((try f.table.info(early)).freed);
    try f.release(early, none);
    try f.expectFired(&.{});
    try testing.expect(!f.isLive(early));

    // Freed after registration: the callback fires at once; the entry stays.
    const late = try f.create(.{});
    try testing.expect(try f.on(late, .out_of_scope, 2));
    try testing.expect(try f.on(late, .deleted, 3));
    try f.table.free(late, none, &f.released);
    try f.expectFired(&.{2});
    try f.table.free(late, none, &f.released);
    try f.table.retain(late, none);
    try f.release(late, none);
    try f.expectFired(&.{});
    try f.release(late, none);
    try f.expectFired(&.{3});

    // The freed flag went with the entry: the slot's next object starts unfreed.
    const next = try f.create(.{});
    try testing.expectEqual(IdParts.decode(late).?.slot, IdParts.decode(next).?.slot);
    try testing.expect(!(try f.table.info(next)).freed);
    try f.release(next, none);
    try f.expectEmpty();
}

test "free and registration are the owner's: a borrower is refused (NotOwned)" {
    var f = Fixture.init();
    defer f.deinit();

    const id = try f.create(.{ .owner = 0 });
    try f.table.lend(id, 0);
    try f.table.borrow(id, 0, 1);
    try testing.expectError(error.NotOwned, f.table.free(id, 1, &f.released));
    try testing.expectError(error.NotOwned, f.table.register(id, 1, .out_of_scope, Fixture.token(1)));
    try testing.expectError(error.NotOwned, f.table.unregister(id, 1, .out_of_scope, Fixture.token(1)));
    try testing.expect(try f.table.register(id, 0, .out_of_scope, Fixture.token(1)));
    try f.release(id, 1);
    try f.expectFired(&.{1});
    try f.expectEmpty();
}

test "TestNestedObjectNoBorrow: inner objects go out of scope before their containers" {
    var f = Fixture.init();
    defer f.deinit();

    const inner = try f.create(.{});
    const mid = try f.create(.{ .contains = &.{inner} });
    const outer = try f.create(.{ .contains = &.{mid} });
    try testing.expect(try f.on(inner, .out_of_scope, 1));
    try testing.expect(try f.on(mid, .out_of_scope, 2));
    try testing.expect(try f.on(outer, .out_of_scope, 3));
    try f.release(inner, none);
    try f.release(mid, none);
    try f.expectFired(&.{});
    try testing.expectEqual(@as(u32, 1), (try f.table.info(inner)).contained_in_owned);
    try f.release(outer, none);
    try f.expectFired(&.{ 1, 2, 3 });
    try f.expectEmpty();
}

test "TestNestedObject: a borrower keeps an inner object after its containers go" {
    var f = Fixture.init();
    defer f.deinit();

    const inner = try f.create(.{ .owner = 0 });
    const mid = try f.create(.{ .owner = 0, .contains = &.{inner} });
    const outer = try f.create(.{ .owner = 0, .contains = &.{mid} });
    try testing.expect(try f.table.register(inner, 0, .out_of_scope, Fixture.token(1)));
    try testing.expect(try f.table.register(mid, 0, .out_of_scope, Fixture.token(2)));
    try testing.expect(try f.table.register(outer, 0, .out_of_scope, Fixture.token(3)));
    // Sink 1 borrows the inner object (the owner lent it one reference).
    try f.table.lend(inner, 0);
    try f.table.borrow(inner, 0, 1);
    try f.release(mid, 0);
    try f.release(outer, 0);
    try f.expectFired(&.{ 2, 3 });
    try testing.expectEqual(@as(u32, 1), (try f.table.info(inner)).borrowers);
    try f.release(inner, 1);
    try f.expectFired(&.{1});
    try f.expectEmpty();
}

test "TestDuplicateNestedObject: repeated ids count once in a container, twice for a borrower" {
    var f = Fixture.init();
    defer f.deinit();

    const inner = try f.create(.{ .owner = 0 });
    const outer = try f.create(.{ .owner = 0, .contains = &.{ inner, inner } });
    try testing.expectEqual(@as(u32, 1), (try f.table.info(inner)).contained_in_owned);
    try testing.expect(try f.table.register(inner, 0, .out_of_scope, Fixture.token(1)));
    // The borrower holds two references to the same object.
    try f.table.lend(inner, 0);
    try f.table.retain(inner, 0);
    try f.table.lend(inner, 0);
    try f.table.borrow(inner, 0, 1);
    try f.table.borrow(inner, 0, 1);
    try f.release(outer, 0);
    try f.release(inner, 1);
    try f.expectFired(&.{});
    try testing.expectEqual(@as(u32, 1), (try f.table.info(inner)).refs_borrowed);
    try f.release(inner, 1);
    try f.expectFired(&.{1});
    try f.expectEmpty();
}

test "TestBorrowerTree: a chain of three sinks; the owner's callback waits for the last borrower" {
    var f = Fixture.init();
    defer f.deinit();

    const id = try f.create(.{ .owner = 0 });
    try testing.expect(try f.table.register(id, 0, .out_of_scope, Fixture.token(1)));
    // Owner → sink 1 → sink 2, each lending one of its references to the next.
    try f.table.lend(id, 0);
    try f.table.borrow(id, 0, 1);
    try f.table.retain(id, 1);
    try f.table.lend(id, 1);
    try f.table.borrow(id, 1, 2);
    try testing.expectEqual(@as(u32, 2), (try f.table.info(id)).borrowers);
    // A lent reference cannot be claimed twice.
    try testing.expectError(error.NoReference, f.table.borrow(id, 1, 2));
    try f.release(id, 1);
    try f.expectFired(&.{});
    try f.release(id, 2);
    try f.expectFired(&.{1});
    try f.expectEmpty();
}

test "TestSimpleBorrowerFailure: a dead borrower's references are released on its behalf" {
    var f = Fixture.init();
    defer f.deinit();

    const inner = try f.create(.{ .owner = 0 });
    const outer = try f.create(.{ .owner = 0, .contains = &.{inner} });
    try testing.expect(try f.table.register(inner, 0, .out_of_scope, Fixture.token(1)));
    try testing.expect(try f.table.register(outer, 0, .out_of_scope, Fixture.token(2)));
    for ([_]Id{ inner, outer }) |id| {
        try f.table.lend(id, 0);
        try f.table.borrow(id, 0, 1);
        try f.table.retain(id, 1);
        try f.table.submittedAdd(&.{id}, 1);
    }
    // A reference lent by the borrower to a sink that never claimed it.
    try f.table.lend(inner, 1);
    try f.table.lineageAdd(&.{inner}, 1);
    // The owner lent away its only references: only the borrower keeps them in scope.
    try f.expectFired(&.{});
    try testing.expectEqual(@as(u32, 0), (try f.table.info(inner)).refs_local);
    // The borrower dies: every count it held goes.
    f.table.sinkRelease(1, &f.released);
    try f.expectFired(&.{ 1, 2 });
    try f.expectEmpty();
}

test "a closing owner's own deliveries are handed over at once; others wait for the real end" {
    var f = Fixture.init();
    defer f.deinit();

    const id = try f.create(.{ .owner = 0 });
    try testing.expect(try f.table.register(id, 0, .out_of_scope, Fixture.token(1)));
    try testing.expect(try f.table.register(id, 0, .deleted, Fixture.token(2)));
    // Registered for the owner by native code: delivered elsewhere (here, to sink 5).
    try testing.expect(try f.table.register(id, none, .out_of_scope, .{ .sink = .{ .sink = 5, .token = 3 } }));
    try testing.expect(try f.table.register(id, none, .deleted, .{ .sink = .{ .sink = 5, .token = 4 } }));
    try f.table.lend(id, 0);
    try f.table.borrow(id, 0, 1);
    f.table.sinkRelease(0, &f.released);
    try f.expectFired(&.{ 1, 2 });
    const info = try f.table.info(id);
    try testing.expectEqual(table_module.sink_gone, info.owner);
    try testing.expect(!info.out_of_scope);
    try testing.expectEqual(@as(u32, 1), info.callbacks_pending);
    // The borrower lets go: the object really goes out of scope, and is deleted.
    try f.release(id, 1);
    try f.expectFired(&.{ 3, 4 });
    try f.expectEmpty();
}

test "TestReferenceStats: info reports every count by kind" {
    var f = Fixture.init();
    defer f.deinit();

    const inner = try f.create(.{ .owner = 0, .size_bytes = 200 });
    const outer = try f.create(.{ .owner = 0, .size_bytes = 100, .contains = &.{inner}, .reconstructable = true });
    try f.table.retain(inner, 0);
    try f.table.submittedAdd(&.{inner}, 0);
    try f.table.lend(inner, 0);
    try f.table.lineageAdd(&.{inner}, 2);
    try f.table.lend(inner, 0);
    try f.table.borrow(inner, 0, 1);
    try testing.expect(try f.table.register(inner, 0, .out_of_scope, Fixture.token(1)));
    try testing.expect(try f.table.register(inner, 0, .deleted, Fixture.token(2)));
    try testing.expectEqual(table_module.Info{
        .owner = 0,
        .refs_local = 0,
        .refs_submitted = 1,
        .refs_borrowed = 1,
        .refs_lent = 1,
        .refs_lineage = 1,
        .contained_in_owned = 1,
        .borrowers = 1,
        .callbacks_pending = 1,
        .deleted_callbacks_pending = 1,
        .freed = false,
        .out_of_scope = false,
        .reconstructable = false,
        .size_bytes = 200,
    }, try f.table.info(inner));
    var holdings: [4]table_module.Holding = undefined;
    try testing.expectEqual(@as(usize, 3), try f.table.holdings(inner, &holdings));
    try testing.expect((try f.table.info(outer)).reconstructable);
    try testing.expectEqual(@as(u64, 300), f.table.bytesLive());

    f.table.releaseAll(&f.released);
    try f.expectFired(&.{ 1, 2 });
    try f.expectEmpty();
}

test "a callback removed before it fires never fires; removing after it left reports false" {
    var f = Fixture.init();
    defer f.deinit();

    const id = try f.create(.{});
    try testing.expect(try f.on(id, .out_of_scope, 1));
    try testing.expect(try f.on(id, .out_of_scope, 2));
    try testing.expect(try f.on(id, .deleted, 3));
    try testing.expect(try f.table.unregister(id, none, .out_of_scope, Fixture.token(1)));
    try testing.expect(!try f.table.unregister(id, none, .out_of_scope, Fixture.token(1)));
    try testing.expect(try f.table.unregister(id, none, .deleted, Fixture.token(3)));
    var tokens: [4]u32 = undefined;
    try testing.expectEqual(@as(usize, 1), try f.table.sinkTokens(id, 0, .out_of_scope, &tokens));
    try testing.expectEqual(@as(u32, 2), tokens[0]);
    try f.release(id, none);
    try f.expectFired(&.{2});
    try testing.expect(!try f.table.unregister(id, none, .out_of_scope, Fixture.token(2)));
    try f.expectEmpty();
}

test "close deletes nested and lineage-linked objects, inner first" {
    var f = Fixture.init();
    defer f.deinit();

    const a = try f.create(.{});
    const b = try f.create(.{ .contains = &.{a} });
    const c = try f.create(.{ .lineage = &.{b}, .contains = &.{a} });
    try f.table.retain(c, none);
    try testing.expect(try f.on(a, .out_of_scope, 1));
    try testing.expect(try f.on(b, .out_of_scope, 2));
    try testing.expect(try f.on(c, .out_of_scope, 3));
    try testing.expect(try f.on(b, .deleted, 4));
    f.table.releaseAll(&f.released);
    var buffer: [8]u32 = undefined;
    const order = f.fired(&buffer);
    try testing.expectEqual(@as(usize, 4), order.len);
    // c goes first: its lineage still pins b (which cannot be reconstructed, so stays in
    // scope), and b still contains a. Deleting c releases b, which releases a: a before its
    // last container b, and b's deletion after b went out of scope.
    try testing.expectEqualSlices(u32, &.{ 3, 1, 2, 4 }, order);
    try f.expectEmpty();
}

test "ids: round trip, and stale, forged and exhausted ids told apart" {
    var f = Fixture.init();
    defer f.deinit();

    const id = IdParts.encode(.{ .slot = 5, .generation = 3 });
    try testing.expectEqual(IdParts{ .slot = 5, .generation = 3 }, IdParts.decode(id).?);
    for ([_]f64{ 0, 1, 5, -1, 0.5, id + 0.5, 9007199254740992.0, std.math.inf(f64), std.math.nan(f64) }) |bad| {
        try testing.expectEqual(@as(?IdParts, null), IdParts.decode(bad));
    }

    const first = try f.create(.{});
    try f.release(first, none);
    const second = try f.create(.{});
    const parts = IdParts.decode(second).?;
    try testing.expectEqual(IdParts.decode(first).?.slot, parts.slot);
    try testing.expectError(error.StaleId, f.table.retain(first, none));
    try testing.expectError(error.InvalidId, f.table.retain(IdParts.encode(.{ .slot = parts.slot, .generation = parts.generation + 1 }), none));
    try testing.expectError(error.InvalidId, f.table.retain(IdParts.encode(.{ .slot = parts.slot + 1, .generation = 1 }), none));

    // A slot whose generation is exhausted is never reused.
    f.table.setGenerationForTest(parts.slot, IdParts.generation_max);
    const last = IdParts.encode(.{ .slot = parts.slot, .generation = IdParts.generation_max });
    try f.release(last, none);
    const third = try f.create(.{});
    try testing.expect(IdParts.decode(third).?.slot != parts.slot);
    try testing.expectError(error.StaleId, f.table.retain(last, none));
    try f.release(third, none);
    try f.expectEmpty();
}

test "a failing batch or create leaves the table unchanged" {
    var f = Fixture.init();
    defer f.deinit();

    const a = try f.create(.{});
    const b = try f.create(.{});
    try testing.expectError(error.NoReference, f.table.releaseBatch(&.{ a, b, a }, none, &f.released));
    try testing.expectError(error.InvalidId, f.table.releaseBatch(&.{ a, 3.5 }, none, &f.released));
    try testing.expectError(error.NoReference, f.table.submittedRemove(&.{a}, none, &f.released));
    try testing.expectError(error.InvalidId, f.table.submittedAdd(&.{ a, b, 0 }, none));
    // A borrower's batch fails half way: its first holder record is undone too.
    try testing.expectError(error.InvalidId, f.table.submittedAdd(&.{ a, b, IdParts.encode(.{ .slot = 7, .generation = 1 }) }, 1));
    try testing.expectError(error.InvalidId, f.create(.{ .contains = &.{ a, 12345 } }));
    try testing.expectEqual(@as(u32, 1), (try f.table.info(a)).refs_local);
    try testing.expectEqual(@as(u32, 0), (try f.table.info(a)).refs_submitted);
    try testing.expectEqual(@as(u32, 0), (try f.table.info(a)).refs_borrowed);
    try testing.expectEqual(@as(u32, 0), (try f.table.info(a)).contained_in_owned);
    try testing.expectEqual(@as(u32, 2), f.table.objectsLive());

    try f.table.releaseBatch(&.{ a, b }, none, &f.released);
    try testing.expectEqual(@as(u32, 0), f.table.objectsLive());
    for (&f.table.shards) |*shard| try testing.expectEqual(@as(usize, 0), shard.holders.countInUse());
    try f.expectEmpty();
}

test "nesting deeper than depth_max is refused, and a long chain still unwinds" {
    var f = Fixture.init();
    defer f.deinit();

    var previous = try f.create(.{});
    const first = previous;
    for (0..table_module.depth_max) |_| {
        const next = try f.create(.{ .contains = &.{previous} });
        try f.release(previous, none);
        previous = next;
    }
    try testing.expectError(error.Limit, f.create(.{ .contains = &.{previous} }));
    try testing.expect(try f.on(first, .out_of_scope, 1));
    try testing.expect(try f.on(previous, .out_of_scope, 2));
    try f.release(previous, none);
    try f.expectFired(&.{ 1, 2 });
    try f.expectEmpty();
}

test "byte total overflow is a limit, not a wrap" {
    var f = Fixture.init();
    defer f.deinit();

    const big = try f.create(.{ .size_bytes = std.math.maxInt(u64) - 1 });
    try testing.expectError(error.Limit, f.create(.{ .size_bytes = 2 }));
    try f.release(big, none);
    try f.expectEmpty();
}

/// Creates `count` objects in shard 0, each with a callback and a lineage link to the
/// first (so that every pool holds nodes), and returns their ids.
fn fillShard(f: *Fixture, ids: []Id) !void {
    ids[0] = try f.create(.{});
    for (ids[1..], 1..) |*id, label| {
        id.* = try f.create(.{ .lineage = ids[0..1] });
        try testing.expect(try f.on(id.*, .out_of_scope, @intCast(label)));
    }
}

/// Releases every id, then gives memory back as the counter's dispatcher would.
fn releaseAllOf(f: *Fixture, ids: []const Id) !void {
    for (ids) |id| try f.release(id, none);
    f.released.clear(&f.table.callbacks);
    f.table.trimNow();
}

test "an emptied shard gives its memory back; its old ids stay stale and are never issued again" {
    var f = Fixture.init();
    defer f.deinit();
    f.table.trim_min = 64;
    const start = f.table.memoryBytes();

    var old: [1000]Id = undefined;
    try fillShard(&f, &old);
    // Some slots are reused before the shard empties: their generations go past 1.
    for (old[500..600]) |*id| {
        try f.release(id.*, none);
        id.* = try f.create(.{});
    }
    f.released.clear(&f.table.callbacks);
    const peak = f.table.memoryBytes();
    try releaseAllOf(&f, &old);
    const after = f.table.memoryBytes();
    // What remains is each slot's generation: 4 bytes instead of an entry's 40 and more.
    try testing.expect(after <= start + old.len * @sizeOf(u32));
    try testing.expect(after * 8 < peak);

    for (old) |id| try testing.expectError(error.StaleId, f.table.info(id));
    const reused = IdParts.decode(old[550]).?;
    try testing.expectError(error.InvalidId, f.table.info(IdParts.encode(.{ .slot = reused.slot, .generation = reused.generation + 1 })));
    try testing.expectError(error.InvalidId, f.table.info(IdParts.encode(.{ .slot = reused.slot + (2000 << table_module.shard_bits), .generation = 1 })));

    // Growing again, each slot resumes after its past generation: no old id comes back.
    var new: [1200]Id = undefined;
    for (&new) |*id| {
        id.* = try f.create(.{});
        for (old) |past| try testing.expect(id.* != past);
    }
    for (old) |id| try testing.expectError(error.StaleId, f.table.info(id));
    try releaseAllOf(&f, &new);
    try f.expectEmpty();
}

test "a shard below trim_min, or with a retired slot, keeps its memory" {
    var f = Fixture.init();
    defer f.deinit();
    f.table.trim_min = 2000;

    var ids: [1000]Id = undefined;
    try fillShard(&f, &ids);
    const kept_bytes = f.table.memoryBytes();
    try releaseAllOf(&f, &ids);
    try testing.expectEqual(kept_bytes, f.table.memoryBytes());
    try testing.expect(f.table.shards[0].entries.len >= ids.len);

    // A retired slot: reborn, it would reissue its ids.
    f.table.trim_min = 0;
    const id = try f.create(.{});
    const parts = IdParts.decode(id).?;
    f.table.setGenerationForTest(parts.slot, IdParts.generation_max);
    try f.release(IdParts.encode(.{ .slot = parts.slot, .generation = IdParts.generation_max }), none);
    f.table.trimNow();
    try testing.expect(f.table.shards[0].entries.len >= ids.len);
    try testing.expect(f.table.memoryBytes() >= ids.len * 40);
    try f.expectEmpty();
}

test "giving memory back that fails for want of memory changes nothing but keeping it" {
    var f = Fixture.init();
    defer f.deinit();
    f.table.trim_min = 0;
    var ids: [300]Id = undefined;
    try fillShard(&f, &ids);
    const peak = f.table.memoryBytes();
    // The releases allocate nothing; the give-back's one allocation (the past
    // generations) fails.
    var failing = testing.FailingAllocator.init(testing.allocator, .{ .fail_index = 0 });
    f.table.allocator = failing.allocator();
    try releaseAllOf(&f, &ids);
    f.table.allocator = testing.allocator;
    try testing.expect(failing.has_induced_failure);
    try testing.expect(f.table.shards[0].entries.len >= ids.len);
    try testing.expect(f.table.memoryBytes() < peak); // the pools were given back
    for (ids) |id| try testing.expectError(error.StaleId, f.table.info(id));
    const again = try f.create(.{});
    for (ids) |id| try testing.expect(again != id);
    try f.release(again, none);
    try f.expectEmpty();
}

test "last releases without the lock: a create reaps one chunk's list, a reap the rest" {
    var f = Fixture.init();
    defer f.deinit();
    const chunk = 4096;
    const ids = try testing.allocator.alloc(Id, 3 * chunk);
    defer testing.allocator.free(ids);
    for (ids) |*id| id.* = try f.create(.{ .size_bytes = 2 });
    for (ids) |id| try testing.expect(f.table.releaseFast(id, none) != .locked);
    // Stale at once; still in the figures until reaped.
    for (ids) |id| try testing.expectError(error.StaleId, f.table.info(id));
    try testing.expectEqual(@as(u32, 3 * chunk), f.table.objectsLive());
    // A create that needs a slot reaps one list (one chunk's slots), not the burst.
    const one = try f.create(.{});
    try testing.expectEqual(@as(u32, 2 * chunk + 1), f.table.objectsLive());
    try testing.expectEqual(@as(u64, 2 * 2 * chunk), f.table.bytesLive());
    // A full reap takes the rest; every old id stays stale, none is issued again.
    f.table.reap(0);
    try testing.expectEqual(@as(u32, 1), f.table.objectsLive());
    for (ids) |id| {
        try testing.expect(id != one);
        try testing.expectError(error.StaleId, f.table.info(id));
    }
    try f.release(one, none);
    try f.expectEmpty();
}
