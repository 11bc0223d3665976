//! Index-addressed node pools and the intrusive FIFO lists threaded through them.
//!
//! Every per-object collection in the table (callbacks, borrowers, contained objects,
//! lineage arguments) is a `List` of nodes in a `Pool`. Moving a node from one list to
//! another relinks it without copying or allocating, which is what lets the release path
//! run without allocation and so never fail half way. Indexes stay valid when a pool grows;
//! pointers into it do not, so nobody keeps a `*T` across an allocation.
//!
//! Nothing here is thread-safe; the counter's locks guard every pool (see `table.zig`).

const std = @import("std");
const assert = std.debug.assert;

/// Index of a node in its pool; `nil` ends a list.
pub const Index = u32;
pub const nil: Index = std.math.maxInt(Index);

/// A FIFO of nodes of one pool. `T` must have a `next: Index` field.
///
/// A node is in at most one list (the pool's free list included). Its `next` is `nil`
/// whenever it is in none: `pop` and `removeFirst` unlink it before handing it on, and
/// `push` asserts that it receives it so. That catches a node pushed while still in a list
/// (unless it is another list's tail), which would corrupt both lists, at the push rather
/// than at some later walk. `len` counts the nodes exactly: every loop that walks a list
/// is bounded by it.
pub const List = struct {
    head: Index = nil,
    tail: Index = nil,
    len: u32 = 0,

    pub fn push(list: *List, pool: anytype, index: Index) void {
        assert(index != nil);
        assert(index != list.tail);
        assert(pool.at(index).next == nil);
        assert(list.len < nil);
        if (list.tail == nil) {
            assert(list.head == nil);
            assert(list.len == 0);
            list.head = index;
        } else {
            assert(list.len > 0);
            assert(pool.at(list.tail).next == nil);
            pool.at(list.tail).next = index;
        }
        list.tail = index;
        list.len += 1;
    }

    /// Removes and returns the first node, unlinked, or `nil` when the list is empty.
    pub fn pop(list: *List, pool: anytype) Index {
        const index = list.head;
        if (index == nil) {
            assert(list.len == 0);
            assert(list.tail == nil);
            return nil;
        }
        assert(list.len > 0);
        list.head = pool.at(index).next;
        pool.at(index).next = nil;
        list.len -= 1;
        // The chain ends exactly where `push` counted it to.
        if (list.head == nil) {
            assert(list.len == 0);
            assert(list.tail == index);
            list.tail = nil;
        } else {
            assert(list.len > 0);
        }
        return index;
    }

    /// Moves every node of `other` to the end of `list`, leaving `other` empty.
    pub fn concat(list: *List, pool: anytype, other: *List) void {
        assert(list != other);
        if (other.head == nil) {
            assert(other.len == 0);
            return;
        }
        assert(other.len > 0);
        assert(pool.at(other.tail).next == nil);
        assert(@as(u64, list.len) + other.len < nil);
        if (list.tail == nil) {
            assert(list.len == 0);
            list.* = other.*;
        } else {
            assert(pool.at(list.tail).next == nil);
            pool.at(list.tail).next = other.head;
            list.tail = other.tail;
            list.len += other.len;
        }
        other.* = .{};
    }

    /// Unlinks the first node for which `matches(context, node)` holds; returns it, or `nil`.
    pub fn removeFirst(list: *List, pool: anytype, context: anytype, comptime matches: anytype) Index {
        var previous: Index = nil;
        var index = list.head;
        // One pass per node, and one more to find the end: a longer chain is corrupt.
        for (0..@as(usize, list.len) + 1) |_| {
            if (index == nil) return nil;
            const next = pool.at(index).next;
            if (!matches(context, pool.at(index))) {
                previous = index;
                index = next;
                continue;
            }
            if (previous == nil) list.head = next else pool.at(previous).next = next;
            if (list.tail == index) list.tail = previous;
            pool.at(index).next = nil;
            list.len -= 1;
            return index;
        } else unreachable;
    }

    /// Unlinks the node `index`, which must be in the list.
    pub fn removeIndex(list: *List, pool: anytype, index: Index) void {
        const removed = list.removeFirst(pool, pool.at(index), isNode);
        assert(removed == index);
    }

    fn isNode(wanted: anytype, node: @TypeOf(wanted)) bool {
        return node == wanted;
    }

    /// Returns every node to the pool.
    pub fn clear(list: *List, pool: anytype) void {
        pool.free_list.concat(pool, list);
    }

    /// Walks the nodes in order, without changing the list (which must not change during
    /// the walk): `while (nodes.next(pool)) |index|`.
    pub fn iterate(list: *const List) Iterator {
        return .{ .index = list.head, .remaining = list.len };
    }

    pub const Iterator = struct {
        index: Index,
        /// Nodes still to come, by `len`: the walk's bound.
        remaining: u32,

        pub fn next(iterator: *Iterator, pool: anytype) ?Index {
            const index = iterator.index;
            if (index == nil) {
                // The chain ended where `len` said it would.
                assert(iterator.remaining == 0);
                return null;
            }
            assert(iterator.remaining > 0);
            iterator.remaining -= 1;
            iterator.index = pool.at(index).next;
            return index;
        }
    };
};

