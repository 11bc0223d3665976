//! The C ABI: `refscope_*` functions, declared in `native/include/refscope.h`.
//!
//! Every fallible call returns an `int32_t` status: zero or positive on success (see each
//! function), negative on error. Errors leave the counter unchanged. Zig errors are mapped
//! by one exhaustive switch (`statusFromError`), so a new error cannot slip through
//! unmapped; no Zig error, panic or unwinding crosses this boundary for any input a caller
//! can pass, and pointers are checked for NULL.
//!
//! Every export is `pub` (as is `registerResult`) only so that header_test.zig can compare
//! it with its declaration in the header.

const std = @import("std");
const callback = @import("callback.zig");
const counter_module = @import("counter.zig");
const queue_module = @import("queue.zig");
const table = @import("table.zig");
const pin = @import("pin.zig");

const Counter = counter_module.Counter;
const allocator = std.heap.c_allocator;

/// Bumped whenever a signature, struct layout or status value changes.
pub const abi_version: u32 = 4;

/// Status values never change once published; new ones get new numbers.
pub const Status = enum(i32) {
    ok = 0,
    /// Success, and the caller's sink has tokens that no wake will announce: drain it.
    drain = 1,
    /// Not finished: the sink's waker is still running. Let it finish, then call again.
    pending = 2,
    /// Success, and wake-less sinks are owed wakes that the caller relays: take them with
    /// `refscope_relay_take`.
    relay = 4,
    /// Both `drain` and `relay`.
    drain_relay = 5,
    invalid_argument = -1,
    invalid_id = -2,
    stale_id = -3,
    no_reference = -4,
    limit = -5,
    out_of_memory = -6,
    closed = -7,
    wrong_thread = -8,
    system_resources = -9,
    not_owned = -10,
    limit_participants = -11,
    limit_thread = -12,
    limit_counters = -13,

    fn int(status: Status) i32 {
        return @backingInt(status);
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
        error.NotOwned => .not_owned,
        error.ParticipantLimit => .limit_participants,
        error.ThreadLimit => .limit_thread,
        error.CounterLimit => .limit_counters,
    };
}

fn statusFromOutcome(outcome: counter_module.Outcome) i32 {
    return switch (outcome) {
        .ok => Status.ok.int(),
        .drain => Status.drain.int(),
        .relay => Status.relay.int(),
        .drain_relay => Status.drain_relay.int(),
    };
}

const invalid_argument = Status.invalid_argument.int();

/// `refscope_info`: one object, as `refscope_object_info` and snapshots report it.
pub const ObjectInfo = extern struct {
    id: f64,
    size_bytes: u64,
    /// The owning sink, `REFSCOPE_NO_SINK` for native code, `REFSCOPE_OWNER_GONE`.
    owner: u32,
    /// `object_flag_*`.
    flags: u32,
    refs_local: u32,
    refs_submitted: u32,
    refs_borrowed: u32,
    refs_lent: u32,
    refs_lineage: u32,
    contained_in_owned: u32,
    borrowers: u32,
    callbacks_pending: u32,
    deleted_callbacks_pending: u32,
    reserved: u32 = 0,

    fn from(id: f64, info: table.Info) ObjectInfo {
        return .{
            .id = id,
            .size_bytes = info.size_bytes,
            .owner = info.owner,
            .flags = (if (info.freed) object_flag_freed else 0) |
                (if (info.out_of_scope) object_flag_out_of_scope else 0) |
                (if (info.reconstructable) object_flag_reconstructable else 0),
            .refs_local = info.refs_local,
            .refs_submitted = info.refs_submitted,
            .refs_borrowed = info.refs_borrowed,
            .refs_lent = info.refs_lent,
            .refs_lineage = info.refs_lineage,
            .contained_in_owned = info.contained_in_owned,
            .borrowers = info.borrowers,
            .callbacks_pending = info.callbacks_pending,
            .deleted_callbacks_pending = info.deleted_callbacks_pending,
        };
    }
};
pub const object_flag_freed: u32 = 1;
pub const object_flag_out_of_scope: u32 = 2;
pub const object_flag_reconstructable: u32 = 4;
/// `refscope_sink_open` and `refscope_counter_attach` flag: the owner relays wakes to
/// wake-less sinks (`REFSCOPE_RELAY`).
pub const sink_flag_relays: u32 = 1;
/// `refscope_object_create_ex` flag.
pub const create_flag_reconstructable: u32 = 1;

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
    sinks_open: u64,
    tokens_discarded: u64,
    memory_bytes: u64,
    wakers_blocked: u64,
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

