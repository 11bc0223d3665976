//! The reference table: one entry per object, reference counts, and each object's
//! out-of-scope callbacks in registration order.
//!
//! Semantics follow Ray's `ReferenceCounter`: an object is in scope while any of its counts
//! is non-zero. When the last one drops, the entry is deleted and its callbacks leave the
//! table, in registration order, exactly once. An explicit `free` of an owned object hands
//! its callbacks over at once and keeps the entry until its references drop; registering on
//! a freed or deleted object is refused (returns false), never an error.
//!
//! Operations that make callbacks leave the table append them to a caller-supplied
//! `callback.List`; the caller routes that list to the queue. The table never runs a
//! callback and knows nothing of threads: the counter's mutex guards it.
//!
//! Ids are integer-valued doubles (`Id`), because that is what both JavaScript runtimes pass
//! on their fast FFI path. An id packs a slot index and the slot's generation, so a stale id
//! (its object deleted, the slot maybe reused) or a forged one is told apart from a live one
//! and can never reach another object: a slot whose generation is exhausted is retired.

const std = @import("std");
const assert = std.debug.assert;
const callback = @import("callback.zig");

/// An object id: an integer-valued double in [2^24, 2^53). See `IdParts` for the layout.
pub const Id = f64;

pub const Error = error{
    /// Not an id this table ever issued: not an integer, out of range, or ahead of its slot.
    InvalidId,
    /// An id this table issued whose object has since been deleted.
    StaleId,
    /// A release of a count that is already zero.
    NoReference,
    /// A count, the number of slots, or the live byte total would overflow.
    Limit,
    OutOfMemory,
};

/// Layout of an id: `generation << slot_bits | slot`, 53 bits in all, generation ≥ 1 (so
/// that 0 and every small integer are invalid ids, which catches many mistakes).
pub const IdParts = struct {
    slot: u32,
    generation: u32,

    pub const slot_bits = 24;
    pub const generation_bits = 29;
    pub const slot_count_max: u32 = 1 << slot_bits;
    pub const generation_max: u32 = (1 << generation_bits) - 1;

    comptime {
        assert(slot_bits + generation_bits == std.math.floatMantissaBits(f64) + 1);
    }

    pub fn encode(parts: IdParts) Id {
        assert(parts.slot < slot_count_max);
        assert(parts.generation >= 1 and parts.generation <= generation_max);
        const value = (@as(u64, parts.generation) << slot_bits) | parts.slot;
        return @floatFromInt(value);
    }

    /// Returns null for anything that is not the encoding of some slot and generation.
    pub fn decode(id: Id) ?IdParts {
        // The negated comparison also rejects NaN.
        if (!(id >= 0 and id < 9007199254740992.0)) return null;
        const value: u64 = @intFromFloat(id);
        if (@as(f64, @floatFromInt(value)) != id) return null;
        const generation: u32 = @intCast(value >> slot_bits);
        if (generation == 0) return null;
        return .{ .slot = @intCast(value & (slot_count_max - 1)), .generation = generation };
    }
};

/// A copy of one entry's state, for `Table.info`.
pub const Info = struct {
    refs_local: u32,
    refs_submitted: u32,
    callbacks_pending: u32,
    owned: bool,
    freed: bool,
    size_bytes: u64,
};

const Entry = struct {
    /// The generation of the slot's current or most recent object.
    generation: u32,
    state: enum(u8) { live, free, retired },
    /// Created by this counter (as opposed to borrowed); only owned objects can be freed.
    owned: bool,
    /// Explicitly freed: its callbacks have already left the table.
    freed: bool,
    refs_local: u32,
    refs_submitted: u32,
    size_bytes: u64,
    callbacks: callback.List,
    /// Next slot on the free stack, while `state == .free`.
    free_next: u32,
};

const slot_nil: u32 = std.math.maxInt(u32);

