//! The C ABI: `refscope_*` functions, declared in `native/include/refscope.h`.
//!
//! Every fallible call returns an `int32_t` status: zero or positive on success (see each
//! function), negative on error. Errors leave the counter unchanged. Zig errors are mapped
//! by one exhaustive switch (`statusFromError`), so a new error cannot slip through
//! unmapped; no Zig error, panic or unwinding crosses this boundary for any input a caller
//! can pass, and pointers are checked for NULL.

const std = @import("std");
const callback = @import("callback.zig");
const counter_module = @import("counter.zig");
const queue_module = @import("queue.zig");
const pin = @import("pin.zig");

const Counter = counter_module.Counter;
const allocator = std.heap.c_allocator;

/// Bumped whenever a signature, struct layout or status value changes.
pub const abi_version: u32 = 1;

/// Status values never change once published; new ones get new numbers.
pub const Status = enum(i32) {
    ok = 0,
    /// Success, and the caller's sink has tokens that no wake will announce: drain it.
    drain = 1,
    invalid_argument = -1,
    invalid_id = -2,
    stale_id = -3,
    no_reference = -4,
    limit = -5,
    out_of_memory = -6,
    closed = -7,
    wrong_thread = -8,
    system_resources = -9,

    fn int(status: Status) i32 {
        return @intFromEnum(status);
    }
};

fn statusFromError(err: counter_module.Error) Status {
    return switch (err) {
        error.InvalidArgument => .invalid_argument,
        error.InvalidId => .invalid_id,
        error.StaleId => .stale_id,
        error.NoReference => .no_reference,
        error.Limit => .limit,
        error.OutOfMemory => .out_of_memory,
        error.Closed => .closed,
        error.WrongThread => .wrong_thread,
        error.SystemResources => .system_resources,
    };
}

fn statusFromOutcome(outcome: counter_module.Outcome) i32 {
    return switch (outcome) {
        .ok => Status.ok.int(),
        .drain => Status.drain.int(),
    };
}

const invalid_argument = Status.invalid_argument.int();

pub const ObjectInfo = extern struct {
    refs_local: u32,
    refs_submitted: u32,
    callbacks_pending: u32,
    /// `object_flag_owned` | `object_flag_freed`.
    flags: u32,
    size_bytes: u64,
};
pub const object_flag_owned: u32 = 1;
pub const object_flag_freed: u32 = 2;

pub const CounterStats = extern struct {
    objects_live: u64,
    bytes_live: u64,
    objects_created: u64,
    callbacks_registered: u64,
    callbacks_released: u64,
    native_callbacks_queued: u64,
    native_callbacks_run: u64,
    sink_tokens_pending: u64,
    wakes_sent: u64,
};

/// Converts a byte size carried as a double; null unless it is an integer in [0, 2^53).
fn sizeFromDouble(size: f64) ?u64 {
    if (!(size >= 0 and size < 9007199254740992.0)) return null;
    const value: u64 = @intFromFloat(size);
    if (@as(f64, @floatFromInt(value)) != size) return null;
    return value;
}

/// A batch argument as a slice; null for a NULL array with a non-zero count.
fn idsSlice(ids: ?[*]const f64, count: u32) ?[]const f64 {
    if (count == 0) return &.{};
    const pointer = ids orelse return null;
    return pointer[0..count];
}

export fn refscope_abi_version() u32 {
    return abi_version;
}

export fn refscope_status_name(status: i32) [*:0]const u8 {
    const known = std.enums.fromInt(Status, status) orelse return "REFSCOPE_E_UNKNOWN";
    return switch (known) {
        .ok => "REFSCOPE_OK",
        .drain => "REFSCOPE_DRAIN",
        .invalid_argument => "REFSCOPE_E_INVALID_ARGUMENT",
        .invalid_id => "REFSCOPE_E_INVALID_ID",
        .stale_id => "REFSCOPE_E_STALE_ID",
        .no_reference => "REFSCOPE_E_NO_REFERENCE",
        .limit => "REFSCOPE_E_LIMIT",
        .out_of_memory => "REFSCOPE_E_OUT_OF_MEMORY",
        .closed => "REFSCOPE_E_CLOSED",
        .wrong_thread => "REFSCOPE_E_WRONG_THREAD",
        .system_resources => "REFSCOPE_E_SYSTEM_RESOURCES",
    };
}

export fn refscope_status_message(status: i32) [*:0]const u8 {
    const known = std.enums.fromInt(Status, status) orelse return "unknown status";
    return switch (known) {
        .ok => "success",
        .drain => "success; the calling sink has tokens to drain",
        .invalid_argument => "an argument is NULL or outside its domain",
        .invalid_id => "not an object id issued by this counter",
        .stale_id => "the object has been deleted",
        .no_reference => "no reference of that kind is held on the object",
        .limit => "a count, the object table or the byte total would overflow",
        .out_of_memory => "out of memory",
        .closed => "the counter is closed",
        .wrong_thread => "not allowed on this thread: it would deadlock",
        .system_resources => "the operating system refused a resource",
    };
}