pub export fn refscope_abi_version() u32 {
    return abi_version;
}

pub export fn refscope_status_name(status: i32) [*:0]const u8 {
    const known = std.enums.fromInt(Status, status) orelse return "REFSCOPE_E_UNKNOWN";
    return switch (known) {
        .ok => "REFSCOPE_OK",
        .drain => "REFSCOPE_DRAIN",
        .pending => "REFSCOPE_PENDING",
        .relay => "REFSCOPE_RELAY",
        .drain_relay => "REFSCOPE_DRAIN_RELAY",
        .invalid_argument => "REFSCOPE_E_INVALID_ARGUMENT",
        .invalid_id => "REFSCOPE_E_INVALID_ID",
        .stale_id => "REFSCOPE_E_STALE_ID",
        .no_reference => "REFSCOPE_E_NO_REFERENCE",
        .limit => "REFSCOPE_E_LIMIT",
        .out_of_memory => "REFSCOPE_E_OUT_OF_MEMORY",
        .closed => "REFSCOPE_E_CLOSED",
        .wrong_thread => "REFSCOPE_E_WRONG_THREAD",
        .system_resources => "REFSCOPE_E_SYSTEM_RESOURCES",
        .not_owned => "REFSCOPE_E_NOT_OWNED",
        .limit_participants => "REFSCOPE_E_LIMIT_PARTICIPANTS",
        .limit_thread => "REFSCOPE_E_LIMIT_THREAD",
        .limit_counters => "REFSCOPE_E_LIMIT_COUNTERS",
    };
}

pub export fn refscope_status_message(status: i32) [*:0]const u8 {
    const known = std.enums.fromInt(Status, status) orelse return "unknown status";
    return switch (known) {
        .ok => "success",
        .drain => "success; the calling sink has tokens to drain",
        .pending => "not finished: the sink's waker is still running; call again",
        .relay => "success; wake-less sinks are owed wakes for the caller to relay",
        .drain_relay => "success; the calling sink has tokens to drain, and wakes to relay",
        .invalid_argument => "an argument is NULL or outside its domain",
        .invalid_id => "not an object id issued by this counter",
        .stale_id => "the object has been deleted (or, for a new reference, is out of scope and kept only by lineage)",
        .no_reference => "no reference of that kind is held on the object",
        .limit => "a reference count, the object table (2^24 objects), the byte total or the nesting depth (1000) would overflow",
        .out_of_memory => "out of memory",
        .closed => "the counter is closed",
        .wrong_thread => "not allowed on this thread: it would deadlock",
        .system_resources => "the operating system refused a resource",
        .not_owned => "only the object's owner may do this",
        .limit_participants => "the counter has its maximum of 64 participants",
        .limit_thread => "this thread has its maximum of 128 registrations: one per participant it opened, one per counter it opened",
        .limit_counters => "the process has its maximum of 1024 open counters",
    };
}

pub export fn refscope_counter_open(out_counter: ?*?*Counter) i32 {
    const out = out_counter orelse return invalid_argument;
    out.* = null;
    // The dispatcher thread runs this library's code: the host must not unload it.
    if (!pin.pin()) return Status.system_resources.int();
    out.* = Counter.open(allocator) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_counter_key(counter: ?*Counter, out_key: ?*f64) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_key orelse return invalid_argument;
    out.* = c.key;
    return Status.ok.int();
}

pub export fn refscope_counter_attach(
    key: f64,
    wake: ?queue_module.WakeFunction,
    wake_context: ?*anyopaque,
    flags: u32,
    out_counter: ?*?*Counter,
    out_sink: ?*u32,
) i32 {
    const counter = out_counter orelse return invalid_argument;
    const sink = out_sink orelse return invalid_argument;
    counter.* = null;
    if (flags & ~sink_flag_relays != 0) return invalid_argument;
    const relays = flags & sink_flag_relays != 0;
    const attached = Counter.attach(key, wake, wake_context, relays) catch |err| return statusFromError(err).int();
    counter.* = attached.counter;
    sink.* = attached.sink;
    return Status.ok.int();
}

