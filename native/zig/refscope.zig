//! Zig bindings for librefscope, the module dependents get with `dep.module("refscope")`:
//! importing it links the library.
//!
//! `c` is the whole C API, translated from native/include/refscope.h, whose comments are the
//! contract (which calls block, which threads callbacks run on). `Counter` wraps the calls
//! native code usually makes, as the owner (`REFSCOPE_NO_SINK`), with Zig errors in place
//! of negative statuses; anything else is a `c.refscope_*` call away, with `check`. `sync`
//! guards what callbacks share with the rest of the program.

const std = @import("std");

pub const c = @import("refscope_h");

/// The library's own mutex and condition variable (and once), on the platform's primitives
/// and needing no `std.Io`: callbacks run on the library's threads, which belong to no `Io`
/// of the program's, and these work on any thread.
pub const sync = @import("sync");

/// An object id: an integer-valued double, opaque (see the header).
pub const Id = c.refscope_id;

/// One error per `REFSCOPE_E_*` status; `Unknown` for a status newer than these bindings.
pub const Error = error{
    InvalidArgument,
    InvalidId,
    StaleId,
    NoReference,
    Limit,
    OutOfMemory,
    Closed,
    WrongThread,
    SystemResources,
    NotOwned,
    LimitSinks,
    LimitThread,
    LimitCounters,
    Unknown,
};

/// A result of any family as an error union: its value when it is not an error (a
/// `refscope_status`, `refscope_hint`, `refscope_registration`, `refscope_removal`,
/// `refscope_state` or a count), else its error.
pub fn check(status: i32) Error!u31 {
    if (status >= 0) return @intCast(status);
    return switch (status) {
        c.REFSCOPE_E_INVALID_ARGUMENT => error.InvalidArgument,
        c.REFSCOPE_E_INVALID_ID => error.InvalidId,
        c.REFSCOPE_E_STALE_ID => error.StaleId,
        c.REFSCOPE_E_NO_REFERENCE => error.NoReference,
        c.REFSCOPE_E_LIMIT => error.Limit,
        c.REFSCOPE_E_OUT_OF_MEMORY => error.OutOfMemory,
        c.REFSCOPE_E_CLOSED => error.Closed,
        c.REFSCOPE_E_WRONG_THREAD => error.WrongThread,
        c.REFSCOPE_E_SYSTEM_RESOURCES => error.SystemResources,
        c.REFSCOPE_E_NOT_OWNED => error.NotOwned,
        c.REFSCOPE_E_LIMIT_SINKS => error.LimitSinks,
        c.REFSCOPE_E_LIMIT_THREAD => error.LimitThread,
        c.REFSCOPE_E_LIMIT_COUNTERS => error.LimitCounters,
        else => error.Unknown,
    };
}

pub const CreateOptions = struct {
    /// Objects it contains: each stays in scope while this one is.
    contains: []const Id = &.{},
    /// Objects its lineage depends on: each gets a lineage reference until this one is deleted.
    lineage: []const Id = &.{},
    /// Lineage references then only delay its deletion instead of keeping it in scope.
    reconstructable: bool = false,
};

