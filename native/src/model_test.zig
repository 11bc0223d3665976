//! The model test (issue 5): the table checked step by step against a reference model.
//!
//! "model: ...": a seeded random sequence of operations by three sinks and native code
//! (`sink_none`) runs on a `Table` and on `Model`, a small model of Ray's rules written from
//! README's "Semantics" and tests/model.ts rather than from table.zig. After every step the
//! outcome, the callbacks the step released (in order, with their sink and object), the
//! live count and bytes, every live object's `Info` and holdings, and the staleness of every
//! id the step deleted must agree. Deleted ids (whose slots are mostly reused by then) and
//! forged ids are operated on too. stress_test.zig drives the real counter from threads.
//!
//! The seed defaults to the test runner's `--seed`, which `zig build test` picks at random
//! and shows in its report of a test that crashes (`zig build test --seed <n>` replays it);
//! a failing check prints its seed and the command that replays it. Environment:
//!   REFSCOPE_MODEL_SEED=<n>    the seed
//!   REFSCOPE_MODEL_OPS=<n>     the number of random steps (default 100000); more to soak
//!   REFSCOPE_STRESS_SCALE=<x>  multiplies the default: 0.1 under valgrind, say

const std = @import("std");
const assert = std.debug.assert;
const testing = std.testing;
const table_module = @import("table.zig");
const pool_module = @import("pool.zig");
const callback = @import("callback.zig");
const test_support = @import("testing.zig");
const envInteger = test_support.envInteger;
const scaledDefault = test_support.scaledDefault;
const sinkName = test_support.sinkName;
const Graveyard = test_support.Graveyard;

const Table = table_module.Table;
const Id = table_module.Id;
const IdParts = table_module.IdParts;
const Sink = table_module.Sink;
const Info = table_module.Info;
const Holding = table_module.Holding;
const CallbackKind = table_module.CallbackKind;
const Error = table_module.Error;
/// What a call may fail with: the table's errors, and the counter's and the ABI's (`Closed`,
/// `InvalidArgument`, ...), which only the ABI subject can meet.
pub const Failure = @import("counter.zig").Error;
const List = pool_module.List;
const sink_none = table_module.sink_none;

/// Sinks 0, 1 and 2, and native code.
const participant_count = 4;
/// Native code's participant: the owner of what it creates, and the owner's stand-in on
/// every object (`sink_none` acts for the owner).
const native = participant_count - 1;

fn participantOf(sink: Sink) usize {
    if (sink == sink_none) return native;
    assert(sink < native);
    return sink;
}

fn sinkOf(participant: usize) Sink {
    return if (participant == native) sink_none else @intCast(participant);
}

pub const Count = enum { local, submitted, lent, lineage };
pub const Direction = enum {
    add,
    remove,

    fn opposite(direction: Direction) Direction {
        return if (direction == .add) .remove else .add;
    }
};
/// What an operation may name: objects in scope, or (removing lineage) every live one.
const Accept = enum { in_scope, live };

/// What an operation did: succeeded, answered (register, unregister), or failed.
pub const Outcome = union(enum) {
    ok,
    answer: bool,
    failed: Failure,

    fn of(result: anytype) Outcome {
        const value = result catch |err| return .{ .failed = err };
        if (@TypeOf(value) == bool) return .{ .answer = value };
        return .ok;
    }

    fn eql(a: Outcome, b: Outcome) bool {
        return switch (a) {
            .ok => b == .ok,
            .answer => |value| b == .answer and b.answer == value,
            .failed => |err| b == .failed and b.failed == err,
        };
    }

    pub fn format(outcome: Outcome, writer: *std.Io.Writer) std.Io.Writer.Error!void {
        switch (outcome) {
            .ok => try writer.writeAll("ok"),
            .answer => |value| try writer.print("{}", .{value}),
            .failed => |err| try writer.print("error.{s}", .{@errorName(err)}),
        }
    }
};

const links_max = 3;

/// The objects a create names as contained (or as lineage), each once.
const Links = struct {
    ids: [links_max]Id = undefined,
    len: usize = 0,

    fn fromIds(ids: []const Id) Links {
        assert(ids.len <= links_max);
        var links: Links = .{};
        for (ids) |id| {
            if (std.mem.indexOfScalar(Id, links.slice(), id) != null) continue;
            links.ids[links.len] = id;
            links.len += 1;
        }
        return links;
    }

    fn slice(links: *const Links) []const Id {
        return links.ids[0..links.len];
    }
};

/// A registration: the caller that registered it (the sink its token goes to) and a label
/// unique in the run.
const Handler = struct { sink: Sink, label: u32 };

/// A callback that left the table.
pub const Fired = struct { label: u32, sink: Sink, object_id: Id };