pub const Table = struct {
    allocator: std.mem.Allocator,
    entries: std.ArrayList(Entry) = .empty,
    /// A stack of free slots; reusing the most recently freed slot keeps the table dense.
    free_head: u32 = slot_nil,
    pool: callback.Pool = .{},

    objects_live: u32 = 0,
    bytes_live: u64 = 0,
    objects_created: u64 = 0,
    callbacks_registered: u64 = 0,
    /// Callbacks that have left the table (to be run or delivered).
    callbacks_released: u64 = 0,

    pub fn init(allocator: std.mem.Allocator) Table {
        return .{ .allocator = allocator };
    }

    /// Frees the table's memory. Every object must be gone (see `releaseAll`) and every
    /// callback node must be back in the pool: the queue owns those still in flight.
    pub fn deinit(table: *Table) void {
        assert(table.objects_live == 0);
        assert(table.pool.countInUse() == 0);
        table.entries.deinit(table.allocator);
        table.pool.deinit(table.allocator);
        table.* = undefined;
    }

    /// Creates an owned object holding one local reference.
    pub fn create(table: *Table, size_bytes: u64) Error!Id {
        const bytes_live = std.math.add(u64, table.bytes_live, size_bytes) catch return error.Limit;
        var slot = table.free_head;
        if (slot == slot_nil) {
            if (table.entries.items.len >= IdParts.slot_count_max) return error.Limit;
            slot = @intCast(table.entries.items.len);
            const entry = try table.entries.addOne(table.allocator);
            entry.* = .{
                .generation = 0,
                .state = .free,
                .owned = false,
                .freed = false,
                .refs_local = 0,
                .refs_submitted = 0,
                .size_bytes = 0,
                .callbacks = .{},
                .free_next = slot_nil,
            };
        } else {
            table.free_head = table.entries.items[slot].free_next;
        }
        const entry = &table.entries.items[slot];
        assert(entry.state == .free);
        assert(entry.generation < IdParts.generation_max);
        entry.* = .{
            .generation = entry.generation + 1,
            .state = .live,
            .owned = true,
            .freed = false,
            .refs_local = 1,
            .refs_submitted = 0,
            .size_bytes = size_bytes,
            .callbacks = .{},
            .free_next = slot_nil,
        };
        table.objects_live += 1;
        table.objects_created += 1;
        table.bytes_live = bytes_live;
        return IdParts.encode(.{ .slot = slot, .generation = entry.generation });
    }

    pub fn retain(table: *Table, id: Id) Error!void {
        const entry = try table.lookup(id);
        entry.refs_local = std.math.add(u32, entry.refs_local, 1) catch return error.Limit;
    }

    /// Drops one local reference; if that was the object's last reference, the object is
    /// deleted and its callbacks are appended to `released`.
    pub fn release(table: *Table, id: Id, released: *callback.List) Error!void {
        const slot = try table.lookupSlot(id);
        const entry = &table.entries.items[slot];
        if (entry.refs_local == 0) return error.NoReference;
        entry.refs_local -= 1;
        table.deleteIfUnreferenced(slot, released);
    }

    /// Drops one local reference per id (an id may repeat). All or nothing: on error the
    /// table is unchanged and nothing is released.
    pub fn releaseBatch(table: *Table, ids: []const Id, released: *callback.List) Error!void {
        try table.decrementAll(ids, .local);
        table.deleteAllUnreferenced(ids, released);
    }

    /// Adds one submitted-task reference per id (an id may repeat): a task took them as
    /// arguments. All or nothing.
    pub fn submittedAdd(table: *Table, ids: []const Id) Error!void {
        for (ids, 0..) |id, index| {
            const entry = table.lookup(id) catch |err| {
                table.undoIncrement(ids[0..index], .submitted);
                return err;
            };
            entry.refs_submitted = std.math.add(u32, entry.refs_submitted, 1) catch {
                table.undoIncrement(ids[0..index], .submitted);
                return error.Limit;
            };
        }
    }

    /// Removes one submitted-task reference per id: the task finished. All or nothing.
    pub fn submittedRemove(table: *Table, ids: []const Id, released: *callback.List) Error!void {
        try table.decrementAll(ids, .submitted);
        table.deleteAllUnreferenced(ids, released);
    }

    /// Explicitly frees an owned object: its callbacks leave the table now (once in total,
    /// so freeing twice is a no-op) and later registrations are refused. The entry stays
    /// until its references drop, so ids keep working for retain, release and info.
    pub fn free(table: *Table, id: Id, released: *callback.List) Error!void {
        const entry = try table.lookup(id);
        assert(entry.owned); // Every object is owned until borrowing lands.
        if (entry.freed) {
            assert(entry.callbacks.len == 0);
            return;
        }
        entry.freed = true;
        table.callbacks_released += entry.callbacks.len;
        released.concat(&table.pool, &entry.callbacks);
    }

    /// Appends `cb` to the object's callbacks. Returns false, registering nothing, when the
    /// object is deleted or freed (as Ray does); an invalid id is an error.
    pub fn register(table: *Table, id: Id, cb: callback.Callback) Error!bool {
        const entry = table.lookup(id) catch |err| switch (err) {
            error.StaleId => return false,
            else => return err,
        };
        if (entry.freed) return false;
        if (entry.callbacks.len == std.math.maxInt(u32)) return error.Limit;
        const index = try table.pool.create(table.allocator, cb, @bitCast(id));
        // `lookup` returned a pointer into `entries`, which `create` did not touch.
        entry.callbacks.push(&table.pool, index);
        table.callbacks_registered += 1;
        return true;
    }

    pub fn info(table: *Table, id: Id) Error!Info {
        const entry = try table.lookup(id);
        return .{
            .refs_local = entry.refs_local,
            .refs_submitted = entry.refs_submitted,
            .callbacks_pending = entry.callbacks.len,
            .owned = entry.owned,
            .freed = entry.freed,
            .size_bytes = entry.size_bytes,
        };
    }

    /// Deletes every live object as if its last reference had dropped: the counter is
    /// closing and nothing it tracks outlives it. Callbacks leave in slot order, each
    /// object's in registration order.
    pub fn releaseAll(table: *Table, released: *callback.List) void {
        for (table.entries.items, 0..) |*entry, slot| {
            if (entry.state != .live) continue;
            entry.refs_local = 0;
            entry.refs_submitted = 0;
            table.delete(@intCast(slot), released);
        }
        assert(table.objects_live == 0);
        assert(table.bytes_live == 0);
    }

    fn lookup(table: *Table, id: Id) Error!*Entry {
        return &table.entries.items[try table.lookupSlot(id)];
    }

    /// The slot of a live object, or why `id` names none.
    fn lookupSlot(table: *Table, id: Id) Error!u32 {
        const parts = IdParts.decode(id) orelse return error.InvalidId;
        if (parts.slot >= table.entries.items.len) return error.InvalidId;
        const entry = &table.entries.items[parts.slot];
        if (parts.generation > entry.generation) return error.InvalidId;
        if (parts.generation < entry.generation or entry.state != .live) return error.StaleId;
        return parts.slot;
    }

    const Count = enum { local, submitted };

    fn countOf(entry: *Entry, count: Count) *u32 {
        return switch (count) {
            .local => &entry.refs_local,
            .submitted => &entry.refs_submitted,
        };
    }

    /// Decrements one count per id without deleting anything, so that a failure part way
    /// can be undone exactly; deletion is a second pass.
    fn decrementAll(table: *Table, ids: []const Id, count: Count) Error!void {
        for (ids, 0..) |id, index| {
            const entry = table.lookup(id) catch |err| {
                table.undoDecrement(ids[0..index], count);
                return err;
            };
            const value = countOf(entry, count);
            if (value.* == 0) {
                table.undoDecrement(ids[0..index], count);
                return error.NoReference;
            }
            value.* -= 1;
        }
    }

    fn undoDecrement(table: *Table, ids: []const Id, count: Count) void {
        for (ids) |id| countOf(table.lookup(id) catch unreachable, count).* += 1;
    }

    fn undoIncrement(table: *Table, ids: []const Id, count: Count) void {
        for (ids) |id| countOf(table.lookup(id) catch unreachable, count).* -= 1;
    }

    /// Deletes the object in `slot` if every count is zero.
    fn deleteIfUnreferenced(table: *Table, slot: u32, released: *callback.List) void {
        const entry = &table.entries.items[slot];
        if (entry.refs_local != 0 or entry.refs_submitted != 0) return;
        table.delete(slot, released);
    }

    /// The second pass of a batch: ids were all valid in the first, so one that is stale
    /// now is a duplicate whose object an earlier occurrence already deleted.
    fn deleteAllUnreferenced(table: *Table, ids: []const Id, released: *callback.List) void {
        for (ids) |id| {
            const slot = table.lookupSlot(id) catch |err| {
                assert(err == error.StaleId);
                continue;
            };
            table.deleteIfUnreferenced(slot, released);
        }
    }

    fn delete(table: *Table, slot: u32, released: *callback.List) void {
        const entry = &table.entries.items[slot];
        assert(entry.state == .live);
        assert(entry.refs_local == 0 and entry.refs_submitted == 0);
        assert(!entry.freed or entry.callbacks.len == 0);
        table.callbacks_released += entry.callbacks.len;
        released.concat(&table.pool, &entry.callbacks);
        table.objects_live -= 1;
        table.bytes_live -= entry.size_bytes;
        entry.size_bytes = 0;
        if (entry.generation == IdParts.generation_max) {
            // Reusing the slot would let a new object's id equal an old one's.
            entry.state = .retired;
        } else {
            entry.state = .free;
            entry.free_next = table.free_head;
            table.free_head = slot;
        }
    }
};

