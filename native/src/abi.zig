//! The C ABI: `refscope_*` functions, declared in `native/include/refscope.h`.
//!
//! Every fallible call returns a value of one result family (status.zig: `Status`, `Hint`,
//! `Registration`, `Removal`, `CounterState`) or a count: negative is an error in every
//! family, and an error leaves the counter unchanged. Zig errors are mapped by one
//! exhaustive switch (`statusFromError`), so a new error cannot slip through unmapped; no
//! Zig error, panic or unwinding crosses this boundary for any input a caller can pass,
//! and pointers are checked for NULL.
//!
//! Every export is `pub` only so that header_test.zig and the bindings generator
//! (native/tools/bindings.zig) can compare and describe it.

const std = @import("std");
const async_module = @import("async.zig");
const callback = @import("callback.zig");
const counter_module = @import("counter.zig");
const queue_module = @import("queue.zig");
const table = @import("table.zig");
const pin = @import("pin.zig");
const status = @import("status.zig");

const Counter = counter_module.Counter;
const allocator = std.heap.c_allocator;

/// Bumped whenever a signature, struct layout or result value changes.
pub const abi_version: u32 = 7;

/// Every fact the C header and the generated TypeScript bindings state, besides the
/// exports: the result families (status.zig), the special sinks, the limits, the flags and
/// the structs.
pub const results = status;
/// `REFSCOPE_NO_SINK`: native code, acting for the owner.
pub const sink_none = table.sink_none;
/// `REFSCOPE_OWNER_GONE`: the owner of an object whose owning sink has closed.
pub const owner_gone = table.sink_gone;
/// `REFSCOPE_SINKS_MAX`.
pub const sinks_max: u32 = queue_module.sink_count_max;
/// `REFSCOPE_ON_*`.
pub const CallbackKind = table.CallbackKind;
/// `refscope_holding`.
pub const Holding = table.Holding;

const Status = status.Status;
const Hint = status.Hint;
const Registration = status.Registration;
const Removal = status.Removal;

pub fn statusFromError(err: counter_module.Error) Status {
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
        error.SinkLimit => .limit_sinks,
        error.ThreadLimit => .limit_thread,
        error.CounterLimit => .limit_counters,
    };
}

/// The error of a Zig error, as a value of the calling function's family (`Result`):
/// errors are negative in every family.
fn failure(comptime Result: type, err: counter_module.Error) Result {
    return @fromBackingInt(@backingInt(statusFromError(err)));
}

fn hintFromOutcome(outcome: counter_module.Outcome) Hint {
    return switch (outcome) {
        .ok => .none,
        .drain => .drain,
        .relay => .relay,
        .drain_relay => .drain_relay,
    };
}

fn stateFromCounter(state: counter_module.State) status.CounterState {
    return switch (state) {
        .open => .open,
        .closing => .closing,
        .closed => .closed,
    };
}

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
/// wake-less sinks (`REFSCOPE_HINT_RELAY`).
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
    /// Room for new figures without a layout change; zero.
    reserved: [3]u64 = @splat(0),
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

/// The name of any family's value ("REFSCOPE_E_STALE_ID"); a static string, never NULL.
pub export fn refscope_status_name(value: i32) [*:0]const u8 {
    return status.name(value);
}

/// A sentence for any family's value; a static string, never NULL.
pub export fn refscope_status_message(value: i32) [*:0]const u8 {
    return status.message(value);
}