const ModelObject = struct {
    id: Id,
    owner: usize,
    reconstructable: bool,
    size_bytes: u64,
    /// References by participant. The owner's local and submitted ones are also native
    /// code's: `sink_none` acts for the owner.
    local: [participant_count]u32 = @splat(0),
    submitted: [participant_count]u32 = @splat(0),
    lent: [participant_count]u32 = @splat(0),
    lineage_pins: [participant_count]u32 = @splat(0),
    /// Lineage references from objects created with this one in their lineage.
    dependents: u32 = 0,
    /// Containers in scope that contain this one.
    contained_in: u32 = 0,
    /// Released when this one goes out of scope.
    contains: Links,
    /// Released when this one is deleted.
    depends_on: Links,
    freed: bool = false,
    out_of_scope: bool = false,
    deleted: bool = false,
    on_out_of_scope: std.ArrayList(Handler) = .empty,
    on_deleted: std.ArrayList(Handler) = .empty,

    fn counts(object: *ModelObject, kind: Count) *[participant_count]u32 {
        return switch (kind) {
            .local => &object.local,
            .submitted => &object.submitted,
            .lent => &object.lent,
            .lineage => &object.lineage_pins,
        };
    }

    /// The participant whose counts a call by `caller` changes.
    fn actor(object: *const ModelObject, caller: Sink) usize {
        return if (caller == sink_none) object.owner else participantOf(caller);
    }

    fn owns(object: *const ModelObject, caller: Sink) bool {
        return caller == sink_none or participantOf(caller) == object.owner;
    }

    fn lineage(object: *const ModelObject) u32 {
        return sum(object.lineage_pins) + object.dependents;
    }

    fn inScope(object: *const ModelObject) bool {
        const references = sum(object.local) + sum(object.submitted) + sum(object.lent) + object.contained_in;
        return references > 0 or (!object.reconstructable and object.lineage() > 0);
    }

    fn handlers(object: *ModelObject, kind: CallbackKind) *std.ArrayList(Handler) {
        return switch (kind) {
            .out_of_scope => &object.on_out_of_scope,
            .deleted => &object.on_deleted,
        };
    }

    /// What `Table.info` must report.
    pub fn info(object: *const ModelObject) Info {
        var borrowed: u32 = 0;
        var borrowers: u32 = 0;
        for (0..participant_count) |participant| {
            if (participant == object.owner) continue;
            const references = object.local[participant] + object.submitted[participant];
            borrowed += references;
            borrowers += @intFromBool(references > 0);
        }
        return .{
            .owner = sinkOf(object.owner),
            .refs_local = object.local[object.owner],
            .refs_submitted = object.submitted[object.owner],
            .refs_borrowed = borrowed,
            .refs_lent = sum(object.lent),
            .refs_lineage = object.lineage(),
            .contained_in_owned = object.contained_in,
            .borrowers = borrowers,
            .callbacks_pending = @intCast(object.on_out_of_scope.items.len),
            .deleted_callbacks_pending = @intCast(object.on_deleted.items.len),
            .freed = object.freed,
            .out_of_scope = object.out_of_scope,
            .reconstructable = object.reconstructable,
            .size_bytes = object.size_bytes,
        };
    }

    /// What `Table.holdings` must report, by sink: every participant's references but the
    /// owner's local and submitted ones (which are the entry's own counts).
    fn holdings(object: *const ModelObject, out: *[participant_count]Holding) []Holding {
        var count: usize = 0;
        for (0..participant_count) |participant| {
            const owner = participant == object.owner;
            const holding: Holding = .{
                .sink = sinkOf(participant),
                .refs_local = if (owner) 0 else object.local[participant],
                .refs_submitted = if (owner) 0 else object.submitted[participant],
                .refs_lent = object.lent[participant],
                .refs_lineage = object.lineage_pins[participant],
            };
            if (holding.refs_local + holding.refs_submitted + holding.refs_lent + holding.refs_lineage == 0) continue;
            out[count] = holding;
            count += 1;
        }
        return out[0..count];
    }
};

fn sum(counts: [participant_count]u32) u32 {
    var total: u32 = 0;
    for (counts) |count| total += count;
    return total;
}

