//! The model test at the C ABI (issue 14): model_test.zig's run, with every call made
//! through the `refscope_*` exports on a real counter, misuse included.
//!
//! The subject opens a counter (its dispatcher thread runs) and three wake-less sinks, the
//! model's sinks 0, 1 and 2; native code's registrations are native callbacks. Besides the
//! model run's own checks after every step (outcomes, info, holdings, live counts), it
//! checks what only the ABI shows:
//!   - each sink's tokens, drained after every step, are the model's for that sink, in
//!     order, and a mutation's hint says "drain" exactly when it sent the caller's sink
//!     tokens;
//!   - the native callbacks the step released run on the dispatcher thread, each once,
//!     with their object's id, in the model's order, and no others;
//!   - now and then, a paged snapshot and every sink's registered tokens agree with the
//!     model;
//!   - a misuse step (a NULL pointer, an unknown sink or callback kind, a size or flag out
//!     of range, a lender's wrong generation...) fails with its error, and the check that
//!     follows finds the table unchanged.
//!
//! "ABI model fuzz" is the coverage-guided form (`zig build fuzz --fuzz`); `zig build test`
//! replays its corpus. The seeded test takes model_test.zig's environment variables.

const std = @import("std");
const abi = @import("abi.zig");
const counter_module = @import("counter.zig");
const model_test = @import("model_test.zig");
const status = @import("status.zig");
const sync = @import("sync.zig");
const table = @import("table.zig");
const test_support = @import("testing.zig");
const testing = std.testing;

const Counter = counter_module.Counter;
const Failure = model_test.Failure;
const Fired = model_test.Fired;
const Count = model_test.Count;
const Direction = model_test.Direction;
const Id = table.Id;
const Sink = table.Sink;
const Info = table.Info;
const Holding = table.Holding;
const CallbackKind = table.CallbackKind;
const sink_none = table.sink_none;
const Deadline = test_support.Deadline;

/// The model's sinks.
const sink_count = 3;

/// The native callbacks' record: the dispatcher thread appends, the test thread waits for
/// and takes. One run at a time uses it (the test runner runs tests one after another).
const NativeLog = struct {
    mutex: sync.Mutex = .{},
    condition: sync.Condition = .{},
    entries: [4096]Fired = undefined,
    len: usize = 0,
    overflowed: bool = false,

    fn append(log: *NativeLog, fired: Fired) void {
        log.mutex.lock();
        defer log.mutex.unlock();
        if (log.len == log.entries.len) {
            log.overflowed = true;
        } else {
            log.entries[log.len] = fired;
            log.len += 1;
        }
        log.condition.broadcast();
    }

    /// Waits, at most `timeout_ns`, until `count` entries are in; returns how many are.
    fn waitFor(log: *NativeLog, count: usize, timeout_ns: u64) usize {
        const deadline: Deadline = .fromNow(timeout_ns);
        log.mutex.lock();
        defer log.mutex.unlock();
        while (log.len < count) {
            const remaining_ns = deadline.remainingNs();
            if (remaining_ns == 0) break;
            log.condition.timedWait(&log.mutex, remaining_ns) catch {};
        }
        return log.len;
    }

    fn reset(log: *NativeLog) void {
        log.mutex.lock();
        defer log.mutex.unlock();
        log.len = 0;
        log.overflowed = false;
    }
};

var native_log: NativeLog = .{};

/// Every native callback of the run: its context is the model's label.
fn onNative(id: f64, context: ?*anyopaque) callconv(.c) void {
    native_log.append(.{ .label = @intCast(@intFromPtr(context)), .sink = sink_none, .object_id = id });
}

fn labelContext(label: u32) ?*anyopaque {
    return @ptrFromInt(label);
}

/// A negative value of any result family, as the error it stands for.
fn failureOf(value: i32) Failure {
    inline for (@typeInfo(Failure).error_set.error_names.?) |error_name| {
        const err = @field(Failure, error_name);
        if (@backingInt(abi.statusFromError(err)) == value) return err;
    }
    std.debug.panic("the ABI returned {d}, which is no error", .{value});
}

fn statusResult(result: status.Status) Failure!void {
    const value = @backingInt(result);
    if (value < 0) return failureOf(value);
    if (result != .ok) std.debug.panic("the ABI returned {d} for a call that only succeeds or fails", .{value});
}