export fn refscope_counter_open(out_counter: ?*?*Counter) i32 {
    const out = out_counter orelse return invalid_argument;
    out.* = null;
    // The dispatcher thread runs this library's code: the host must not unload it.
    if (!pin.pin()) return Status.system_resources.int();
    out.* = Counter.open(allocator) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

export fn refscope_counter_close(counter: ?*Counter, caller_sink: u32) i32 {
    const c = counter orelse return invalid_argument;
    return statusFromOutcome(c.close(caller_sink) catch |err| return statusFromError(err).int());
}

export fn refscope_counter_state(counter: ?*Counter) i32 {
    const c = counter orelse return invalid_argument;
    return @intFromEnum(c.stateGet());
}

export fn refscope_counter_destroy(counter: ?*Counter) i32 {
    const c = counter orelse return Status.ok.int();
    c.destroy() catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

export fn refscope_counter_stats(counter: ?*Counter, out_stats: ?*CounterStats) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_stats orelse return invalid_argument;
    const stats = c.stats();
    out.* = .{
        .objects_live = stats.objects_live,
        .bytes_live = stats.bytes_live,
        .objects_created = stats.objects_created,
        .callbacks_registered = stats.callbacks_registered,
        .callbacks_released = stats.callbacks_released,
        .native_callbacks_queued = stats.native_callbacks_queued,
        .native_callbacks_run = stats.native_callbacks_run,
        .sink_tokens_pending = stats.sink_tokens_pending,
        .wakes_sent = stats.wakes_sent,
    };
    return Status.ok.int();
}

export fn refscope_sink_open(
    counter: ?*Counter,
    wake: ?queue_module.WakeFunction,
    wake_context: ?*anyopaque,
    out_sink: ?*u32,
) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_sink orelse return invalid_argument;
    out.* = c.sinkOpen(wake, wake_context) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

export fn refscope_sink_drain(counter: ?*Counter, sink: u32, tokens: ?[*]u32, capacity: u32) i32 {
    const c = counter orelse return invalid_argument;
    const buffer = tokens orelse return invalid_argument;
    const capacity_max: u32 = std.math.maxInt(i32);
    const count = c.sinkDrain(sink, buffer[0..@min(capacity, capacity_max)]) catch |err|
        return statusFromError(err).int();
    return @intCast(count);
}

export fn refscope_sink_pending(counter: ?*Counter, sink: u32) i32 {
    const c = counter orelse return invalid_argument;
    const pending = c.sinkPending(sink) catch |err| return statusFromError(err).int();
    return @intCast(@min(pending, std.math.maxInt(i32)));
}

export fn refscope_object_create(counter: ?*Counter, size_bytes: f64, out_id: ?*f64) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_id orelse return invalid_argument;
    const size = sizeFromDouble(size_bytes) orelse return invalid_argument;
    out.* = c.create(size) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

export fn refscope_object_retain(counter: ?*Counter, id: f64) i32 {
    const c = counter orelse return invalid_argument;
    c.retain(id) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

export fn refscope_object_release(counter: ?*Counter, id: f64, caller_sink: u32) i32 {
    const c = counter orelse return invalid_argument;
    return statusFromOutcome(c.release(id, caller_sink) catch |err| return statusFromError(err).int());
}

export fn refscope_object_release_batch(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller_sink: u32) i32 {
    const c = counter orelse return invalid_argument;
    const slice = idsSlice(ids, count) orelse return invalid_argument;
    return statusFromOutcome(c.releaseBatch(slice, caller_sink) catch |err| return statusFromError(err).int());
}

export fn refscope_submitted_add(counter: ?*Counter, ids: ?[*]const f64, count: u32) i32 {
    const c = counter orelse return invalid_argument;
    const slice = idsSlice(ids, count) orelse return invalid_argument;
    c.submittedAdd(slice) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

export fn refscope_submitted_remove(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller_sink: u32) i32 {
    const c = counter orelse return invalid_argument;
    const slice = idsSlice(ids, count) orelse return invalid_argument;
    return statusFromOutcome(c.submittedRemove(slice, caller_sink) catch |err| return statusFromError(err).int());
}

export fn refscope_object_free(counter: ?*Counter, id: f64, caller_sink: u32) i32 {
    const c = counter orelse return invalid_argument;
    return statusFromOutcome(c.free(id, caller_sink) catch |err| return statusFromError(err).int());
}

/// Returns 1 when registered, 0 when refused (object deleted or freed), or an error.
export fn refscope_object_on_out_of_scope(counter: ?*Counter, id: f64, function: ?callback.Function, context: ?*anyopaque) i32 {
    const c = counter orelse return invalid_argument;
    const f = function orelse return invalid_argument;
    const registered = c.register(id, .{ .native = .{ .function = f, .context = context } }) catch |err|
        return statusFromError(err).int();
    return @intFromBool(registered);
}

/// Like `refscope_object_on_out_of_scope`, delivering `token` to `sink` instead.
export fn refscope_object_on_out_of_scope_sink(counter: ?*Counter, id: f64, sink: u32, token: u32) i32 {
    const c = counter orelse return invalid_argument;
    const registered = c.register(id, .{ .sink = .{ .sink = sink, .token = token } }) catch |err|
        return statusFromError(err).int();
    return @intFromBool(registered);
}

export fn refscope_object_info(counter: ?*Counter, id: f64, out_info: ?*ObjectInfo) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_info orelse return invalid_argument;
    const info = c.info(id) catch |err| return statusFromError(err).int();
    out.* = .{
        .refs_local = info.refs_local,
        .refs_submitted = info.refs_submitted,
        .callbacks_pending = info.callbacks_pending,
        .flags = (if (info.owned) object_flag_owned else 0) | (if (info.freed) object_flag_freed else 0),
        .size_bytes = info.size_bytes,
    };
    return Status.ok.int();
}

test {
    _ = @import("callback.zig");
    _ = @import("table.zig");
    _ = @import("queue.zig");
    _ = @import("counter_test.zig");
}