/// Ray's rules, executable, with nothing but lists and counters: an object is in scope
/// while any reference, lent reference, container or (unless reconstructable) lineage
/// reference remains; going out of scope releases what it contains first, then its
/// out-of-scope callbacks leave; once no lineage reference remains it releases its lineage,
/// then its deleted callbacks leave and it is gone.
const Model = struct {
    allocator: std.mem.Allocator,
    /// Live objects, and those deleted in the current step until `sweep`.
    objects: std.ArrayList(ModelObject) = .empty,
    /// Every id ever issued (as bits): naming one that is not live is stale; naming any
    /// other is invalid.
    issued: std.AutoHashMapUnmanaged(u64, void) = .empty,
    /// The callbacks that left in the current step, in order.
    fired: std.ArrayList(Fired) = .empty,

    fn deinit(model: *Model) void {
        for (model.objects.items) |*object| model.forget(object);
        model.objects.deinit(model.allocator);
        model.issued.deinit(model.allocator);
        model.fired.deinit(model.allocator);
    }

    fn forget(model: *Model, object: *ModelObject) void {
        object.on_out_of_scope.deinit(model.allocator);
        object.on_deleted.deinit(model.allocator);
    }

    /// Removes the objects deleted in the current step; returns how many there were.
    fn sweep(model: *Model, graveyard: *Graveyard) usize {
        var removed: usize = 0;
        var index = model.objects.items.len;
        while (index > 0) {
            index -= 1;
            const object = &model.objects.items[index];
            if (!object.deleted) continue;
            graveyard.add(object.id);
            model.forget(object);
            _ = model.objects.swapRemove(index);
            removed += 1;
        }
        return removed;
    }

    pub fn find(model: *Model, id: Id) ?*ModelObject {
        for (model.objects.items) |*object| {
            if (object.id == id and !object.deleted) return object;
        }
        return null;
    }

    fn lookup(model: *Model, id: Id, accept: Accept) ?*ModelObject {
        const object = model.find(id) orelse return null;
        if (accept == .in_scope and object.out_of_scope) return null;
        return object;
    }

    fn wasIssued(model: *const Model, id: Id) bool {
        return model.issued.contains(@bitCast(id));
    }

    /// Why an id names no acceptable object.
    pub fn missing(model: *const Model, id: Id) Error {
        return if (model.wasIssued(id)) error.StaleId else error.InvalidId;
    }

    /// The error a create naming these objects must fail with: the first not in scope.
    fn createError(model: *Model, contains: []const Id, lineage: []const Id) ?Error {
        for (contains) |id| if (model.lookup(id, .in_scope) == null) return model.missing(id);
        for (lineage) |id| if (model.lookup(id, .in_scope) == null) return model.missing(id);
        return null;
    }

    fn create(model: *Model, id: Id, owner: Sink, reconstructable: bool, size_bytes: u64, contains: []const Id, lineage: []const Id) !void {
        assert(model.createError(contains, lineage) == null);
        var object: ModelObject = .{
            .id = id,
            .owner = participantOf(owner),
            .reconstructable = reconstructable,
            .size_bytes = size_bytes,
            .contains = .fromIds(contains),
            .depends_on = .fromIds(lineage),
        };
        object.local[object.owner] = 1;
        try model.issued.put(model.allocator, @bitCast(id), {});
        try model.objects.append(model.allocator, object);
        for (object.contains.slice()) |inner| model.find(inner).?.contained_in += 1;
        for (object.depends_on.slice()) |dependency| model.find(dependency).?.dependents += 1;
    }

    fn change(model: *Model, id: Id, caller: Sink, kind: Count, direction: Direction, accept: Accept) Outcome {
        const object = model.lookup(id, accept) orelse return .{ .failed = model.missing(id) };
        const count = &object.counts(kind)[object.actor(caller)];
        switch (direction) {
            .add => count.* += 1,
            .remove => {
                if (count.* == 0) return .{ .failed = error.NoReference };
                count.* -= 1;
            },
        }
        return .ok;
    }

    /// One change per id, all or nothing; after removals each object settles, in order.
    fn batch(model: *Model, ids: []const Id, caller: Sink, kind: Count, direction: Direction) !Outcome {
        const accept: Accept = if (kind == .lineage and direction == .remove) .live else .in_scope;
        for (ids, 0..) |id, index| {
            const outcome = model.change(id, caller, kind, direction, accept);
            if (outcome == .ok) continue;
            for (ids[0..index]) |done| assert(model.change(done, caller, kind, direction.opposite(), accept) == .ok);
            return outcome;
        }
        if (direction == .remove) {
            for (ids) |id| if (model.find(id)) |object| try model.settle(object);
        }
        return .ok;
    }

    fn lend(model: *Model, id: Id, caller: Sink) Outcome {
        const object = model.lookup(id, .in_scope) orelse return .{ .failed = model.missing(id) };
        const participant = object.actor(caller);
        if (object.local[participant] == 0) return .{ .failed = error.NoReference };
        object.local[participant] -= 1;
        object.lent[participant] += 1;
        return .ok;
    }

    fn borrow(model: *Model, id: Id, lender: Sink, caller: Sink) Outcome {
        const object = model.lookup(id, .in_scope) orelse return .{ .failed = model.missing(id) };
        const from = object.actor(lender);
        if (object.lent[from] == 0) return .{ .failed = error.NoReference };
        object.lent[from] -= 1;
        object.local[object.actor(caller)] += 1;
        return .ok;
    }

    fn free(model: *Model, id: Id, caller: Sink) !Outcome {
        const object = model.find(id) orelse return .{ .failed = model.missing(id) };
        if (!object.owns(caller)) return .{ .failed = error.NotOwned };
        if (object.freed or object.out_of_scope) return .ok;
        object.freed = true;
        try model.fire(object, .out_of_scope);
        return .ok;
    }

    fn register(model: *Model, id: Id, caller: Sink, kind: CallbackKind, label: u32) !Outcome {
        const object = model.find(id) orelse return model.notFound(id);
        if (!object.owns(caller)) return .{ .failed = error.NotOwned };
        if (kind == .out_of_scope and (object.freed or object.out_of_scope)) return .{ .answer = false };
        try object.handlers(kind).append(model.allocator, .{ .sink = caller, .label = label });
        return .{ .answer = true };
    }

    fn unregister(model: *Model, id: Id, caller: Sink, kind: CallbackKind, label: u32) Outcome {
        const object = model.find(id) orelse return model.notFound(id);
        if (!object.owns(caller)) return .{ .failed = error.NotOwned };
        const list = object.handlers(kind);
        for (list.items, 0..) |handler, index| {
            if (handler.sink != caller or handler.label != label) continue;
            _ = list.orderedRemove(index);
            return .{ .answer = true };
        }
        return .{ .answer = false };
    }

    /// Registering on, or unregistering from, a deleted object answers false.
    fn notFound(model: *const Model, id: Id) Outcome {
        return if (model.wasIssued(id)) .{ .answer = false } else .{ .failed = error.InvalidId };
    }

    /// Ray's `DeleteReferenceInternal`.
    fn settle(model: *Model, object: *ModelObject) std.mem.Allocator.Error!void {
        if (object.deleted) return;
        if (!object.out_of_scope) {
            if (object.inScope()) return;
            object.out_of_scope = true;
            const contained = object.contains;
            object.contains = .{};
            for (contained.slice()) |id| {
                const inner = model.find(id).?;
                inner.contained_in -= 1;
                try model.settle(inner);
            }
            try model.fire(object, .out_of_scope);
        }
        if (object.lineage() > 0) return;
        const dependencies = object.depends_on;
        object.depends_on = .{};
        for (dependencies.slice()) |id| {
            const dependency = model.find(id).?;
            dependency.dependents -= 1;
            try model.settle(dependency);
        }
        object.deleted = true;
        try model.fire(object, .deleted);
    }

    fn fire(model: *Model, object: *ModelObject, kind: CallbackKind) !void {
        const list = object.handlers(kind);
        for (list.items) |handler| {
            try model.fired.append(model.allocator, .{ .label = handler.label, .sink = handler.sink, .object_id = object.id });
        }
        list.clearRetainingCapacity();
    }
};

// --- The subjects: what the model run checks ------------------------------------------------