pub export fn refscope_counter_open(out_counter: ?*?*Counter) Status {
    const out = out_counter orelse return .invalid_argument;
    out.* = null;
    // The dispatcher thread runs this library's code: the host must not unload it.
    if (!pin.pin()) return .system_resources;
    out.* = Counter.open(allocator) catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_counter_key(counter: ?*Counter, out_key: ?*f64) Status {
    const opened = counter orelse return .invalid_argument;
    const out = out_key orelse return .invalid_argument;
    out.* = opened.key;
    return .ok;
}

pub export fn refscope_counter_attach(
    key: f64,
    wake: ?queue_module.WakeFunction,
    wake_context: ?*anyopaque,
    flags: u32,
    out_counter: ?*?*Counter,
    out_sink: ?*u32,
) Status {
    const counter = out_counter orelse return .invalid_argument;
    const sink = out_sink orelse return .invalid_argument;
    counter.* = null;
    if (flags & ~sink_flag_relays != 0) return .invalid_argument;
    const relays = flags & sink_flag_relays != 0;
    const attached = Counter.attach(key, wake, wake_context, relays) catch |err| return statusFromError(err);
    counter.* = attached.counter;
    sink.* = attached.sink;
    return .ok;
}

/// If the calling thread exits before `refscope_counter_destroy`, the counter is closed
/// and destroyed for it. For a counter opened by a JS Worker, whose end is the counter's.
pub export fn refscope_counter_destroy_on_thread_exit(counter: ?*Counter) Status {
    const opened = counter orelse return .invalid_argument;
    opened.destroyOnThreadExit() catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_counter_close(counter: ?*Counter, caller: u32) Hint {
    const opened = counter orelse return failure(Hint, error.InvalidArgument);
    return hintFromOutcome(opened.close(caller) catch |err| return failure(Hint, err));
}

pub export fn refscope_counter_state(counter: ?*Counter) status.CounterState {
    const opened = counter orelse return failure(status.CounterState, error.InvalidArgument);
    return stateFromCounter(opened.stateGet());
}

pub export fn refscope_counter_destroy(counter: ?*Counter) Status {
    const opened = counter orelse return .ok;
    opened.destroy() catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_counter_stats(counter: ?*Counter, out_stats: ?*CounterStats) Status {
    const opened = counter orelse return .invalid_argument;
    const out = out_stats orelse return .invalid_argument;
    const stats = opened.stats();
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
    return .ok;
}

/// Returns how many records it wrote, or an error.
pub export fn refscope_counter_snapshot(counter: ?*Counter, start_slot: u32, records: ?[*]ObjectInfo, capacity: u32, out_next_slot: ?*u32) i32 {
    const opened = counter orelse return errorCount(error.InvalidArgument);
    const out = records orelse return errorCount(error.InvalidArgument);
    const next = out_next_slot orelse return errorCount(error.InvalidArgument);
    var page: [64]counter_module.Record = undefined;
    var slot = start_slot;
    var written: u32 = 0;
    const wanted = @min(capacity, count_max);
    while (written < wanted) {
        const room = @min(page.len, wanted - written);
        const before = slot;
        const count = opened.snapshot(&slot, page[0..room]) catch |err| return errorCount(err);
        for (page[0..count]) |record| {
            out[written] = ObjectInfo.from(record.id, record.info);
            written += 1;
        }
        if (count < room or slot == before) break;
    }
    next.* = slot;
    return @intCast(written);
}

/// The largest count a call returns: counts share their `int32_t` with negative errors.
const count_max: u32 = std.math.maxInt(i32);

/// An error, as the result of a call that returns a count.
fn errorCount(err: counter_module.Error) i32 {
    return @backingInt(statusFromError(err));
}

pub export fn refscope_sink_open(counter: ?*Counter, wake: ?queue_module.WakeFunction, wake_context: ?*anyopaque, flags: u32, out_sink: ?*u32) Status {
    const opened = counter orelse return .invalid_argument;
    const out = out_sink orelse return .invalid_argument;
    if (flags & ~sink_flag_relays != 0) return .invalid_argument;
    out.* = opened.sinkOpen(wake, wake_context, flags & sink_flag_relays != 0) catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_sink_generation(counter: ?*Counter, sink: u32, out_generation: ?*u32) Status {
    const opened = counter orelse return .invalid_argument;
    const out = out_generation orelse return .invalid_argument;
    out.* = opened.sinkGeneration(sink) catch |err| return statusFromError(err);
    return .ok;
}

/// Moves the sinks owed a relayed wake into `out_sinks` (room for `REFSCOPE_SINKS_MAX`)
/// and returns how many.
pub export fn refscope_relay_take(counter: ?*Counter, out_sinks: ?[*]u32, capacity: u32) i32 {
    const opened = counter orelse return errorCount(error.InvalidArgument);
    const out = out_sinks orelse return errorCount(error.InvalidArgument);
    if (capacity < queue_module.sink_count_max) return errorCount(error.InvalidArgument);
    return @intCast(opened.takeRelay(out[0..queue_module.sink_count_max]));
}

pub export fn refscope_sink_release(counter: ?*Counter, sink: u32) Hint {
    const opened = counter orelse return failure(Hint, error.InvalidArgument);
    return hintFromOutcome(opened.sinkRelease(sink) catch |err| return failure(Hint, err));
}

pub export fn refscope_sink_close(counter: ?*Counter, sink: u32) Status {
    const opened = counter orelse return .invalid_argument;
    return switch (opened.sinkClose(sink) catch |err| return statusFromError(err)) {
        .closed => .ok,
        .pending => .pending,
    };
}

/// Returns how many tokens it copied, or an error.
pub export fn refscope_sink_drain(counter: ?*Counter, sink: u32, tokens: ?[*]u32, capacity: u32) i32 {
    const opened = counter orelse return errorCount(error.InvalidArgument);
    const buffer = tokens orelse return errorCount(error.InvalidArgument);
    const count = opened.sinkDrain(sink, buffer[0..@min(capacity, count_max)]) catch |err| return errorCount(err);
    return @intCast(count);
}

/// Returns how many tokens wait in the sink, or an error.
pub export fn refscope_sink_pending(counter: ?*Counter, sink: u32) i32 {
    const opened = counter orelse return errorCount(error.InvalidArgument);
    const pending = opened.sinkPending(sink) catch |err| return errorCount(err);
    return @intCast(@min(pending, count_max));
}

pub export fn refscope_async_open(
    send: ?async_module.SendFunction,
    handle_size: u32,
    out_async: ?*?*async_module.Async,
    out_handle: ?*?*anyopaque,
) Status {
    if (out_async) |out| out.* = null;
    if (out_handle) |out| out.* = null;
    const out = out_async orelse return .invalid_argument;
    const out_h = out_handle orelse return .invalid_argument;
    const function = send orelse return .invalid_argument;
    const created = async_module.Async.create(allocator, function, handle_size) catch |err| return switch (err) {
        error.InvalidArgument => .invalid_argument,
        error.OutOfMemory => .out_of_memory,
    };
    out.* = created;
    out_h.* = created.handle();
    return .ok;
}

/// A `refscope_wake_fn` whose context is a `refscope_async`.
pub export fn refscope_async_wake(context: ?*anyopaque) void {
    async_module.Async.wake(context);
}

pub export fn refscope_async_free(async_wake: ?*async_module.Async) void {
    (async_wake orelse return).destroy(allocator);
}

pub export fn refscope_object_create(counter: ?*Counter, size_bytes: f64, caller: u32, out_id: ?*f64) Status {
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
) Status {
    const opened = counter orelse return .invalid_argument;
    const out = out_id orelse return .invalid_argument;
    const size = sizeFromDouble(size_bytes) orelse return .invalid_argument;
    if (flags & ~create_flag_reconstructable != 0) return .invalid_argument;
    out.* = opened.create(caller, .{
        .size_bytes = size,
        .reconstructable = flags & create_flag_reconstructable != 0,
        .contains = idsSlice(contains, contains_count) orelse return .invalid_argument,
        .lineage = idsSlice(lineage, lineage_count) orelse return .invalid_argument,
    }) catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_object_retain(counter: ?*Counter, id: f64, caller: u32) Status {
    const opened = counter orelse return .invalid_argument;
    opened.retain(id, caller) catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_object_release(counter: ?*Counter, id: f64, caller: u32) Hint {
    const opened = counter orelse return failure(Hint, error.InvalidArgument);
    return hintFromOutcome(opened.release(id, caller) catch |err| return failure(Hint, err));
}

/// A counter passed as a double (the `_n` calls): its address, which must be an integer
/// below 2^53 (every user-space address is) and aligned as a counter is. Null otherwise.
fn counterFromDouble(address: f64) ?*Counter {
    const value = sizeFromDouble(address) orelse return null;
    if (value == 0 or value % @alignOf(Counter) != 0) return null;
    return @ptrFromInt(@as(usize, @intCast(value)));
}

/// A sink number passed as a double (the `_n` calls): an integer that fits in 32 bits
/// (`REFSCOPE_NO_SINK` included), or else `REFSCOPE_SINKS_MAX`, which no sink is: the call
/// refuses it as an unknown caller, as it refuses any sink that is not open.
fn sinkFromDouble(sink: f64) u32 {
    const value = sizeFromDouble(sink) orelse return sinks_max;
    return std.math.cast(u32, value) orelse sinks_max;
}

/// `refscope_object_create` with every argument a double, for a runtime whose FFI passes a
/// pointer or a u32 slowly (Node's `node:ffi`): the new object's id, or a negative status.
pub export fn refscope_object_create_n(counter: f64, size_bytes: f64, caller: f64) f64 {
    var id: f64 = 0;
    const result = refscope_object_create(counterFromDouble(counter), size_bytes, sinkFromDouble(caller), &id);
    return if (result == .ok) id else @floatFromInt(@backingInt(result));
}

/// `refscope_object_retain` with every argument a double (see `refscope_object_create_n`).
pub export fn refscope_object_retain_n(counter: f64, id: f64, caller: f64) Status {
    return refscope_object_retain(counterFromDouble(counter), id, sinkFromDouble(caller));
}

/// `refscope_object_release` with every argument a double (see `refscope_object_create_n`).
pub export fn refscope_object_release_n(counter: f64, id: f64, caller: f64) Hint {
    return refscope_object_release(counterFromDouble(counter), id, sinkFromDouble(caller));
}

pub export fn refscope_object_release_batch(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) Hint {
    const opened = counter orelse return failure(Hint, error.InvalidArgument);
    const slice = idsSlice(ids, count) orelse return failure(Hint, error.InvalidArgument);
    return hintFromOutcome(opened.releaseBatch(slice, caller) catch |err| return failure(Hint, err));
}

pub export fn refscope_submitted_add(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) Status {
    const opened = counter orelse return .invalid_argument;
    const slice = idsSlice(ids, count) orelse return .invalid_argument;
    opened.submittedAdd(slice, caller) catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_submitted_remove(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) Hint {
    const opened = counter orelse return failure(Hint, error.InvalidArgument);
    const slice = idsSlice(ids, count) orelse return failure(Hint, error.InvalidArgument);
    return hintFromOutcome(opened.submittedRemove(slice, caller) catch |err| return failure(Hint, err));
}

pub export fn refscope_lineage_add(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) Status {
    const opened = counter orelse return .invalid_argument;
    const slice = idsSlice(ids, count) orelse return .invalid_argument;
    opened.lineageAdd(slice, caller) catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_lineage_remove(counter: ?*Counter, ids: ?[*]const f64, count: u32, caller: u32) Hint {
    const opened = counter orelse return failure(Hint, error.InvalidArgument);
    const slice = idsSlice(ids, count) orelse return failure(Hint, error.InvalidArgument);
    return hintFromOutcome(opened.lineageRemove(slice, caller) catch |err| return failure(Hint, err));
}

pub export fn refscope_object_lend(counter: ?*Counter, id: f64, caller: u32) Status {
    const opened = counter orelse return .invalid_argument;
    opened.lend(id, caller) catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_object_borrow(counter: ?*Counter, id: f64, lender: u32, lender_generation: u32, caller: u32) Status {
    const opened = counter orelse return .invalid_argument;
    opened.borrowFrom(id, lender, lender_generation, caller) catch |err| return statusFromError(err);
    return .ok;
}

pub export fn refscope_object_free(counter: ?*Counter, id: f64, caller: u32) Hint {
    const opened = counter orelse return failure(Hint, error.InvalidArgument);
    return hintFromOutcome(opened.free(id, caller) catch |err| return failure(Hint, err));
}

fn kindFrom(kind: u32) ?table.CallbackKind {
    return std.enums.fromInt(table.CallbackKind, kind);
}

/// Native code registers for the owner.
pub export fn refscope_object_on_out_of_scope(counter: ?*Counter, id: f64, function: ?callback.Function, context: ?*anyopaque) Registration {
    return onNative(counter, id, .out_of_scope, function, context);
}

pub export fn refscope_object_on_deleted(counter: ?*Counter, id: f64, function: ?callback.Function, context: ?*anyopaque) Registration {
    return onNative(counter, id, .deleted, function, context);
}

fn onNative(counter: ?*Counter, id: f64, kind: table.CallbackKind, function: ?callback.Function, context: ?*anyopaque) Registration {
    const opened = counter orelse return failure(Registration, error.InvalidArgument);
    const native_function = function orelse return failure(Registration, error.InvalidArgument);
    const registration: callback.Callback = .{ .native = .{ .function = native_function, .context = context } };
    return .from(opened.register(id, counter_module.sink_none, kind, registration) catch |err| return failure(Registration, err));
}

/// Removes the first native callback of `kind` equal to (function, context).
pub export fn refscope_object_off_native(counter: ?*Counter, id: f64, kind: u32, function: ?callback.Function, context: ?*anyopaque) Removal {
    const opened = counter orelse return failure(Removal, error.InvalidArgument);
    const native_function = function orelse return failure(Removal, error.InvalidArgument);
    const callback_kind = kindFrom(kind) orelse return failure(Removal, error.InvalidArgument);
    const registration: callback.Callback = .{ .native = .{ .function = native_function, .context = context } };
    return .from(opened.unregister(id, counter_module.sink_none, callback_kind, registration) catch |err| return failure(Removal, err));
}

/// Registers delivery of `token` to `sink` (the caller's own sink, which must own the
/// object).
pub export fn refscope_object_on_sink(counter: ?*Counter, id: f64, sink: u32, kind: u32, token: u32) Registration {
    const opened = counter orelse return failure(Registration, error.InvalidArgument);
    const callback_kind = kindFrom(kind) orelse return failure(Registration, error.InvalidArgument);
    const registration: callback.Callback = .{ .sink = .{ .sink = sink, .token = token } };
    return .from(opened.register(id, sink, callback_kind, registration) catch |err| return failure(Registration, err));
}

pub export fn refscope_object_off_sink(counter: ?*Counter, id: f64, sink: u32, kind: u32, token: u32) Removal {
    const opened = counter orelse return failure(Removal, error.InvalidArgument);
    const callback_kind = kindFrom(kind) orelse return failure(Removal, error.InvalidArgument);
    const registration: callback.Callback = .{ .sink = .{ .sink = sink, .token = token } };
    return .from(opened.unregister(id, sink, callback_kind, registration) catch |err| return failure(Removal, err));
}

/// Copies the tokens of `sink`'s callbacks of `kind` on the object into `tokens` and
/// returns how many there are (possibly more than `capacity`).
pub export fn refscope_object_sink_tokens(counter: ?*Counter, id: f64, sink: u32, kind: u32, tokens: ?[*]u32, capacity: u32) i32 {
    const opened = counter orelse return errorCount(error.InvalidArgument);
    const callback_kind = kindFrom(kind) orelse return errorCount(error.InvalidArgument);
    if (capacity > 0 and tokens == null) return errorCount(error.InvalidArgument);
    const out: []u32 = if (capacity == 0) &.{} else tokens.?[0..capacity];
    const count = opened.sinkTokens(id, sink, callback_kind, out) catch |err| return errorCount(err);
    return @intCast(@min(count, count_max));
}

pub export fn refscope_object_info(counter: ?*Counter, id: f64, out_info: ?*ObjectInfo) Status {
    const opened = counter orelse return .invalid_argument;
    const out = out_info orelse return .invalid_argument;
    out.* = ObjectInfo.from(id, opened.info(id) catch |err| return statusFromError(err));
    return .ok;
}

/// Copies the holdings of every sink with references recorded on the object (borrowers,
/// lenders, lineage pins; the owner's local and submitted counts are in its info) and
/// returns how many there are (possibly more than `capacity`).
pub export fn refscope_object_holdings(counter: ?*Counter, id: f64, out_holdings: ?[*]table.Holding, capacity: u32) i32 {
    const opened = counter orelse return errorCount(error.InvalidArgument);
    if (capacity > 0 and out_holdings == null) return errorCount(error.InvalidArgument);
    const out: []table.Holding = if (capacity == 0) &.{} else out_holdings.?[0..capacity];
    const count = opened.holdings(id, out) catch |err| return errorCount(err);
    return @intCast(@min(count, count_max));
}

test {
    _ = @import("abi_model_test.zig");
    _ = @import("alloc_test.zig");
    _ = @import("async.zig");
    _ = @import("pool.zig");
    _ = @import("table.zig");
    _ = @import("table_test.zig");
    _ = @import("queue.zig");
    _ = @import("registry.zig");
    _ = @import("lifecycle.zig");
    _ = @import("counter_test.zig");
    _ = @import("model_test.zig");
    _ = @import("stress_test.zig");
    _ = @import("header_test.zig");
    _ = @import("status.zig");
}