const testing = std.testing;

fn sinkCallback(token: u32) callback.Callback {
    return .{ .sink = .{ .sink = 0, .token = token } };
}

/// Pops every node of `list` back into the pool, returning the tokens in order.
fn drainTokens(table: *Table, list: *callback.List, out: []u32) []u32 {
    var count: usize = 0;
    while (true) {
        const index = list.pop(&table.pool);
        if (index == callback.nil) break;
        out[count] = table.pool.get(index).callback.sink.token;
        count += 1;
        table.pool.destroy(index);
    }
    return out[0..count];
}

test "id encoding round-trips and rejects what was never issued" {
    const id = IdParts.encode(.{ .slot = 5, .generation = 3 });
    try testing.expectEqual(IdParts{ .slot = 5, .generation = 3 }, IdParts.decode(id).?);
    const max = IdParts.encode(.{ .slot = IdParts.slot_count_max - 1, .generation = IdParts.generation_max });
    try testing.expectEqual(@as(f64, 9007199254740991.0), max);
    for ([_]f64{ 0, 1, 5, -1, 0.5, id + 0.5, 9007199254740992.0, std.math.inf(f64), std.math.nan(f64) }) |bad| {
        try testing.expectEqual(@as(?IdParts, null), IdParts.decode(bad));
    }
}