/// The model run's subject when it tests the table itself: each call goes straight to
/// `Table`, and the callbacks it releases are collected in one list, in order. (The other
/// subject, abi_model_test.zig's, makes the same calls through the C ABI.) A subject
/// provides the calls below, with the table's signatures but for the released-callback
/// list, and `checkFired`, `expectEmpty`, `misuse_weight` (with `misuse` when it is not 0),
/// and, if it has them, `afterStep` and `checkMore`.
const TableSubject = struct {
    table: Table,
    /// What the table released during the current step.
    released: List = .{},

    pub const name = "model test";
    /// The table trusts its callers (the counter): it has no misuse of its own to try.
    pub const misuse_weight = 0;

    pub fn init(allocator: std.mem.Allocator) !TableSubject {
        var table: Table = .init(allocator);
        // Memory is given back each time a shard empties (`afterStep`): stale ids must
        // stay stale.
        table.trim_min = 0;
        return .{ .table = table };
    }

    /// Tears down even after a mismatch, leaving nothing for the leak check to report.
    pub fn deinit(subject: *TableSubject) void {
        if (subject.table.objectsLive() != 0) subject.table.releaseAll(&subject.released);
        subject.released.clear(&subject.table.callbacks);
        subject.table.deinit();
    }

    pub fn create(subject: *TableSubject, options: table_module.CreateOptions) Failure!Id {
        return subject.table.create(options);
    }

    pub fn retain(subject: *TableSubject, id: Id, caller: Sink) Failure!void {
        return subject.table.retain(id, caller);
    }

    pub fn release(subject: *TableSubject, id: Id, caller: Sink) Failure!void {
        return subject.table.release(id, caller, &subject.released);
    }

    pub fn batch(subject: *TableSubject, kind: Count, direction: Direction, ids: []const Id, caller: Sink) Failure!void {
        const table = &subject.table;
        return switch (kind) {
            .local => table.releaseBatch(ids, caller, &subject.released),
            .submitted => switch (direction) {
                .add => table.submittedAdd(ids, caller),
                .remove => table.submittedRemove(ids, caller, &subject.released),
            },
            .lineage => switch (direction) {
                .add => table.lineageAdd(ids, caller),
                .remove => table.lineageRemove(ids, caller, &subject.released),
            },
            .lent => unreachable,
        };
    }

    pub fn lend(subject: *TableSubject, id: Id, caller: Sink) Failure!void {
        return subject.table.lend(id, caller);
    }

    pub fn borrow(subject: *TableSubject, id: Id, lender: Sink, caller: Sink) Failure!void {
        return subject.table.borrow(id, lender, caller);
    }

    pub fn free(subject: *TableSubject, id: Id, caller: Sink) Failure!void {
        return subject.table.free(id, caller, &subject.released);
    }

    pub fn register(subject: *TableSubject, id: Id, caller: Sink, kind: CallbackKind, label: u32) Failure!bool {
        return subject.table.register(id, caller, kind, tokenCallback(caller, label));
    }

    pub fn unregister(subject: *TableSubject, id: Id, caller: Sink, kind: CallbackKind, label: u32) Failure!bool {
        return subject.table.unregister(id, caller, kind, tokenCallback(caller, label));
    }

    fn tokenCallback(caller: Sink, label: u32) callback.Callback {
        return .{ .sink = .{ .sink = caller, .token = label } };
    }

    pub fn info(subject: *TableSubject, id: Id) Failure!Info {
        return subject.table.info(id);
    }

    pub fn holdings(subject: *TableSubject, id: Id, out: []Holding) Failure!usize {
        return subject.table.holdings(id, out);
    }

    pub fn objectsLive(subject: *TableSubject) u64 {
        return subject.table.objectsLive();
    }

    pub fn bytesLive(subject: *TableSubject) u64 {
        return subject.table.bytesLive();
    }

    /// The callbacks the step released must be the model's, in order.
    pub fn checkFired(subject: *TableSubject, run: anytype, expected: []const Fired) !void {
        var index: usize = 0;
        while (true) : (index += 1) {
            const node_index = subject.released.pop(&subject.table.callbacks);
            if (node_index == pool_module.nil) break;
            const node = subject.table.callbacks.at(node_index).*;
            subject.table.callbacks.destroy(node_index);
            const real: Fired = .{ .label = node.callback.sink.token, .sink = node.callback.sink.sink, .object_id = node.object_id };
            if (index >= expected.len) return run.mismatch("released callback #{d} {any}, the model nothing more", .{ index, real });
            if (!std.meta.eql(real, expected[index])) return run.mismatch("released callback #{d} {any}, the model {any}", .{ index, real, expected[index] });
        }
        if (index != expected.len) {
            return run.mismatch("released {d} callbacks, the model {d} (first missing: {any})", .{ index, expected.len, expected[index] });
        }
    }

    /// What the counter's dispatcher does a delay after a shard empties, done at once.
    pub fn afterStep(subject: *TableSubject) void {
        subject.table.trimNow();
    }

    /// Once every reference is dropped: nothing left in any pool.
    pub fn expectEmpty(subject: *TableSubject) !void {
        try testing.expectEqual(@as(usize, 0), subject.table.callbacks.countInUse());
        for (&subject.table.shards) |*shard| {
            try testing.expectEqual(@as(usize, 0), shard.holders.countInUse());
            try testing.expectEqual(@as(usize, 0), shard.links.countInUse());
            try testing.expectEqual(@as(usize, 0), shard.exts.countInUse());
        }
    }
};

// --- The model test's driver -------------------------------------------------------------

/// The run alternates between growing the table up to `model_live_high` live objects and
/// shrinking it (no new objects or references) down to `model_live_low`, or every other time
/// to none (so that shards empty, and give their memory back): so objects are
/// deleted in numbers, their slots reused, and their ids left stale.
pub const model_live_high = 40;
const model_live_low = 4;

const ModelOperation = enum {
    create,
    retain,
    release,
    release_batch,
    submitted_add,
    submitted_remove,
    lineage_add,
    lineage_remove,
    lend,
    borrow,
    free,
    register,
    unregister,
};

const Weights = std.enums.EnumArray(ModelOperation, u32);

const growing_weights = Weights.init(.{
    .create = 12,
    .retain = 8,
    .release = 12,
    .release_batch = 4,
    .submitted_add = 5,
    .submitted_remove = 5,
    .lineage_add = 4,
    .lineage_remove = 4,
    .lend = 6,
    .borrow = 7,
    .free = 3,
    .register = 10,
    .unregister = 4,
});

const shrinking_weights = Weights.init(.{
    .create = 0,
    .retain = 0,
    .release = 16,
    .release_batch = 5,
    .submitted_add = 0,
    .submitted_remove = 6,
    .lineage_add = 0,
    .lineage_remove = 6,
    .lend = 3,
    .borrow = 8,
    .free = 3,
    .register = 6,
    .unregister = 3,
});