fn countResult(value: i32) Failure!usize {
    if (value < 0) return failureOf(value);
    return @intCast(value);
}

fn registrationResult(result: status.Registration) Failure!bool {
    return switch (result) {
        .registered => true,
        .refused => false,
        _ => failureOf(@backingInt(result)),
    };
}

fn removalResult(result: status.Removal) Failure!bool {
    return switch (result) {
        .removed => true,
        .not_removed => false,
        _ => failureOf(@backingInt(result)),
    };
}

fn kindValue(kind: CallbackKind) u32 {
    return @backingInt(kind);
}

const AbiSubject = struct {
    counter: *Counter,
    /// The last hint a mutation returned in this step, and its caller.
    hint: ?struct { caller: Sink, value: status.Hint } = null,
    /// Native callbacks the model released so far.
    native_total: u64 = 0,
    misuses: u64 = 0,
    /// Plain creates, retains and releases alternate between the pointer form and the
    /// all-doubles one (`_n`, Node's): both must act alike.
    numeric: bool = false,

    pub const name = "ABI model test";
    pub const misuse_weight = 8;

    /// The counter is opened as `refscope_counter_open` does but for pinning the library
    /// (a test program is no library), with the test's allocator, which reports leaks.
    pub fn init(allocator: std.mem.Allocator) !AbiSubject {
        native_log.reset();
        const counter = try Counter.open(allocator);
        errdefer _ = abi.refscope_counter_destroy(counter);
        // The dispatcher gives memory back as soon as a shard empties, while the run goes
        // on: stale ids must stay stale.
        counter.table.trim_min = 0;
        counter.trim_delay_ns = 0;
        for (0..sink_count) |expected| {
            var sink: u32 = undefined;
            try statusResult(abi.refscope_sink_open(counter, null, null, 0, &sink));
            try testing.expectEqual(@as(u32, @intCast(expected)), sink);
        }
        return .{ .counter = counter };
    }

    /// Closes the sinks and destroys the counter, which deletes what is left (their
    /// callbacks run or are dropped with the sinks).
    pub fn deinit(subject: *AbiSubject) void {
        for (0..sink_count) |sink| {
            const result = abi.refscope_sink_close(subject.counter, @intCast(sink));
            if (result != .ok) std.debug.panic("closing sink {d}: {d}", .{ sink, @backingInt(result) });
        }
        const result = abi.refscope_counter_destroy(subject.counter);
        if (result != .ok) std.debug.panic("destroying the counter: {d}", .{@backingInt(result)});
    }

    fn hinted(subject: *AbiSubject, caller: Sink, result: status.Hint) Failure!void {
        const value = @backingInt(result);
        if (value < 0) return failureOf(value);
        subject.hint = .{ .caller = caller, .value = result };
    }

    pub fn create(subject: *AbiSubject, options: table.CreateOptions) Failure!Id {
        var id: f64 = undefined;
        const size: f64 = @floatFromInt(options.size_bytes);
        const plain = !options.reconstructable and options.contains.len == 0 and options.lineage.len == 0;
        if (plain and subject.alternate()) {
            const result = abi.refscope_object_create_n(subject.address(), size, @floatFromInt(options.owner));
            if (result < 0) return failureOf(@intFromFloat(result));
            id = result;
        } else if (plain) {
            try statusResult(abi.refscope_object_create(subject.counter, size, options.owner, &id));
        } else {
            const flags: u32 = if (options.reconstructable) abi.create_flag_reconstructable else 0;
            try statusResult(abi.refscope_object_create_ex(
                subject.counter,
                size,
                flags,
                options.contains.ptr,
                @intCast(options.contains.len),
                options.lineage.ptr,
                @intCast(options.lineage.len),
                options.owner,
                &id,
            ));
        }
        return id;
    }

    pub fn retain(subject: *AbiSubject, id: Id, caller: Sink) Failure!void {
        if (subject.alternate()) return statusResult(abi.refscope_object_retain_n(subject.address(), id, @floatFromInt(caller)));
        return statusResult(abi.refscope_object_retain(subject.counter, id, caller));
    }

    pub fn release(subject: *AbiSubject, id: Id, caller: Sink) Failure!void {
        if (subject.alternate()) return subject.hinted(caller, abi.refscope_object_release_n(subject.address(), id, @floatFromInt(caller)));
        return subject.hinted(caller, abi.refscope_object_release(subject.counter, id, caller));
    }

    /// Whether this call takes the `_n` form: every other one.
    fn alternate(subject: *AbiSubject) bool {
        subject.numeric = !subject.numeric;
        return subject.numeric;
    }

    /// The counter as the `_n` calls take it.
    fn address(subject: *const AbiSubject) f64 {
        return @floatFromInt(@intFromPtr(subject.counter));
    }

    pub fn batch(subject: *AbiSubject, kind: Count, direction: Direction, ids: []const Id, caller: Sink) Failure!void {
        const counter = subject.counter;
        const count: u32 = @intCast(ids.len);
        return switch (kind) {
            .local => subject.hinted(caller, abi.refscope_object_release_batch(counter, ids.ptr, count, caller)),
            .submitted => switch (direction) {
                .add => statusResult(abi.refscope_submitted_add(counter, ids.ptr, count, caller)),
                .remove => subject.hinted(caller, abi.refscope_submitted_remove(counter, ids.ptr, count, caller)),
            },
            .lineage => switch (direction) {
                .add => statusResult(abi.refscope_lineage_add(counter, ids.ptr, count, caller)),
                .remove => subject.hinted(caller, abi.refscope_lineage_remove(counter, ids.ptr, count, caller)),
            },
            .lent => unreachable,
        };
    }

    pub fn lend(subject: *AbiSubject, id: Id, caller: Sink) Failure!void {
        return statusResult(abi.refscope_object_lend(subject.counter, id, caller));
    }

    /// With the lender's current generation (`misuse` tries others).
    pub fn borrow(subject: *AbiSubject, id: Id, lender: Sink, caller: Sink) Failure!void {
        const generation = subject.generationOf(lender);
        return statusResult(abi.refscope_object_borrow(subject.counter, id, lender, generation, caller));
    }

    fn generationOf(subject: *AbiSubject, lender: Sink) u32 {
        if (lender == sink_none) return 0;
        var generation: u32 = undefined;
        const result = abi.refscope_sink_generation(subject.counter, lender, &generation);
        if (result != .ok) std.debug.panic("the generation of sink {d}: {d}", .{ lender, @backingInt(result) });
        return generation;
    }

    pub fn free(subject: *AbiSubject, id: Id, caller: Sink) Failure!void {
        return subject.hinted(caller, abi.refscope_object_free(subject.counter, id, caller));
    }

    /// Native code registers native callbacks; a sink, its own tokens.
    pub fn register(subject: *AbiSubject, id: Id, caller: Sink, kind: CallbackKind, label: u32) Failure!bool {
        const counter = subject.counter;
        if (caller != sink_none) return registrationResult(abi.refscope_object_on_sink(counter, id, caller, kindValue(kind), label));
        return registrationResult(switch (kind) {
            .out_of_scope => abi.refscope_object_on_out_of_scope(counter, id, onNative, labelContext(label)),
            .deleted => abi.refscope_object_on_deleted(counter, id, onNative, labelContext(label)),
        });
    }

    pub fn unregister(subject: *AbiSubject, id: Id, caller: Sink, kind: CallbackKind, label: u32) Failure!bool {
        const counter = subject.counter;
        if (caller != sink_none) return removalResult(abi.refscope_object_off_sink(counter, id, caller, kindValue(kind), label));
        return removalResult(abi.refscope_object_off_native(counter, id, kindValue(kind), onNative, labelContext(label)));
    }

    pub fn info(subject: *AbiSubject, id: Id) Failure!Info {
        var record: abi.ObjectInfo = undefined;
        try statusResult(abi.refscope_object_info(subject.counter, id, &record));
        if (@as(u64, @bitCast(record.id)) != @as(u64, @bitCast(id))) std.debug.panic("info of {d} says id {d}", .{ id, record.id });
        return infoOf(record);
    }

    fn infoOf(record: abi.ObjectInfo) Info {
        return .{
            .owner = record.owner,
            .refs_local = record.refs_local,
            .refs_submitted = record.refs_submitted,
            .refs_borrowed = record.refs_borrowed,
            .refs_lent = record.refs_lent,
            .refs_lineage = record.refs_lineage,
            .contained_in_owned = record.contained_in_owned,
            .borrowers = record.borrowers,
            .callbacks_pending = record.callbacks_pending,
            .deleted_callbacks_pending = record.deleted_callbacks_pending,
            .freed = record.flags & abi.object_flag_freed != 0,
            .out_of_scope = record.flags & abi.object_flag_out_of_scope != 0,
            .reconstructable = record.flags & abi.object_flag_reconstructable != 0,
            .size_bytes = record.size_bytes,
        };
    }

    pub fn holdings(subject: *AbiSubject, id: Id, out: []Holding) Failure!usize {
        return countResult(abi.refscope_object_holdings(subject.counter, id, out.ptr, @intCast(out.len)));
    }

    fn stats(subject: *AbiSubject) abi.CounterStats {
        var figures: abi.CounterStats = undefined;
        const result = abi.refscope_counter_stats(subject.counter, &figures);
        if (result != .ok) std.debug.panic("stats: {d}", .{@backingInt(result)});
        return figures;
    }

    pub fn objectsLive(subject: *AbiSubject) u64 {
        return subject.stats().objects_live;
    }

    pub fn bytesLive(subject: *AbiSubject) u64 {
        return subject.stats().bytes_live;
    }

    /// Each sink's tokens, the hint, and the native callbacks, against what the model
    /// released in the step.
    pub fn checkFired(subject: *AbiSubject, run: anytype, expected: []const Fired) !void {
        defer subject.hint = null;
        for (0..sink_count) |sink_index| {
            const sink: Sink = @intCast(sink_index);
            var tokens: [64]u32 = undefined;
            var seen: usize = 0;
            var wanted: Filter = .{ .items = expected, .sink = sink };
            while (true) {
                const count = try countResult(abi.refscope_sink_drain(subject.counter, sink, &tokens, tokens.len));
                if (count == 0) break;
                for (tokens[0..count]) |token| {
                    const next = wanted.next() orelse return run.mismatch("sink {d} got token {d}, the model nothing more", .{ sink, token });
                    if (next.label != token) return run.mismatch("sink {d} got token #{d} {d}, the model {d} (object {d})", .{ sink, seen, token, next.label, next.object_id });
                    seen += 1;
                }
            }
            if (wanted.next()) |missing| return run.mismatch("sink {d} got {d} tokens, the model more (first missing: {d}, object {d})", .{ sink, seen, missing.label, missing.object_id });
            if (subject.hint) |hint| {
                if (hint.caller == sink) {
                    const drain = @backingInt(hint.value) & status.hint_drain_bit != 0;
                    if (drain != (seen > 0)) return run.mismatch("the hint to sink {d} was {d} with {d} tokens for it", .{ sink, @backingInt(hint.value), seen });
                }
            }
        }
        if (subject.hint) |hint| {
            // Wake-less sinks, none relaying: no hint but "drain" to a sink that got tokens.
            const bits = @backingInt(hint.value) - status.hint_base;
            if (bits & status.hint_relay_bit != 0 or (hint.caller == sink_none and bits != 0)) {
                return run.mismatch("the hint to {f} was {d}", .{ test_support.sinkName(hint.caller), @backingInt(hint.value) });
            }
        }
        try subject.checkNative(run, expected);
    }

    const Filter = struct {
        items: []const Fired,
        sink: Sink,
        index: usize = 0,

        fn next(filter: *Filter) ?Fired {
            while (filter.index < filter.items.len) {
                const item = filter.items[filter.index];
                filter.index += 1;
                if (item.sink == filter.sink) return item;
            }
            return null;
        }

        fn count(filter: Filter) usize {
            var copy = filter;
            var total: usize = 0;
            while (copy.next() != null) total += 1;
            return total;
        }
    };

    /// The step's native callbacks: queued by the step itself, run by the dispatcher in
    /// queue order, each once, and none beyond them.
    fn checkNative(subject: *AbiSubject, run: anytype, expected: []const Fired) !void {
        var wanted: Filter = .{ .items = expected, .sink = sink_none };
        const count = wanted.count();
        subject.native_total += count;
        // Those the dispatcher has taken out of the queue and not yet run are in neither
        // figure: the sum is at most the model's until they have run.
        const queued = subject.stats();
        if (queued.native_callbacks_run + queued.native_callbacks_queued > subject.native_total) {
            return run.mismatch("{d} native callbacks queued or run, the model {d}", .{ queued.native_callbacks_run + queued.native_callbacks_queued, subject.native_total });
        }
        if (queued.tokens_discarded != 0) return run.mismatch("{d} tokens discarded", .{queued.tokens_discarded});
        const arrived = native_log.waitFor(count, test_support.wait_timeout_ns_default);
        if (arrived < count) return run.mismatch("{d} native callbacks ran, the model {d}", .{ arrived, count });
        // The last callback has logged; the dispatcher counts it once it returns.
        const deadline: Deadline = .fromNow(test_support.wait_timeout_ns_default);
        while (subject.stats().native_callbacks_run < subject.native_total) {
            if (deadline.passed()) return run.mismatch("native callbacks run: {d}, the model {d}", .{ subject.stats().native_callbacks_run, subject.native_total });
            std.Thread.yield() catch {};
        }
        const done = subject.stats();
        if (done.native_callbacks_run != subject.native_total or done.native_callbacks_queued != 0) {
            return run.mismatch("{d} native callbacks run and {d} queued, the model {d} run", .{ done.native_callbacks_run, done.native_callbacks_queued, subject.native_total });
        }
        native_log.mutex.lock();
        defer native_log.mutex.unlock();
        if (native_log.overflowed or native_log.len != count) return run.mismatch("{d} native callbacks ran, the model {d}", .{ native_log.len, count });
        for (native_log.entries[0..count], 0..) |real, index| {
            const next = wanted.next().?;
            const same = real.label == next.label and @as(u64, @bitCast(real.object_id)) == @as(u64, @bitCast(next.object_id));
            if (!same) return run.mismatch("native callback #{d} {any}, the model {any}", .{ index, real, next });
        }
        native_log.len = 0;
    }

    /// Now and then: a snapshot in pages of random size, and every sink's registered tokens
    /// on every object, against the model.
    pub fn checkMore(subject: *AbiSubject, run: anytype) !void {
        if (run.chance(0.05)) try subject.checkSnapshot(run);
        if (run.chance(0.05)) try subject.checkTokens(run);
    }

    fn checkSnapshot(subject: *AbiSubject, run: anytype) !void {
        var records: [model_test.model_live_high + 8]abi.ObjectInfo = undefined;
        var total: usize = 0;
        var slot: u32 = 0;
        while (true) {
            const page = 1 + run.random.uintLessThan(u32, 8);
            if (total + page > records.len) return run.mismatch("the snapshot holds more than {d} objects", .{total});
            var next: u32 = undefined;
            const count = try countResult(abi.refscope_counter_snapshot(subject.counter, slot, records[total..].ptr, page, &next));
            if (count == 0) break;
            if (next <= slot) return run.mismatch("the snapshot went from slot {d} to {d}", .{ slot, next });
            total += count;
            slot = next;
        }
        const objects = run.model.objects.items;
        if (total != objects.len) return run.mismatch("the snapshot has {d} objects, the model {d}", .{ total, objects.len });
        for (records[0..total]) |record| {
            const object = run.model.find(record.id) orelse return run.mismatch("the snapshot has {d}, the model does not", .{record.id});
            const expected = object.info();
            if (!std.meta.eql(infoOf(record), expected)) return run.mismatch("snapshot of {d}: {any}, the model {any}", .{ record.id, infoOf(record), expected });
        }
    }

    fn checkTokens(subject: *AbiSubject, run: anytype) !void {
        for (run.model.objects.items) |*object| {
            for (0..sink_count) |sink_index| {
                const sink: Sink = @intCast(sink_index);
                for ([_]CallbackKind{ .out_of_scope, .deleted }) |kind| {
                    const handlers = switch (kind) {
                        .out_of_scope => object.on_out_of_scope.items,
                        .deleted => object.on_deleted.items,
                    };
                    var tokens: [256]u32 = undefined;
                    const counter = subject.counter;
                    const count = try countResult(abi.refscope_object_sink_tokens(counter, object.id, sink, kindValue(kind), &tokens, tokens.len));
                    var index: usize = 0;
                    for (handlers) |handler| {
                        if (handler.sink != sink) continue;
                        if (index >= count or tokens[index] != handler.label) {
                            return run.mismatch("object {d}: sink {d}'s {t} tokens {any}, the model has {d} at #{d}", .{ object.id, sink, kind, tokens[0..@min(count, tokens.len)], handler.label, index });
                        }
                        index += 1;
                    }
                    if (index != count) return run.mismatch("object {d}: sink {d} has {d} {t} tokens, the model {d}", .{ object.id, sink, count, kind, index });
                }
            }
        }
    }

    pub fn expectEmpty(subject: *AbiSubject) !void {
        const figures = subject.stats();
        try testing.expectEqual(@as(u64, 0), figures.sink_tokens_pending);
        try testing.expectEqual(@as(u64, 0), figures.native_callbacks_queued);
        try testing.expectEqual(subject.native_total, figures.native_callbacks_run);
        try testing.expectEqual(@as(u64, sink_count), figures.sinks_open);
    }

    // --- Misuse -------------------------------------------------------------------------

    const Misuse = enum {
        null_counter,
        bad_size,
        bad_create_flags,
        null_array,
        unknown_caller,
        bad_kind,
        no_sink_for_tokens,
        null_function,
        null_out,
        bad_lender,
        wrong_generation,
        bad_sink_call,
        null_buffer,
    };

    /// One misuse, and the error it must fail with; the model is untouched, so the check
    /// that follows finds the table unchanged.
    pub fn misuse(subject: *AbiSubject, run: anytype) !void {
        subject.misuses += 1;
        const counter = subject.counter;
        const random = run.random;
        const id = run.anyId();
        const caller = run.anySink();
        const kind: u32 = random.uintLessThan(u32, 2);
        const chosen = random.enumValue(Misuse);
        run.describe("misuse: {t} (id {d}, caller {f})", .{ chosen, id, test_support.sinkName(caller) });
        const invalid: i32 = @backingInt(status.Status.invalid_argument);
        var out_id: f64 = 0;
        const ids = [_]f64{id};
        const real: i32, const expected: i32 = switch (chosen) {
            .null_counter => .{ switch (random.uintLessThan(u32, 13)) {
                10 => @as(i32, @intFromFloat(abi.refscope_object_create_n(0, 1, @floatFromInt(caller)))),
                11 => @backingInt(abi.refscope_object_retain_n(subject.address() + 1, id, @floatFromInt(caller))),
                12 => @backingInt(abi.refscope_object_release_n(std.math.nan(f64), id, @floatFromInt(caller))),
                0 => @backingInt(abi.refscope_object_create(null, 1, caller, &out_id)),
                1 => @backingInt(abi.refscope_object_retain(null, id, caller)),
                2 => @backingInt(abi.refscope_object_release(null, id, caller)),
                3 => @backingInt(abi.refscope_object_release_batch(null, &ids, 1, caller)),
                4 => @backingInt(abi.refscope_object_lend(null, id, caller)),
                5 => @backingInt(abi.refscope_object_free(null, id, caller)),
                6 => @backingInt(abi.refscope_object_on_sink(null, id, caller, kind, 1)),
                7 => @backingInt(abi.refscope_sink_release(null, caller)),
                8 => @backingInt(abi.refscope_counter_close(null, caller)),
                else => @backingInt(abi.refscope_counter_state(null)),
            }, invalid },
            .bad_size => blk: {
                const sizes = [_]f64{ std.math.nan(f64), -1, 0.5, 9007199254740992.0, std.math.inf(f64), -std.math.inf(f64), 1e300, -std.math.floatMin(f64) };
                const size = sizes[random.uintLessThan(usize, sizes.len)];
                break :blk .{ @backingInt(abi.refscope_object_create(counter, size, caller, &out_id)), invalid };
            },
            .bad_create_flags => blk: {
                const flags = (random.int(u32) | 2) & ~@as(u32, random.uintLessThan(u32, 2));
                break :blk .{ @backingInt(abi.refscope_object_create_ex(counter, 1, flags, null, 0, null, 0, caller, &out_id)), invalid };
            },
            .null_array => .{ switch (random.uintLessThan(u32, 7)) {
                0 => @backingInt(abi.refscope_object_release_batch(counter, null, 1, caller)),
                1 => @backingInt(abi.refscope_submitted_add(counter, null, 2, caller)),
                2 => @backingInt(abi.refscope_submitted_remove(counter, null, 1, caller)),
                3 => @backingInt(abi.refscope_lineage_add(counter, null, 1, caller)),
                4 => @backingInt(abi.refscope_lineage_remove(counter, null, 3, caller)),
                5 => @backingInt(abi.refscope_object_create_ex(counter, 1, 0, null, 1, null, 0, caller, &out_id)),
                else => @backingInt(abi.refscope_object_create_ex(counter, 1, 0, null, 0, null, 1, caller, &out_id)),
            }, invalid },
            .unknown_caller => blk: {
                const unknown = [_]Sink{ sink_count + random.uintLessThan(u32, abi.sinks_max - sink_count), abi.sinks_max, abi.sinks_max + 1, abi.owner_gone, sink_none - 2 };
                const who = unknown[random.uintLessThan(usize, unknown.len)];
                const numbers = [_]f64{ @floatFromInt(who), -1, 0.5, std.math.nan(f64), 4294967296.0 };
                const number = numbers[random.uintLessThan(usize, numbers.len)];
                break :blk .{ switch (random.uintLessThan(u32, 12)) {
                    9 => @as(i32, @intFromFloat(abi.refscope_object_create_n(subject.address(), 1, number))),
                    10 => @backingInt(abi.refscope_object_retain_n(subject.address(), id, number)),
                    11 => @backingInt(abi.refscope_object_release_n(subject.address(), id, number)),
                    0 => @backingInt(abi.refscope_object_create(counter, 1, who, &out_id)),
                    1 => @backingInt(abi.refscope_object_retain(counter, id, who)),
                    2 => @backingInt(abi.refscope_object_release(counter, id, who)),
                    3 => @backingInt(abi.refscope_object_release_batch(counter, &ids, 1, who)),
                    4 => @backingInt(abi.refscope_submitted_add(counter, &ids, 1, who)),
                    5 => @backingInt(abi.refscope_lineage_remove(counter, &ids, 1, who)),
                    6 => @backingInt(abi.refscope_object_lend(counter, id, who)),
                    7 => @backingInt(abi.refscope_object_free(counter, id, who)),
                    else => @backingInt(abi.refscope_object_on_sink(counter, id, who, kind, 1)),
                }, invalid };
            },
            .bad_kind => blk: {
                const kinds = [_]u32{ 2, 3, 1 << 31, std.math.maxInt(u32) };
                const bad = kinds[random.uintLessThan(usize, kinds.len)];
                var tokens: [4]u32 = undefined;
                break :blk .{ switch (random.uintLessThan(u32, 4)) {
                    0 => @backingInt(abi.refscope_object_on_sink(counter, id, caller, bad, 1)),
                    1 => @backingInt(abi.refscope_object_off_sink(counter, id, caller, bad, 1)),
                    2 => @backingInt(abi.refscope_object_off_native(counter, id, bad, onNative, labelContext(1))),
                    else => abi.refscope_object_sink_tokens(counter, id, caller, bad, &tokens, tokens.len),
                }, invalid };
            },
            .no_sink_for_tokens => .{ switch (random.uintLessThan(u32, 2)) {
                0 => @backingInt(abi.refscope_object_on_sink(counter, id, sink_none, kind, 1)),
                else => @backingInt(abi.refscope_object_off_sink(counter, id, sink_none, kind, 1)),
            }, invalid },
            .null_function => .{ switch (random.uintLessThan(u32, 3)) {
                0 => @backingInt(abi.refscope_object_on_out_of_scope(counter, id, null, null)),
                1 => @backingInt(abi.refscope_object_on_deleted(counter, id, null, null)),
                else => @backingInt(abi.refscope_object_off_native(counter, id, kind, null, labelContext(1))),
            }, invalid },
            .null_out => .{ switch (random.uintLessThan(u32, 7)) {
                0 => @backingInt(abi.refscope_object_create(counter, 1, caller, null)),
                1 => @backingInt(abi.refscope_object_create_ex(counter, 1, 0, &ids, 1, null, 0, caller, null)),
                2 => @backingInt(abi.refscope_object_info(counter, id, null)),
                3 => @backingInt(abi.refscope_counter_stats(counter, null)),
                4 => @backingInt(abi.refscope_counter_key(counter, null)),
                5 => @backingInt(abi.refscope_sink_generation(counter, 0, null)),
                else => @backingInt(abi.refscope_sink_open(counter, null, null, 0, null)),
            }, invalid },
            .bad_lender => blk: {
                const lender = abi.sinks_max + random.uintLessThan(u32, 1000);
                break :blk .{ @backingInt(abi.refscope_object_borrow(counter, id, lender, 1, caller)), invalid };
            },
            .wrong_generation => blk: {
                // A lender that is not open, or an open one in another generation: nothing
                // lent is claimed, and the object's own errors come first.
                const lender = random.uintLessThan(u32, sink_count + 2);
                const generation = if (lender < sink_count) subject.generationOf(lender) +% (1 + random.uintLessThan(u32, 3)) else random.int(u32);
                const want: i32 = if (run.model.find(id) == null)
                    @backingInt(abi.statusFromError(run.model.missing(id)))
                else
                    @backingInt(status.Status.no_reference);
                break :blk .{ @backingInt(abi.refscope_object_borrow(counter, id, lender, generation, caller)), want };
            },
            .bad_sink_call => blk: {
                const sink = sink_count + random.uintLessThan(u32, abi.sinks_max);
                var tokens: [4]u32 = undefined;
                var generation: u32 = undefined;
                break :blk .{ switch (random.uintLessThan(u32, 5)) {
                    0 => abi.refscope_sink_drain(counter, sink, &tokens, tokens.len),
                    1 => abi.refscope_sink_pending(counter, sink),
                    2 => @backingInt(abi.refscope_sink_generation(counter, sink, &generation)),
                    3 => @backingInt(abi.refscope_sink_release(counter, sink)),
                    else => @backingInt(abi.refscope_sink_close(counter, sink)),
                }, invalid };
            },
            .null_buffer => blk: {
                var sinks: [abi.sinks_max]u32 = undefined;
                var next: u32 = undefined;
                break :blk .{ switch (random.uintLessThan(u32, 6)) {
                    0 => abi.refscope_sink_drain(counter, caller % sink_count, null, 4),
                    1 => abi.refscope_relay_take(counter, null, abi.sinks_max),
                    2 => abi.refscope_relay_take(counter, &sinks, abi.sinks_max - 1),
                    3 => abi.refscope_counter_snapshot(counter, 0, null, 4, &next),
                    4 => abi.refscope_object_sink_tokens(counter, id, caller % sink_count, kind, null, 1),
                    else => abi.refscope_object_holdings(counter, id, null, 1),
                }, invalid };
            },
        };
        if (real != expected) return run.mismatch("the ABI returned {d} ({s}), the model {d} ({s})", .{ real, std.mem.span(abi.refscope_status_name(real)), expected, std.mem.span(abi.refscope_status_name(expected)) });
    }
};

const AbiRun = model_test.Run(AbiSubject);

test "ABI model: the C ABI agrees with the reference model after every random step, misuse included" {
    const seed = try test_support.envInteger("REFSCOPE_MODEL_SEED") orelse testing.random_seed;
    const operations = try test_support.envInteger("REFSCOPE_MODEL_OPS") orelse try test_support.scaledDefault(30_000);
    var prng = std.Random.DefaultPrng.init(seed);
    var run = try AbiRun.init(testing.allocator, prng.random(), seed, operations);
    defer run.deinit();
    while (run.step < operations) {
        run.step += 1;
        try run.randomStep();
    }
    try run.releaseEverything();
    if (operations >= 10_000) {
        try testing.expect(run.subject.misuses > operations / 50);
        try testing.expect(run.subject.native_total > operations / 200);
        try testing.expect(run.fired_total > operations / 50);
    }
}

test "ABI model fuzz: C ABI call sequences chosen by the fuzzer agree with the model (zig build fuzz --fuzz explores; zig build test replays the corpus)" {
    try model_test.fuzz(AbiSubject, &@import("fuzz_corpus").abi);
}