/// If the calling thread exits before `refscope_counter_destroy`, the counter is closed
/// and destroyed for it. For a counter opened by a JS Worker, whose end is the counter's.
pub export fn refscope_counter_destroy_on_thread_exit(counter: ?*Counter) i32 {
    const c = counter orelse return invalid_argument;
    c.destroyOnThreadExit() catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_counter_close(counter: ?*Counter, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    return statusFromOutcome(c.close(caller) catch |err| return statusFromError(err).int());
}

pub export fn refscope_counter_state(counter: ?*Counter) i32 {
    const c = counter orelse return invalid_argument;
    return @backingInt(c.stateGet());
}

pub export fn refscope_counter_destroy(counter: ?*Counter) i32 {
    const c = counter orelse return Status.ok.int();
    c.destroy() catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_counter_stats(counter: ?*Counter, out_stats: ?*CounterStats) i32 {
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
        .sinks_open = stats.sinks_open,
        .tokens_discarded = stats.tokens_discarded,
        .memory_bytes = stats.memory_bytes,
        .wakers_blocked = stats.wakers_blocked,
    };
    return Status.ok.int();
}

pub export fn refscope_counter_snapshot(counter: ?*Counter, start_slot: u32, records: ?[*]ObjectInfo, capacity: u32, out_next_slot: ?*u32) i32 {
    const c = counter orelse return invalid_argument;
    const out = records orelse return invalid_argument;
    const next = out_next_slot orelse return invalid_argument;
    var page: [64]counter_module.Record = undefined;
    var slot = start_slot;
    var written: u32 = 0;
    const capacity_max: u32 = std.math.maxInt(i32);
    const wanted = @min(capacity, capacity_max);
    while (written < wanted) {
        const room = @min(page.len, wanted - written);
        const before = slot;
        const count = c.snapshot(&slot, page[0..room]) catch |err| return statusFromError(err).int();
        for (page[0..count]) |record| {
            out[written] = ObjectInfo.from(record.id, record.info);
            written += 1;
        }
        if (count < room or slot == before) break;
    }
    next.* = slot;
    return @intCast(written);
}

pub export fn refscope_sink_open(counter: ?*Counter, wake: ?queue_module.WakeFunction, wake_context: ?*anyopaque, flags: u32, out_sink: ?*u32) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_sink orelse return invalid_argument;
    if (flags & ~sink_flag_relays != 0) return invalid_argument;
    out.* = c.sinkOpen(wake, wake_context, flags & sink_flag_relays != 0) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_sink_generation(counter: ?*Counter, sink: u32, out_generation: ?*u32) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_generation orelse return invalid_argument;
    out.* = c.sinkGeneration(sink) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

/// Moves the sinks owed a relayed wake into `out_sinks` (room for `REFSCOPE_SINKS_MAX`)
/// and returns how many.
pub export fn refscope_relay_take(counter: ?*Counter, out_sinks: ?[*]u32, capacity: u32) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_sinks orelse return invalid_argument;
    if (capacity < queue_module.sink_count_max) return invalid_argument;
    return @intCast(c.takeRelay(out[0..queue_module.sink_count_max]));
}

pub export fn refscope_sink_release(counter: ?*Counter, sink: u32) i32 {
    const c = counter orelse return invalid_argument;
    return statusFromOutcome(c.sinkRelease(sink) catch |err| return statusFromError(err).int());
}

pub export fn refscope_sink_close(counter: ?*Counter, sink: u32) i32 {
    const c = counter orelse return invalid_argument;
    return switch (c.sinkClose(sink) catch |err| return statusFromError(err).int()) {
        .closed => Status.ok.int(),
        .pending => Status.pending.int(),
    };
}