/// The kinds of outcome a run must see each of.
const OutcomeKind = enum {
    ok,
    accepted,
    refused,
    stale_id,
    invalid_id,
    no_reference,
    not_owned,
    other,

    fn of(outcome: Outcome) OutcomeKind {
        return switch (outcome) {
            .ok => .ok,
            .answer => |value| if (value) .accepted else .refused,
            .failed => |err| switch (err) {
                error.StaleId => .stale_id,
                error.InvalidId => .invalid_id,
                error.NoReference => .no_reference,
                error.NotOwned => .not_owned,
                else => .other,
            },
        };
    }
};

/// The model run: random steps, each made on the subject and on the model, then everything
/// observable compared. `Subject` is `TableSubject`, or abi_model_test.zig's.
pub fn Run(comptime Subject: type) type {
    return struct {
        subject: Subject,
        model: Model,
        random: std.Random,
        seed: u64,
        operations: u64,
        step: u64 = 0,
        description_buffer: [160]u8 = undefined,
        description: []const u8 = "",
        graveyard: Graveyard = .{},
        labels: u32 = 0,
        /// Whether the run is shrinking the table (see `model_live_high`), and how often it
        /// began to.
        shrinking: bool = false,
        shrinks: u64 = 0,
        /// Totals, for a check that the run exercised what it should.
        outcomes: std.EnumArray(OutcomeKind, u64) = .initFill(0),
        deleted_total: u64 = 0,
        fired_total: u64 = 0,

        const Self = @This();

        pub fn init(allocator: std.mem.Allocator, random: std.Random, seed: u64, operations: u64) !Self {
            return .{ .subject = try .init(allocator), .model = .{ .allocator = allocator }, .random = random, .seed = seed, .operations = operations };
        }

        pub fn deinit(run: *Self) void {
            run.subject.deinit();
            run.model.deinit();
        }

        pub fn mismatch(run: *Self, comptime format: []const u8, args: anytype) error{ModelMismatch} {
            std.debug.print("\n" ++ Subject.name ++ ": step {d} ({s}): " ++ format ++ "\n", .{ run.step, run.description } ++ args);
            std.debug.print("  seed {d}; replay up to this step with:\n  REFSCOPE_MODEL_SEED={d} REFSCOPE_MODEL_OPS={d} bash .ci/zig build test --summary all\n", .{ run.seed, run.seed, @min(run.step, run.operations) });
            return error.ModelMismatch;
        }

        pub fn describe(run: *Self, comptime format: []const u8, args: anytype) void {
            run.description = std.fmt.bufPrint(&run.description_buffer, format, args) catch "(description too long)";
        }

        fn expectOutcome(run: *Self, real: Outcome, expected: Outcome) !void {
            if (!real.eql(expected)) return run.mismatch("the subject says {f}, the model {f}", .{ real, expected });
            run.outcomes.getPtr(.of(real)).* += 1;
        }

        pub fn chance(run: *Self, probability: f64) bool {
            return run.random.float(f64) < probability;
        }

        pub fn anySink(run: *Self) Sink {
            return sinkOf(run.random.uintLessThan(usize, participant_count));
        }

        pub fn anyObject(run: *Self) ?*ModelObject {
            const objects = run.model.objects.items;
            if (objects.len == 0) return null;
            return &objects[run.random.uintLessThan(usize, objects.len)];
        }

        /// Mostly a live object's id; else a deleted one's, or one never issued.
        pub fn anyId(run: *Self) Id {
            const roll = run.random.uintLessThan(u32, 100);
            if (roll < 85) {
                if (run.anyObject()) |object| return object.id;
            }
            if (roll < 96 and run.graveyard.len > 0) return run.graveyard.ids[run.random.uintLessThan(usize, run.graveyard.len)];
            return run.forgedId();
        }

        pub fn forgedId(run: *Self) Id {
            return switch (run.random.uintLessThan(u32, 9)) {
                0 => 0,
                1 => std.math.nan(f64),
                2 => IdParts.encode(.{ .slot = IdParts.slot_count_max - 1, .generation = 1 }) + 0.5,
                3 => IdParts.encode(.{ .slot = IdParts.slot_count_max - 1, .generation = 1 }),
                4 => -0.0,
                5 => -1,
                6 => std.math.inf(f64),
                7 => 9007199254740992.0,
                else => blk: {
                    // A slot in use, a generation ahead of it.
                    const object = run.anyObject() orelse break :blk 1;
                    const parts = IdParts.decode(object.id).?;
                    break :blk IdParts.encode(.{ .slot = parts.slot, .generation = parts.generation + 1 + run.random.uintLessThan(u32, 3) });
                },
            };
        }

        /// Mostly a participant that holds a count of `kind` on the object (as its own sink or,
        /// for the owner, as native code); sometimes anyone.
        fn holderOf(run: *Self, object: *ModelObject, kind: Count) Sink {
            if (run.chance(0.85)) {
                var holders: [participant_count]usize = undefined;
                var count: usize = 0;
                for (object.counts(kind), 0..) |held, participant| {
                    if (held == 0) continue;
                    holders[count] = participant;
                    count += 1;
                }
                if (count > 0) {
                    const participant = holders[run.random.uintLessThan(usize, count)];
                    if (participant == object.owner and run.chance(0.3)) return sink_none;
                    return sinkOf(participant);
                }
            }
            return run.anySink();
        }

        /// Mostly the owner (as its sink, or as native code); sometimes anyone.
        fn ownerOf(run: *Self, object: ?*ModelObject) Sink {
            const known = object orelse return run.anySink();
            if (!run.chance(0.8)) return run.anySink();
            return if (run.chance(0.3)) sink_none else sinkOf(known.owner);
        }

        /// Mostly an object on which `caller` holds a count of `kind`; else any id.
        fn heldId(run: *Self, caller: Sink, kind: Count) Id {
            return run.idWhere(caller, kind, 0.9);
        }

        /// Mostly an object on which someone holds a count of `kind`; else any id.
        fn heldByAnyoneId(run: *Self, kind: Count) Id {
            return run.idWhere(null, kind, 0.85);
        }

        /// With `probability`, an object on which `caller` (anyone, if null) holds a count of
        /// `kind`, if there is one; else any id.
        fn idWhere(run: *Self, caller: ?Sink, kind: Count, probability: f64) Id {
            if (run.chance(probability)) {
                var candidates: [model_live_high + 1]Id = undefined;
                var count: usize = 0;
                for (run.model.objects.items) |*object| {
                    const counts = object.counts(kind);
                    const held = if (caller) |sink| counts[object.actor(sink)] else sum(counts.*);
                    if (held == 0 or count == candidates.len) continue;
                    candidates[count] = object.id;
                    count += 1;
                }
                if (count > 0) return candidates[run.random.uintLessThan(usize, count)];
            }
            return run.anyId();
        }

        /// Mostly a participant that holds a count of `kind` on the object `id` names.
        fn holderOfId(run: *Self, id: Id, kind: Count) Sink {
            const object = run.model.find(id) orelse return run.anySink();
            return run.holderOf(object, kind);
        }

        pub fn randomStep(run: *Self) !void {
            const live = run.model.objects.items.len;
            if (live >= model_live_high and !run.shrinking) {
                run.shrinking = true;
                run.shrinks += 1;
            }
            const low: usize = if (run.shrinks % 2 == 0) 0 else model_live_low;
            if (live <= low) run.shrinking = false;
            const weights = if (run.shrinking) &shrinking_weights else &growing_weights;
            const total = weightsTotal(weights);
            var roll = run.random.uintLessThan(u32, total + Subject.misuse_weight);
            if (Subject.misuse_weight > 0 and roll >= total) {
                try run.subject.misuse(run);
                return run.check();
            }
            const chosen = for (std.enums.values(ModelOperation)) |operation| {
                if (roll < weights.get(operation)) break operation;
                roll -= weights.get(operation);
            } else unreachable;
            switch (chosen) {
                .create => try run.create(),
                .retain => try run.retain(),
                .release => try run.release(),
                .release_batch => try run.batch(.local, .remove),
                .submitted_add => try run.batch(.submitted, .add),
                .submitted_remove => try run.batch(.submitted, .remove),
                .lineage_add => try run.batch(.lineage, .add),
                .lineage_remove => try run.batch(.lineage, .remove),
                .lend => try run.lend(),
                .borrow => try run.borrow(),
                .free => try run.free(),
                .register => try run.register(run.anyId(), null, if (run.chance(0.7)) .out_of_scope else .deleted),
                .unregister => try run.unregister(),
            }
            try run.check();
        }

        fn weightsTotal(weights: *const Weights) u32 {
            var total: u32 = 0;
            for (weights.values) |weight| total += weight;
            return total;
        }

        fn create(run: *Self) !void {
            const owner = run.anySink();
            var contains_buffer: [links_max]Id = undefined;
            var lineage_buffer: [links_max]Id = undefined;
            const contains = run.links(&contains_buffer, 0.35);
            const lineage = run.links(&lineage_buffer, 0.25);
            const reconstructable = run.chance(0.3);
            const size_bytes = run.random.uintAtMost(u64, 100);
            run.describe("create by {f}, containing {any}, lineage {any}", .{ sinkName(owner), contains, lineage });
            const result = run.subject.create(.{
                .size_bytes = size_bytes,
                .owner = owner,
                .reconstructable = reconstructable,
                .contains = contains,
                .lineage = lineage,
                .shard = run.random.uintLessThan(u32, table_module.shard_count),
            });
            if (run.model.createError(contains, lineage)) |expected| {
                return run.expectOutcome(Outcome.of(result), .{ .failed = expected });
            }
            const id = result catch |err| return run.mismatch("create failed with {s}, the model says ok", .{@errorName(err)});
            if (run.model.wasIssued(id)) return run.mismatch("create issued {d} again", .{id});
            try run.model.create(id, owner, reconstructable, size_bytes, contains, lineage);
            if (run.chance(0.5)) try run.register(id, owner, .out_of_scope);
            if (run.chance(0.2)) try run.register(id, owner, .deleted);
        }

        /// Up to `links_max` ids (repeats allowed), mostly of live objects, with `probability`.
        fn links(run: *Self, buffer: *[links_max]Id, probability: f64) []const Id {
            if (!run.chance(probability)) return &.{};
            const count = 1 + run.random.uintLessThan(usize, links_max);
            for (buffer[0..count]) |*id| {
                const object = run.anyObject();
                id.* = if (object != null and run.chance(0.95)) object.?.id else run.anyId();
            }
            return buffer[0..count];
        }

        fn retain(run: *Self) !void {
            const id = run.anyId();
            const caller = run.holderOfId(id, .local);
            run.describe("retain {d} by {f}", .{ id, sinkName(caller) });
            const real = Outcome.of(run.subject.retain(id, caller));
            try run.expectOutcome(real, run.model.change(id, caller, .local, .add, .in_scope));
        }

        fn release(run: *Self) !void {
            const id = run.heldByAnyoneId(.local);
            const caller = run.holderOfId(id, .local);
            run.describe("release {d} by {f}", .{ id, sinkName(caller) });
            const real = Outcome.of(run.subject.release(id, caller));
            try run.expectOutcome(real, try run.model.batch(&.{id}, caller, .local, .remove));
        }

        /// A batch of one to four changes of `kind` by one caller, ids possibly repeated.
        fn batch(run: *Self, kind: Count, direction: Direction) !void {
            const caller = if (direction == .remove) run.holderOfId(run.heldByAnyoneId(kind), kind) else run.anySink();
            var ids_buffer: [4]Id = undefined;
            const ids = ids_buffer[0 .. 1 + run.random.uintLessThan(usize, ids_buffer.len)];
            for (ids) |*id| id.* = if (direction == .remove) run.heldId(caller, kind) else run.anyId();
            run.describe("{t} {t} {any} by {f}", .{ direction, kind, ids, sinkName(caller) });
            const real = Outcome.of(run.subject.batch(kind, direction, ids, caller));
            try run.expectOutcome(real, try run.model.batch(ids, caller, kind, direction));
        }

        fn lend(run: *Self) !void {
            const id = run.heldByAnyoneId(.local);
            const caller = run.holderOfId(id, .local);
            run.describe("lend {d} by {f}", .{ id, sinkName(caller) });
            try run.expectOutcome(Outcome.of(run.subject.lend(id, caller)), run.model.lend(id, caller));
        }

        fn borrow(run: *Self) !void {
            const id = run.heldByAnyoneId(.lent);
            const lender = run.holderOfId(id, .lent);
            const caller = run.anySink();
            run.describe("borrow {d} lent by {f}, by {f}", .{ id, sinkName(lender), sinkName(caller) });
            try run.expectOutcome(Outcome.of(run.subject.borrow(id, lender, caller)), run.model.borrow(id, lender, caller));
        }

        fn free(run: *Self) !void {
            const id = run.anyId();
            const caller = run.ownerOf(run.model.find(id));
            run.describe("free {d} by {f}", .{ id, sinkName(caller) });
            const real = Outcome.of(run.subject.free(id, caller));
            try run.expectOutcome(real, try run.model.free(id, caller));
        }

        fn register(run: *Self, id: Id, by: ?Sink, kind: CallbackKind) !void {
            const caller = by orelse run.ownerOf(run.model.find(id));
            run.labels += 1;
            const label = run.labels;
            run.describe("register {t} callback {d} on {d} by {f}", .{ kind, label, id, sinkName(caller) });
            const real = Outcome.of(run.subject.register(id, caller, kind, label));
            try run.expectOutcome(real, try run.model.register(id, caller, kind, label));
        }

        /// Mostly a callback still registered, by its registrant; else any label, id and caller.
        fn unregister(run: *Self) !void {
            var id = run.anyId();
            var caller = run.anySink();
            var kind: CallbackKind = if (run.random.boolean()) .out_of_scope else .deleted;
            var label = 1 + run.random.uintLessThan(u32, run.labels + 1);
            if (run.anyObject()) |object| {
                const list = object.handlers(kind).items;
                if (list.len > 0 and run.chance(0.8)) {
                    const handler = list[run.random.uintLessThan(usize, list.len)];
                    id = object.id;
                    label = handler.label;
                    if (run.chance(0.9)) caller = handler.sink;
                    if (run.chance(0.1)) kind = if (kind == .deleted) .out_of_scope else .deleted;
                }
            }
            run.describe("unregister {t} callback {d} on {d} by {f}", .{ kind, label, id, sinkName(caller) });
            const real = Outcome.of(run.subject.unregister(id, caller, kind, label));
            try run.expectOutcome(real, run.model.unregister(id, caller, kind, label));
        }

        /// Compares everything observable after a step, then forgets what the step deleted.
        fn check(run: *Self) !void {
            try run.subject.checkFired(run, run.model.fired.items);
            if (@hasDecl(Subject, "afterStep")) run.subject.afterStep();
            run.fired_total += run.model.fired.items.len;
            run.model.fired.clearRetainingCapacity();

            var bytes: u64 = 0;
            for (run.model.objects.items) |*object| {
                if (object.deleted) {
                    try run.expectStale(object.id);
                    continue;
                }
                bytes += object.size_bytes;
                const info = run.subject.info(object.id) catch |err| return run.mismatch("object {d}: info fails with {s}, the model has it live", .{ object.id, @errorName(err) });
                const expected = object.info();
                if (!std.meta.eql(info, expected)) return run.mismatch("object {d}: info {any}, the model {any}", .{ object.id, info, expected });

                var table_holdings_buffer: [participant_count + 1]Holding = undefined;
                const count = try run.subject.holdings(object.id, &table_holdings_buffer);
                if (count > participant_count) return run.mismatch("object {d}: {d} holdings", .{ object.id, count });
                const table_holdings = table_holdings_buffer[0..count];
                std.mem.sort(Holding, table_holdings, {}, holdingLessThan);
                var model_holdings_buffer: [participant_count]Holding = undefined;
                const model_holdings = object.holdings(&model_holdings_buffer);
                const same = table_holdings.len == model_holdings.len and for (table_holdings, model_holdings) |a, b| {
                    if (!std.meta.eql(a, b)) break false;
                } else true;
                if (!same) return run.mismatch("object {d}: holdings {any}, the model {any}", .{ object.id, table_holdings, model_holdings });
            }
            run.deleted_total += run.model.sweep(&run.graveyard);
            const live = run.model.objects.items.len;
            const objects_live = run.subject.objectsLive();
            if (objects_live != live) return run.mismatch("{d} objects live, the model {d}", .{ objects_live, live });
            const bytes_live = run.subject.bytesLive();
            if (bytes_live != bytes) return run.mismatch("{d} bytes live, the model {d}", .{ bytes_live, bytes });
            if (@hasDecl(Subject, "checkMore")) try run.subject.checkMore(run);
        }

        fn expectStale(run: *Self, id: Id) !void {
            const real = Outcome.of(run.subject.info(id));
            if (!real.eql(.{ .failed = error.StaleId })) return run.mismatch("object {d} was deleted, but info says {f}", .{ id, real });
        }

        fn holdingLessThan(_: void, a: Holding, b: Holding) bool {
            return a.sink < b.sink;
        }

        /// Every participant lets go of everything it holds, one step at a time, each checked;
        /// a lender claims back what it lent. Then nothing may be left.
        pub fn releaseEverything(run: *Self) !void {
            while (run.model.objects.items.len > 0) {
                run.step += 1;
                const step = for (run.model.objects.items) |*object| {
                    if (heldCount(object)) |held| break .{ object.id, held.kind, held.sink };
                } else return run.mismatch("{d} objects live that nobody holds", .{run.model.objects.items.len});
                const id, const kind, const caller = step;
                run.describe("at the end, {f} drops a {t} reference to {d}", .{ sinkName(caller), kind, id });
                switch (kind) {
                    .local => {
                        const real = Outcome.of(run.subject.release(id, caller));
                        try run.expectOutcome(real, try run.model.batch(&.{id}, caller, .local, .remove));
                    },
                    .submitted => {
                        const real = Outcome.of(run.subject.batch(.submitted, .remove, &.{id}, caller));
                        try run.expectOutcome(real, try run.model.batch(&.{id}, caller, .submitted, .remove));
                    },
                    .lineage => {
                        const real = Outcome.of(run.subject.batch(.lineage, .remove, &.{id}, caller));
                        try run.expectOutcome(real, try run.model.batch(&.{id}, caller, .lineage, .remove));
                    },
                    .lent => try run.expectOutcome(Outcome.of(run.subject.borrow(id, caller, caller)), run.model.borrow(id, caller, caller)),
                }
                try run.check();
            }
            try testing.expectEqual(@as(u64, 0), run.subject.objectsLive());
            try testing.expectEqual(@as(u64, 0), run.subject.bytesLive());
            try run.subject.expectEmpty();
        }

        fn heldCount(object: *ModelObject) ?struct { kind: Count, sink: Sink } {
            for (std.enums.values(Count)) |kind| {
                for (object.counts(kind), 0..) |count, participant| {
                    if (count > 0) return .{ .kind = kind, .sink = sinkOf(participant) };
                }
            }
            return null;
        }
    };
}

