//! What an out-of-scope registration asks for, and the pool node that carries it from its
//! object's list (registration order) to a queue list and back to the pool.

const std = @import("std");
const pool_module = @import("pool.zig");

pub const Index = pool_module.Index;
pub const nil = pool_module.nil;
pub const List = pool_module.List;

/// A native callback: runs on the dispatcher thread with the object id (an integer-valued
/// double, see `table.Id`) and the context given at registration.
pub const Function = *const fn (id: f64, context: ?*anyopaque) callconv(.c) void;

pub const Callback = union(enum) {
    /// Call a C function on the dispatcher thread.
    native: struct { function: Function, context: ?*anyopaque },
    /// Hand `token` to a sink's outbox; the sink's owner (a JS thread) drains it.
    sink: struct { sink: u32, token: u32 },

    pub fn eql(callback: Callback, other: Callback) bool {
        return switch (callback) {
            .native => |native| other == .native and
                native.function == other.native.function and native.context == other.native.context,
            .sink => |target| other == .sink and
                target.sink == other.sink.sink and target.token == other.sink.token,
        };
    }
};

pub const Node = struct {
    callback: Callback,
    /// The object the callback belongs to, written at registration so that a native
    /// callback can be given its id after the object's entry is gone.
    object_id: f64,
    next: Index = nil,
};

pub const Pool = pool_module.Pool(Node);