pub export fn refscope_sink_drain(counter: ?*Counter, sink: u32, tokens: ?[*]u32, capacity: u32) i32 {
    const c = counter orelse return invalid_argument;
    const buffer = tokens orelse return invalid_argument;
    const capacity_max: u32 = std.math.maxInt(i32);
    const count = c.sinkDrain(sink, buffer[0..@min(capacity, capacity_max)]) catch |err|
        return statusFromError(err).int();
    return @intCast(count);
}

pub export fn refscope_sink_pending(counter: ?*Counter, sink: u32) i32 {
    const c = counter orelse return invalid_argument;
    const pending = c.sinkPending(sink) catch |err| return statusFromError(err).int();
    return @intCast(@min(pending, std.math.maxInt(i32)));
}

pub export fn refscope_object_create(counter: ?*Counter, size_bytes: f64, caller: u32, out_id: ?*f64) i32 {
    return refscope_object_create_ex(counter, size_bytes, 0, null, 0, null, 0, caller, out_id);
}

pub export fn refscope_object_create_ex(
    counter: ?*Counter,
    size_bytes: f64,
    flags: u32,
    contains: ?[*]const f64,
    contains_count: u32,
    lineage: ?[*]const f64,
    lineage_count: u32,
    caller: u32,
    out_id: ?*f64,
) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_id orelse return invalid_argument;
    const size = sizeFromDouble(size_bytes) orelse return invalid_argument;
    if (flags & ~create_flag_reconstructable != 0) return invalid_argument;
    out.* = c.create(caller, .{
        .size_bytes = size,
        .reconstructable = flags & create_flag_reconstructable != 0,
        .contains = idsSlice(contains, contains_count) orelse return invalid_argument,
        .lineage = idsSlice(lineage, lineage_count) orelse return invalid_argument,
    }) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_object_retain(counter: ?*Counter, id: f64, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    c.retain(id, caller) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_object_release(counter: ?*Counter, id: f64, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    return statusFromOutcome(c.release(id, caller) catch |err| return statusFromError(err).int());
}

pub export fn refscope_object_release_batch(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    const slice = idsSlice(ids, count) orelse return invalid_argument;
    return statusFromOutcome(c.releaseBatch(slice, caller) catch |err| return statusFromError(err).int());
}

pub export fn refscope_submitted_add(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    const slice = idsSlice(ids, count) orelse return invalid_argument;
    c.submittedAdd(slice, caller) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_submitted_remove(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    const slice = idsSlice(ids, count) orelse return invalid_argument;
    return statusFromOutcome(c.submittedRemove(slice, caller) catch |err| return statusFromError(err).int());
}

pub export fn refscope_lineage_add(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    const slice = idsSlice(ids, count) orelse return invalid_argument;
    c.lineageAdd(slice, caller) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_lineage_remove(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    const slice = idsSlice(ids, count) orelse return invalid_argument;
    return statusFromOutcome(c.lineageRemove(slice, caller) catch |err| return statusFromError(err).int());
}

pub export fn refscope_object_lend(counter: ?*Counter, id: f64, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    c.lend(id, caller) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_object_borrow(counter: ?*Counter, id: f64, lender: u32, lender_generation: u32, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    c.borrowFrom(id, lender, lender_generation, caller) catch |err| return statusFromError(err).int();
    return Status.ok.int();
}

pub export fn refscope_object_free(counter: ?*Counter, id: f64, caller: u32) i32 {
    const c = counter orelse return invalid_argument;
    return statusFromOutcome(c.free(id, caller) catch |err| return statusFromError(err).int());
}

fn kindFrom(kind: u32) ?table.CallbackKind {
    return std.enums.fromInt(table.CallbackKind, kind);
}

pub fn registerResult(registered: bool) i32 {
    return @intFromBool(registered);
}

/// Returns 1 when registered, 0 when refused (it could never run), or an error. Native
/// code registers for the owner.
pub export fn refscope_object_on_out_of_scope(counter: ?*Counter, id: f64, function: ?callback.Function, context: ?*anyopaque) i32 {
    return onNative(counter, id, .out_of_scope, function, context);
}

pub export fn refscope_object_on_deleted(counter: ?*Counter, id: f64, function: ?callback.Function, context: ?*anyopaque) i32 {
    return onNative(counter, id, .deleted, function, context);
}

fn onNative(counter: ?*Counter, id: f64, kind: table.CallbackKind, function: ?callback.Function, context: ?*anyopaque) i32 {
    const c = counter orelse return invalid_argument;
    const f = function orelse return invalid_argument;
    const cb: callback.Callback = .{ .native = .{ .function = f, .context = context } };
    return registerResult(c.register(id, counter_module.sink_none, kind, cb) catch |err| return statusFromError(err).int());
}

/// Removes the first native callback of `kind` equal to (function, context): 1 removed,
/// 0 not found (it already left the table, or never was).
pub export fn refscope_object_off_native(counter: ?*Counter, id: f64, kind: u32, function: ?callback.Function, context: ?*anyopaque) i32 {
    const c = counter orelse return invalid_argument;
    const f = function orelse return invalid_argument;
    const k = kindFrom(kind) orelse return invalid_argument;
    const cb: callback.Callback = .{ .native = .{ .function = f, .context = context } };
    return registerResult(c.unregister(id, counter_module.sink_none, k, cb) catch |err| return statusFromError(err).int());
}

/// Registers delivery of `token` to `sink` (the caller's own sink, which must own the
/// object); results as `refscope_object_on_out_of_scope`.
pub export fn refscope_object_on_sink(counter: ?*Counter, id: f64, sink: u32, kind: u32, token: u32) i32 {
    const c = counter orelse return invalid_argument;
    const k = kindFrom(kind) orelse return invalid_argument;
    const cb: callback.Callback = .{ .sink = .{ .sink = sink, .token = token } };
    return registerResult(c.register(id, sink, k, cb) catch |err| return statusFromError(err).int());
}

pub export fn refscope_object_off_sink(counter: ?*Counter, id: f64, sink: u32, kind: u32, token: u32) i32 {
    const c = counter orelse return invalid_argument;
    const k = kindFrom(kind) orelse return invalid_argument;
    const cb: callback.Callback = .{ .sink = .{ .sink = sink, .token = token } };
    return registerResult(c.unregister(id, sink, k, cb) catch |err| return statusFromError(err).int());
}

/// Copies the tokens of `sink`'s callbacks of `kind` on the object into `tokens` and
/// returns how many there are (possibly more than `capacity`).
pub export fn refscope_object_sink_tokens(counter: ?*Counter, id: f64, sink: u32, kind: u32, tokens: ?[*]u32, capacity: u32) i32 {
    const c = counter orelse return invalid_argument;
    const k = kindFrom(kind) orelse return invalid_argument;
    if (capacity > 0 and tokens == null) return invalid_argument;
    const out: []u32 = if (capacity == 0) &.{} else tokens.?[0..capacity];
    const count = c.sinkTokens(id, sink, k, out) catch |err| return statusFromError(err).int();
    return @intCast(@min(count, std.math.maxInt(i32)));
}

pub export fn refscope_object_info(counter: ?*Counter, id: f64, out_info: ?*ObjectInfo) i32 {
    const c = counter orelse return invalid_argument;
    const out = out_info orelse return invalid_argument;
    out.* = ObjectInfo.from(id, c.info(id) catch |err| return statusFromError(err).int());
    return Status.ok.int();
}

/// Copies the holdings of every sink with references recorded on the object (borrowers,
/// lenders, lineage pins; the owner's local and submitted counts are in its info) and
/// returns how many there are (possibly more than `capacity`).
pub export fn refscope_object_holdings(counter: ?*Counter, id: f64, out_holdings: ?[*]table.Holding, capacity: u32) i32 {
    const c = counter orelse return invalid_argument;
    if (capacity > 0 and out_holdings == null) return invalid_argument;
    const out: []table.Holding = if (capacity == 0) &.{} else out_holdings.?[0..capacity];
    const count = c.holdings(id, out) catch |err| return statusFromError(err).int();
    return @intCast(@min(count, std.math.maxInt(i32)));
}

test {
    _ = @import("pool.zig");
    _ = @import("table.zig");
    _ = @import("table_test.zig");
    _ = @import("queue.zig");
    _ = @import("registry.zig");
    _ = @import("lifecycle.zig");
    _ = @import("counter_test.zig");
    _ = @import("model_test.zig");
    _ = @import("header_test.zig");
}