const ModelRun = Run(TableSubject);

test "model: the table agrees with a reference model of Ray's rules after every random step" {
    const seed = try envInteger("REFSCOPE_MODEL_SEED") orelse testing.random_seed;
    const operations = try envInteger("REFSCOPE_MODEL_OPS") orelse try scaledDefault(100_000);
    var prng = std.Random.DefaultPrng.init(seed);
    var run = try ModelRun.init(testing.allocator, prng.random(), seed, operations);
    defer run.deinit();

    while (run.step < operations) {
        run.step += 1;
        try run.randomStep();
    }
    try run.releaseEverything();
    // The run exercised deletion, stale ids, callbacks and every outcome but the
    // unreachable ones (limits, memory).
    if (operations >= 10_000) {
        try testing.expect(run.deleted_total > operations / 20);
        try testing.expect(run.fired_total > operations / 50);
        for (std.enums.values(OutcomeKind)) |kind| {
            if (kind != .other) try testing.expect(run.outcomes.get(kind) > operations / 1000);
        }
        try testing.expectEqual(@as(u64, 0), run.outcomes.get(.other));
    }
}

/// A `std.Random` whose bytes come from the fuzzer (`zig build test --fuzz`), or from a
/// corpus input in an ordinary test run: every choice of the model run is then the fuzzer's
/// to make, and the coverage it reaches guides the next input. The bytes are XORed with a
/// fixed keystream, a bijection that leaves the fuzzer in full control of every byte: an
/// exhausted input (zeros from then on) or a run of zeros would otherwise make
/// `uintLessThan`'s rejection loop spin for ever.
pub const SmithSource = struct {
    smith: *std.testing.Smith,
    keystream: std.Random.DefaultPrng = .init(0x5eed),

    fn fill(context: *anyopaque, buffer: []u8) void {
        const source: *SmithSource = @ptrCast(@alignCast(context));
        source.smith.bytes(buffer);
        for (buffer) |*byte| byte.* ^= source.keystream.random().int(u8);
    }

    pub fn random(source: *SmithSource) std.Random {
        return .{ .ptr = source, .fillFn = fill };
    }
};

