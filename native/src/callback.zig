//! Registered out-of-scope callbacks and the intrusive FIFO lists that carry them.
//!
//! Every registration becomes one `Node` in a `Pool`. A node moves, without being copied or
//! reallocated, from its object's list (registration order) to a queue list (when the
//! object goes out of scope or is freed) and back to the pool's free list (when it has been
//! handed to its consumer). Because the release path only relinks nodes that already exist,
//! it never allocates and so can never fail half way: allocation happens at registration,
//! where a failure leaves the table unchanged.
//!
//! Nothing here is thread-safe; the counter's mutex guards the pool and every list.

const std = @import("std");
const assert = std.debug.assert;

/// A native out-of-scope callback: runs on the dispatcher thread with the object id (an
/// integer-valued double, see `table.Id`) and the context given at registration.
pub const Function = *const fn (id: f64, context: ?*anyopaque) callconv(.c) void;

/// What a registration asks for when its object goes out of scope.
pub const Callback = union(enum) {
    /// Call a C function on the dispatcher thread.
    native: struct { function: Function, context: ?*anyopaque },
    /// Hand `token` to a sink's outbox; the sink's owner (a JS thread) drains it.
    sink: struct { sink: u32, token: u32 },
};

/// Index of a node in its pool; `nil` ends a list.
pub const Index = u32;
pub const nil: Index = std.math.maxInt(Index);

pub const Node = struct {
    callback: Callback,
    /// The object the callback belongs to, written when the node is registered so that a
    /// native callback can be given its id after the object's entry is gone.
    object_id: u64,
    next: Index,
};

/// A FIFO threaded through a pool's nodes. Appending one node or a whole other list is
/// O(1), which is what lets an object's callbacks join a queue without walking them.
pub const List = struct {
    head: Index = nil,
    tail: Index = nil,
    len: u32 = 0,

    pub fn push(list: *List, pool: *Pool, index: Index) void {
        assert(index != nil);
        pool.nodes.items[index].next = nil;
        if (list.tail == nil) {
            assert(list.head == nil and list.len == 0);
            list.head = index;
        } else {
            pool.nodes.items[list.tail].next = index;
        }
        list.tail = index;
        list.len += 1;
    }

    /// Removes and returns the first node, or `nil` when the list is empty.
    pub fn pop(list: *List, pool: *Pool) Index {
        const index = list.head;
        if (index == nil) {
            assert(list.len == 0 and list.tail == nil);
            return nil;
        }
        list.head = pool.nodes.items[index].next;
        if (list.head == nil) list.tail = nil;
        list.len -= 1;
        return index;
    }

    /// Moves every node of `other` to the end of `list`, leaving `other` empty.
    pub fn concat(list: *List, pool: *Pool, other: *List) void {
        if (other.head == nil) return;
        if (list.tail == nil) {
            list.* = other.*;
        } else {
            pool.nodes.items[list.tail].next = other.head;
            list.tail = other.tail;
            list.len += other.len;
        }
        other.* = .{};
    }
};

/// Storage for nodes: a growable array plus a free list. Indexes stay valid when the array
/// grows; pointers into it do not, so nobody keeps a `*Node` across a registration.
pub const Pool = struct {
    nodes: std.ArrayList(Node) = .empty,
    free: List = .{},

    pub fn deinit(pool: *Pool, allocator: std.mem.Allocator) void {
        pool.nodes.deinit(allocator);
        pool.* = undefined;
    }

    /// Takes a node for `callback`. The only allocation on any callback path.
    pub fn create(pool: *Pool, allocator: std.mem.Allocator, callback: Callback, object_id: u64) error{OutOfMemory}!Index {
        var index = pool.free.pop(pool);
        if (index == nil) {
            if (pool.nodes.items.len >= nil) return error.OutOfMemory;
            index = @intCast(pool.nodes.items.len);
            try pool.nodes.append(allocator, undefined);
        }
        pool.nodes.items[index] = .{ .callback = callback, .object_id = object_id, .next = nil };
        return index;
    }

    pub fn destroy(pool: *Pool, index: Index) void {
        pool.free.push(pool, index);
    }

    pub fn get(pool: *const Pool, index: Index) *const Node {
        return &pool.nodes.items[index];
    }

    /// Nodes handed out and not yet returned.
    pub fn countInUse(pool: *const Pool) usize {
        return pool.nodes.items.len - pool.free.len;
    }
};

const testing = std.testing;

fn noop(_: f64, _: ?*anyopaque) callconv(.c) void {}

test "list keeps FIFO order across push, concat and pop" {
    var pool: Pool = .{};
    defer pool.deinit(testing.allocator);

    var a: List = .{};
    var b: List = .{};
    var tokens: [6]Index = undefined;
    for (&tokens, 0..) |*index, i| {
        index.* = try pool.create(testing.allocator, .{ .sink = .{ .sink = 0, .token = @intCast(i) } }, 1);
        if (i < 3) a.push(&pool, index.*) else b.push(&pool, index.*);
    }
    a.concat(&pool, &b);
    try testing.expectEqual(@as(u32, 0), b.len);
    try testing.expectEqual(@as(u32, 6), a.len);
    for (0..6) |i| {
        const index = a.pop(&pool);
        try testing.expectEqual(@as(u32, @intCast(i)), pool.get(index).callback.sink.token);
        pool.destroy(index);
    }
    try testing.expectEqual(nil, a.pop(&pool));
    try testing.expectEqual(@as(usize, 0), pool.countInUse());
}

test "pool reuses freed nodes before growing" {
    var pool: Pool = .{};
    defer pool.deinit(testing.allocator);

    const first = try pool.create(testing.allocator, .{ .native = .{ .function = noop, .context = null } }, 7);
    pool.destroy(first);
    const second = try pool.create(testing.allocator, .{ .native = .{ .function = noop, .context = null } }, 8);
    try testing.expectEqual(first, second);
    try testing.expectEqual(@as(usize, 1), pool.nodes.items.len);
    try testing.expectEqual(@as(u64, 8), pool.get(second).object_id);
}