/// A counter, used by native code acting for the owner (`REFSCOPE_NO_SINK`).
pub const Counter = struct {
    handle: *c.refscope_counter,

    /// Opens a counter and starts its dispatcher thread.
    pub fn open() Error!Counter {
        var handle: ?*c.refscope_counter = null;
        _ = try check(c.refscope_counter_open(&handle));
        return .{ .handle = handle.? };
    }

    /// Closes the counter if still open (every live object is deleted, so every callback
    /// still runs once) and BLOCKS until the dispatcher has run every queued callback and
    /// exited. Once, from the opener; never from a callback (`error.WrongThread`).
    pub fn destroy(counter: Counter) Error!void {
        _ = try check(c.refscope_counter_destroy(counter.handle));
    }

    /// Creates an object holding one local reference. `size_bytes` must be below 2^53.
    pub fn create(counter: Counter, size_bytes: u64, options: CreateOptions) Error!Id {
        var id: Id = 0;
        _ = try check(c.refscope_object_create_ex(
            counter.handle,
            @floatFromInt(size_bytes),
            if (options.reconstructable) c.REFSCOPE_CREATE_RECONSTRUCTABLE else 0,
            options.contains.ptr,
            std.math.cast(u32, options.contains.len) orelse return error.Limit,
            options.lineage.ptr,
            std.math.cast(u32, options.lineage.len) orelse return error.Limit,
            c.REFSCOPE_NO_SINK,
            &id,
        ));
        return id;
    }

    pub fn retain(counter: Counter, id: Id) Error!void {
        _ = try check(c.refscope_object_retain(counter.handle, id, c.REFSCOPE_NO_SINK));
    }

    /// Drops one local reference; the last one sends the object out of scope.
    pub fn release(counter: Counter, id: Id) Error!void {
        _ = try check(c.refscope_object_release(counter.handle, id, c.REFSCOPE_NO_SINK));
    }

    /// Drops one local reference per id (ids may repeat); all or nothing.
    pub fn releaseBatch(counter: Counter, ids: []const Id) Error!void {
        const count = std.math.cast(u32, ids.len) orelse return error.Limit;
        _ = try check(c.refscope_object_release_batch(counter.handle, ids.ptr, count, c.REFSCOPE_NO_SINK));
    }

    /// Adds one submitted-task reference per id (a task took them as arguments).
    pub fn submittedAdd(counter: Counter, ids: []const Id) Error!void {
        const count = std.math.cast(u32, ids.len) orelse return error.Limit;
        _ = try check(c.refscope_submitted_add(counter.handle, ids.ptr, count, c.REFSCOPE_NO_SINK));
    }

    /// Removes one submitted-task reference per id (the task finished).
    pub fn submittedRemove(counter: Counter, ids: []const Id) Error!void {
        const count = std.math.cast(u32, ids.len) orelse return error.Limit;
        _ = try check(c.refscope_submitted_remove(counter.handle, ids.ptr, count, c.REFSCOPE_NO_SINK));
    }

    /// Registers `function(id, context)` to run once the object is out of scope or freed, on
    /// the dispatcher thread, with no lock held: it must not block for long. False when it
    /// was refused (the object is deleted, freed or out of scope): then it never runs.
    /// `context` is a single-item pointer, passed back as is.
    pub fn onOutOfScope(
        counter: Counter,
        id: Id,
        context: anytype,
        comptime function: fn (id: Id, context: @TypeOf(context)) void,
    ) Error!bool {
        return counter.register(c.refscope_object_on_out_of_scope, id, context, function);
    }

    /// As `onOutOfScope`, for when the object's entry is erased (out of scope, and no
    /// lineage reference left). False only when it is already deleted.
    pub fn onDeleted(
        counter: Counter,
        id: Id,
        context: anytype,
        comptime function: fn (id: Id, context: @TypeOf(context)) void,
    ) Error!bool {
        return counter.register(c.refscope_object_on_deleted, id, context, function);
    }

    /// Registers a typed callback through one of the header's two registration calls.
    fn register(
        counter: Counter,
        comptime registration: anytype,
        id: Id,
        context: anytype,
        comptime function: fn (id: Id, context: @TypeOf(context)) void,
    ) Error!bool {
        const status = registration(counter.handle, id, Trampoline(@TypeOf(context), function).call, context);
        return try check(status) == c.REFSCOPE_REGISTERED;
    }

    pub fn info(counter: Counter, id: Id) Error!c.refscope_info {
        var result: c.refscope_info = undefined;
        _ = try check(c.refscope_object_info(counter.handle, id, &result));
        return result;
    }

    pub fn stats(counter: Counter) Error!c.refscope_stats {
        var result: c.refscope_stats = undefined;
        _ = try check(c.refscope_counter_stats(counter.handle, &result));
        return result;
    }
};

/// The C-callable function behind a typed callback: one per (context type, function), so
/// the same pair always gives the same pointer (as `refscope_object_off_native` compares).
fn Trampoline(comptime Context: type, comptime function: fn (Id, Context) void) type {
    switch (@typeInfo(Context)) {
        .pointer => |pointer| if (pointer.size != .one or pointer.attrs.@"const") {
            @compileError("a callback context is a single-item, mutable pointer, not " ++ @typeName(Context));
        },
        else => @compileError("a callback context is a single-item, mutable pointer, not " ++ @typeName(Context)),
    }
    return struct {
        fn call(id: Id, context: ?*anyopaque) callconv(.c) void {
            function(id, @ptrCast(@alignCast(context.?)));
        }
    };
}

// Every wrapper, used as a dependent would: `zig build test` runs this against the library
// (Zig compiles only what is used, so an untested wrapper would not even be type-checked).
test "every wrapper, against the library: each callback runs exactly once" {
    const Seen = struct {
        out_of_scope: std.atomic.Value(u32) = .init(0),
        erased: std.atomic.Value(u32) = .init(0),
        fn outOfScope(_: Id, seen: *@This()) void {
            _ = seen.out_of_scope.fetchAdd(1, .monotonic);
        }
        fn deleted(_: Id, seen: *@This()) void {
            _ = seen.erased.fetchAdd(1, .monotonic);
        }
    };
    var seen: Seen = .{};
    const counter = try Counter.open();
    const child = try counter.create(64, .{});
    const parent = try counter.create(128, .{ .contains = &.{child} });
    for ([_]Id{ child, parent }) |id| {
        try std.testing.expect(try counter.onOutOfScope(id, &seen, Seen.outOfScope));
        try std.testing.expect(try counter.onDeleted(id, &seen, Seen.deleted));
    }
    try counter.retain(child);
    try counter.releaseBatch(&.{ child, child }); // the parent still holds it
    try counter.submittedAdd(&.{parent});
    try counter.release(parent); // the task's reference keeps it in scope
    const info = try counter.info(parent);
    try std.testing.expectEqual(@as(u64, 128), info.size_bytes);
    try std.testing.expectEqual(@as(u32, 1), info.refs_submitted);
    try std.testing.expectEqual(@as(u64, 2), (try counter.stats()).objects_live);
    try counter.submittedRemove(&.{parent}); // now both go out of scope
    try std.testing.expectError(error.StaleId, counter.release(parent));
    try counter.destroy(); // blocks until the dispatcher ran every callback
    try std.testing.expectEqual(@as(u32, 2), seen.out_of_scope.load(.monotonic));
    try std.testing.expectEqual(@as(u32, 2), seen.erased.load(.monotonic));
}