/// The longest sequence one fuzz input drives: long enough to grow, reuse and shrink the
/// table, short enough for the fuzzer to try many inputs a second.
const fuzz_steps_max = 2000;

/// Fuzzes the model run on `Subject` (`zig build fuzz --fuzz` explores; a plain test run
/// replays the corpus): seeds generated here, then the inputs `checked_in`
/// (native/test/corpus). A corpus input is what `Smith` reads back: its first 8 bytes are
/// the number of steps (a little-endian u64 in range; any other value reads as 1), the rest
/// the choices' bytes. The seeds come from fixed seeds, the same in every run.
pub fn fuzz(comptime Subject: type, checked_in: []const []const u8) !void {
    const corpus_seeds = [_]u64{ 1, 2, 3, 5, 8, 13, 21, 34 };
    const corpus_steps = [corpus_seeds.len]u64{ fuzz_steps_max, 1500, 1000, 700, 400, 200, 100, 50 };
    var inputs: [corpus_seeds.len][4096]u8 = undefined;
    var corpus: std.ArrayList([]const u8) = .empty;
    defer corpus.deinit(testing.allocator);
    for (corpus_seeds, corpus_steps, &inputs, 0..) |seed, steps, *input, index| {
        std.mem.writeInt(u64, input[0..8], steps, .little);
        var prng = std.Random.DefaultPrng.init(seed);
        prng.random().bytes(input[8..]);
        try corpus.append(testing.allocator, input[0 .. 512 * (index + 1)]);
    }
    try corpus.appendSlice(testing.allocator, checked_in);
    try std.testing.fuzz({}, FuzzInput(Subject).run, .{ .corpus = corpus.items });
}

fn FuzzInput(comptime Subject: type) type {
    return struct {
        fn run(_: void, smith: *std.testing.Smith) anyerror!void {
            const steps = smith.valueRangeAtMost(u16, 1, fuzz_steps_max);
            var source: SmithSource = .{ .smith = smith };
            var model_run = try Run(Subject).init(testing.allocator, source.random(), 0, steps);
            defer model_run.deinit();
            while (model_run.step < steps) {
                model_run.step += 1;
                try model_run.randomStep();
            }
            try model_run.releaseEverything();
        }
    };
}

test "model fuzz: operation sequences chosen by the fuzzer agree with the model (zig build fuzz --fuzz explores; zig build test replays the corpus)" {
    try fuzz(TableSubject, &@import("fuzz_corpus").model);
}