/// Storage for nodes of type `T`: a growable array plus a free list.
pub fn Pool(comptime T: type) type {
    comptime assert(@FieldType(T, "next") == Index);
    return struct {
        const Self = @This();

        nodes: std.ArrayList(T) = .empty,
        free_list: List = .{},

        pub fn deinit(pool: *Self, allocator: std.mem.Allocator) void {
            pool.nodes.deinit(allocator);
            pool.* = undefined;
        }

        /// Takes a node holding `value`: the only allocation a list ever makes.
        pub fn create(pool: *Self, allocator: std.mem.Allocator, value: T) error{OutOfMemory}!Index {
            var index = pool.free_list.pop(pool);
            if (index == nil) {
                if (pool.nodes.items.len >= nil) return error.OutOfMemory;
                index = @intCast(pool.nodes.items.len);
                try pool.nodes.append(allocator, undefined);
            }
            pool.nodes.items[index] = value;
            pool.nodes.items[index].next = nil;
            return index;
        }

        /// Makes sure the next `count` creates cannot fail.
        pub fn reserve(pool: *Self, allocator: std.mem.Allocator, count: usize) error{OutOfMemory}!void {
            const missing = count -| pool.free_list.len;
            if (pool.nodes.items.len + missing >= nil) return error.OutOfMemory;
            try pool.nodes.ensureUnusedCapacity(allocator, missing);
        }

        pub fn destroy(pool: *Self, index: Index) void {
            pool.free_list.push(pool, index);
        }

        pub fn at(pool: *Self, index: Index) *T {
            return &pool.nodes.items[index];
        }

        /// Nodes handed out and not yet returned.
        pub fn countInUse(pool: *const Self) usize {
            return pool.nodes.items.len - pool.free_list.len;
        }

        /// Gives the storage back when no node is in use and it has room for at least
        /// `min_nodes`: no index is held anywhere then, so none can dangle. Below that, an
        /// empty pool keeps its storage for the next nodes (a pool that empties and fills
        /// often should not reallocate each time).
        pub fn trimIfEmpty(pool: *Self, allocator: std.mem.Allocator, min_nodes: usize) void {
            if (pool.countInUse() != 0 or pool.nodes.capacity < min_nodes) return;
            pool.nodes.clearAndFree(allocator);
            pool.free_list = .{};
        }
    };
}

const testing = std.testing;

const TestNode = struct { value: u32, next: Index = nil };

fn hasValue(value: u32, node: *const TestNode) bool {
    return node.value == value;
}

test "list keeps FIFO order across push, concat, removeFirst and pop" {
    var pool: Pool(TestNode) = .{};
    defer pool.deinit(testing.allocator);

    var a: List = .{};
    var b: List = .{};
    for (0..6) |value| {
        const index = try pool.create(testing.allocator, .{ .value = @intCast(value) });
        if (value < 3) a.push(&pool, index) else b.push(&pool, index);
    }
    a.concat(&pool, &b);
    try testing.expectEqual(@as(u32, 0), b.len);
    pool.destroy(a.removeFirst(&pool, @as(u32, 5), hasValue)); // the tail
    pool.destroy(a.removeFirst(&pool, @as(u32, 0), hasValue)); // the head
    pool.destroy(a.removeFirst(&pool, @as(u32, 3), hasValue)); // the middle
    try testing.expectEqual(nil, a.removeFirst(&pool, @as(u32, 9), hasValue));
    const index = try pool.create(testing.allocator, .{ .value = 6 });
    a.push(&pool, index); // the tail is still right
    var seen: [3]u32 = undefined;
    for (&seen) |*value| {
        const popped = a.pop(&pool);
        value.* = pool.at(popped).value;
        pool.destroy(popped);
    }
    try testing.expectEqualSlices(u32, &.{ 1, 2, 4 }, &seen);
    try testing.expectEqual(@as(u32, 1), a.len);
    a.clear(&pool);
    try testing.expectEqual(@as(usize, 0), pool.countInUse());
}

test "an empty pool gives its storage back from its threshold on, and grows again" {
    var pool: Pool(TestNode) = .{};
    defer pool.deinit(testing.allocator);

    var indexes: [8]Index = undefined;
    for (&indexes, 0..) |*index, value| index.* = try pool.create(testing.allocator, .{ .value = @intCast(value) });
    pool.trimIfEmpty(testing.allocator, 0); // in use: kept
    try testing.expect(pool.nodes.capacity >= 8);
    for (indexes) |index| pool.destroy(index);
    pool.trimIfEmpty(testing.allocator, 1 << 20); // below the threshold: kept
    try testing.expect(pool.nodes.capacity >= 8);
    pool.trimIfEmpty(testing.allocator, 8);
    try testing.expectEqual(@as(usize, 0), pool.nodes.capacity);
    try testing.expectEqual(@as(u32, 0), pool.free_list.len);
    const index = try pool.create(testing.allocator, .{ .value = 9 });
    try testing.expectEqual(@as(u32, 9), pool.at(index).value);
    try testing.expectEqual(@as(usize, 1), pool.countInUse());
}

test "pool reuses freed nodes before growing, and reserve makes creates infallible" {
    var pool: Pool(TestNode) = .{};
    defer pool.deinit(testing.allocator);

    const first = try pool.create(testing.allocator, .{ .value = 1 });
    pool.destroy(first);
    try testing.expectEqual(first, try pool.create(testing.allocator, .{ .value = 2 }));
    try pool.reserve(testing.allocator, 10);
    try testing.expect(pool.nodes.capacity >= 11);
}