test "counts: local and submitted references keep an object in scope" {
    var table = Table.init(testing.allocator);
    defer table.deinit();
    var released: callback.List = .{};

    const id = try table.create(100);
    try testing.expect(try table.register(id, sinkCallback(1)));
    try table.retain(id);
    try table.submittedAdd(&.{ id, id });
    try testing.expectEqual(Info{ .refs_local = 2, .refs_submitted = 2, .callbacks_pending = 1, .owned = true, .freed = false, .size_bytes = 100 }, try table.info(id));

    try table.release(id, &released);
    try table.release(id, &released);
    try table.submittedRemove(&.{id}, &released);
    try testing.expectEqual(@as(u32, 0), released.len);
    try testing.expectEqual(@as(u32, 1), table.objects_live);
    try testing.expectEqual(@as(u64, 100), table.bytes_live);

    try table.submittedRemove(&.{id}, &released);
    try testing.expectEqual(@as(u32, 1), released.len);
    try testing.expectEqual(@as(u32, 0), table.objects_live);
    try testing.expectEqual(@as(u64, 0), table.bytes_live);
    try testing.expectError(error.StaleId, table.info(id));
    var buffer: [4]u32 = undefined;
    try testing.expectEqualSlices(u32, &.{1}, drainTokens(&table, &released, &buffer));
}

test "callbacks leave in registration order, exactly once" {
    var table = Table.init(testing.allocator);
    defer table.deinit();
    var released: callback.List = .{};

    const id = try table.create(0);
    for (0..5) |token| try testing.expect(try table.register(id, sinkCallback(@intCast(token))));
    try table.release(id, &released);
    try testing.expectError(error.StaleId, table.release(id, &released));
    try testing.expect(!try table.register(id, sinkCallback(9)));
    var buffer: [8]u32 = undefined;
    try testing.expectEqualSlices(u32, &.{ 0, 1, 2, 3, 4 }, drainTokens(&table, &released, &buffer));
}

test "free hands callbacks over once and keeps the entry until its references drop" {
    var table = Table.init(testing.allocator);
    defer table.deinit();
    var released: callback.List = .{};
    var buffer: [4]u32 = undefined;

    const id = try table.create(8);
    try testing.expect(try table.register(id, sinkCallback(1)));
    try table.free(id, &released);
    try testing.expectEqualSlices(u32, &.{1}, drainTokens(&table, &released, &buffer));
    try table.free(id, &released);
    try testing.expect(!try table.register(id, sinkCallback(2)));
    try testing.expect((try table.info(id)).freed);

    try table.retain(id);
    try table.release(id, &released);
    try table.release(id, &released);
    try testing.expectEqual(@as(u32, 0), released.len);
    try testing.expectError(error.StaleId, table.info(id));
}

test "stale, forged and exhausted ids are told apart" {
    var table = Table.init(testing.allocator);
    defer table.deinit();
    var released: callback.List = .{};

    const first = try table.create(0);
    try table.release(first, &released);
    const second = try table.create(0);
    const parts = IdParts.decode(second).?;
    try testing.expectEqual(IdParts.decode(first).?.slot, parts.slot);

    try testing.expectError(error.StaleId, table.retain(first));
    try testing.expectError(error.InvalidId, table.retain(IdParts.encode(.{ .slot = parts.slot, .generation = parts.generation + 1 })));
    try testing.expectError(error.InvalidId, table.retain(IdParts.encode(.{ .slot = parts.slot + 1, .generation = 1 })));
    try testing.expectError(error.InvalidId, table.retain(second + 0.5));
    try testing.expectEqual(@as(u32, 1), (try table.info(second)).refs_local);

    // A slot whose generation is exhausted is never reused.
    table.entries.items[parts.slot].generation = IdParts.generation_max;
    const last = IdParts.encode(.{ .slot = parts.slot, .generation = IdParts.generation_max });
    try table.release(last, &released);
    const third = try table.create(0);
    try testing.expect(IdParts.decode(third).?.slot != parts.slot);
    try testing.expectError(error.StaleId, table.retain(last));
    try table.release(third, &released);
}

test "a failing batch leaves the table unchanged" {
    var table = Table.init(testing.allocator);
    defer table.deinit();
    var released: callback.List = .{};

    const a = try table.create(0);
    const b = try table.create(0);
    try testing.expectError(error.NoReference, table.releaseBatch(&.{ a, b, a }, &released));
    try testing.expectError(error.InvalidId, table.releaseBatch(&.{ a, 3.5 }, &released));
    try testing.expectError(error.NoReference, table.submittedRemove(&.{a}, &released));
    try testing.expectError(error.InvalidId, table.submittedAdd(&.{ a, b, 0 }));
    try testing.expectEqual(@as(u32, 1), (try table.info(a)).refs_local);
    try testing.expectEqual(@as(u32, 0), (try table.info(a)).refs_submitted);
    try testing.expectEqual(@as(u32, 0), (try table.info(b)).refs_submitted);

    table.entries.items[IdParts.decode(b).?.slot].refs_submitted = std.math.maxInt(u32) - 1;
    try testing.expectError(error.Limit, table.submittedAdd(&.{ a, b, b }));
    try testing.expectEqual(@as(u32, 0), (try table.info(a)).refs_submitted);
    try testing.expectEqual(std.math.maxInt(u32) - 1, (try table.info(b)).refs_submitted);
    table.entries.items[IdParts.decode(b).?.slot].refs_submitted = 0;

    try table.releaseBatch(&.{ a, b }, &released);
    try testing.expectEqual(@as(u32, 0), table.objects_live);
}

test "release all deletes every object and hands over every callback" {
    var table = Table.init(testing.allocator);
    defer table.deinit();
    var released: callback.List = .{};
    var buffer: [4]u32 = undefined;

    const a = try table.create(1);
    const b = try table.create(2);
    try table.retain(b);
    try table.submittedAdd(&.{b});
    try testing.expect(try table.register(a, sinkCallback(1)));
    try testing.expect(try table.register(b, sinkCallback(2)));
    table.releaseAll(&released);
    try testing.expectEqualSlices(u32, &.{ 1, 2 }, drainTokens(&table, &released, &buffer));
    try testing.expectEqual(@as(u64, 2), table.callbacks_released);
}

test "byte total overflow is a limit, not a wrap" {
    var table = Table.init(testing.allocator);
    defer table.deinit();
    var released: callback.List = .{};

    const big = try table.create(std.math.maxInt(u64) - 1);
    try testing.expectError(error.Limit, table.create(2));
    try table.release(big, &released);
}
