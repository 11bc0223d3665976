//! Model-based random tests (issue 5): the table checked step by step against a reference
//! model, and the counter driven at random by several threads.
//!
//! "model: ...": a seeded random sequence of operations by three sinks and native code
//! (`sink_none`) runs on a `Table` and on `Model`, a small model of Ray's rules written from
//! README's "Semantics" and tests/model.ts rather than from table.zig. After every step the
//! outcome, the callbacks the step released (in order, with their sink and object), the
//! live count and bytes, every live object's `Info` and holdings, and the staleness of every
//! id the step deleted must agree. Deleted ids (whose slots are mostly reused by then) and
//! forged ids are operated on too.
//!
//! "threads: ...": four threads (three with sinks, one acting as native code) create,
//! retain, release, lend to one another, borrow, take submitted and lineage references,
//! free, and register and unregister native callbacks at random on one counter with its
//! real dispatcher thread, on their own objects, on objects lent to them, and on a few
//! objects they all share; each callback counts its firings. At the end every reference is
//! released and nothing is live; every callback the counter accepted fired exactly once,
//! and every one it refused (after a free, after its object went out of scope) or gave back
//! (unregistered) never fired.
//!
//! Seeds default to the test runner's `--seed`, which `zig build test` picks at random and
//! shows in its report of a test that crashes (`zig build test --seed <n>` replays it); a
//! failing check prints its seed and the command that replays it. Environment:
//!   REFSCOPE_MODEL_SEED=<n>    the model test's seed
//!   REFSCOPE_MODEL_OPS=<n>     its number of random steps (default 100000); more to soak
//!   REFSCOPE_STRESS_SEED=<n>   the threaded test's seed (each thread derives its own)
//!   REFSCOPE_STRESS_OPS=<n>    its operations per thread (default 50000); more to soak
//!   REFSCOPE_STRESS_SCALE=<x>  multiplies both defaults: 0.05 under valgrind, say

const std = @import("std");
const assert = std.debug.assert;
const testing = std.testing;
const table_module = @import("table.zig");
const pool_module = @import("pool.zig");
const callback = @import("callback.zig");
const counter_module = @import("counter.zig");
const sync = @import("sync.zig");
const Latch = @import("testing.zig").Latch;

const Table = table_module.Table;
const Id = table_module.Id;
const IdParts = table_module.IdParts;
const Sink = table_module.Sink;
const Info = table_module.Info;
const Holding = table_module.Holding;
const CallbackKind = table_module.CallbackKind;
const Error = table_module.Error;
const List = pool_module.List;
const Counter = counter_module.Counter;
const sink_none = table_module.sink_none;

fn envInteger(name: []const u8) !?u64 {
    const text = testing.environ.getPosix(name) orelse return null;
    return std.fmt.parseInt(u64, text, 0) catch {
        std.debug.print("{s}={s}: not an integer\n", .{ name, text });
        return error.BadEnvironment;
    };
}

/// `default` times REFSCOPE_STRESS_SCALE (at least 1).
fn scaledDefault(default: u64) !u64 {
    const text = testing.environ.getPosix("REFSCOPE_STRESS_SCALE") orelse return default;
    const scale = std.fmt.parseFloat(f64, text) catch 0;
    if (!(scale > 0 and scale < 1e6)) {
        std.debug.print("REFSCOPE_STRESS_SCALE={s}: not a positive number\n", .{text});
        return error.BadEnvironment;
    }
    return @max(1, @as(u64, @intFromFloat(@round(@as(f64, @floatFromInt(default)) * scale))));
}

const SinkName = struct {
    sink: Sink,

    pub fn format(name: SinkName, writer: *std.Io.Writer) std.Io.Writer.Error!void {
        if (name.sink == sink_none) return writer.writeAll("native");
        return writer.print("sink {d}", .{name.sink});
    }
};

fn sinkName(sink: Sink) SinkName {
    return .{ .sink = sink };
}

// --- The model ---------------------------------------------------------------------------

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

const Count = enum { local, submitted, lent, lineage };
const Direction = enum {
    add,
    remove,

    fn opposite(direction: Direction) Direction {
        return if (direction == .add) .remove else .add;
    }
};
/// What an operation may name: objects in scope, or (removing lineage) every live one.
const Accept = enum { in_scope, live };

/// What an operation did: succeeded, answered (register, unregister), or failed.
const Outcome = union(enum) {
    ok,
    answer: bool,
    failed: Error,

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
const Fired = struct { label: u32, sink: Sink, object_id: Id };

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
    fn info(object: *const ModelObject) Info {
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

    fn find(model: *Model, id: Id) ?*ModelObject {
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
    fn missing(model: *const Model, id: Id) Error {
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

/// The ids of recently deleted objects, to operate on as stale ids.
const Graveyard = struct {
    ids: [32]Id = undefined,
    len: usize = 0,
    next: usize = 0,

    fn add(graveyard: *Graveyard, id: Id) void {
        graveyard.ids[graveyard.next] = id;
        graveyard.next = (graveyard.next + 1) % graveyard.ids.len;
        graveyard.len = @min(graveyard.len + 1, graveyard.ids.len);
    }
};

// --- The model test's driver -------------------------------------------------------------

/// The run alternates between growing the table up to `model_live_high` live objects and
/// shrinking it (no new objects or references) down to `model_live_low`: so objects are
/// deleted in numbers, their slots reused, and their ids left stale.
const model_live_high = 40;
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

const ModelRun = struct {
    table: Table,
    model: Model,
    /// What the table released during the current step.
    released: List = .{},
    random: std.Random,
    seed: u64,
    operations: u64,
    step: u64 = 0,
    description_buffer: [160]u8 = undefined,
    description: []const u8 = "",
    graveyard: Graveyard = .{},
    labels: u32 = 0,
    /// Whether the run is shrinking the table (see `model_live_high`).
    shrinking: bool = false,
    /// Totals, for a check that the run exercised what it should.
    outcomes: std.EnumArray(OutcomeKind, u64) = .initFill(0),
    deleted_total: u64 = 0,
    fired_total: u64 = 0,

    fn init(allocator: std.mem.Allocator, random: std.Random, seed: u64, operations: u64) ModelRun {
        return .{ .table = .init(allocator), .model = .{ .allocator = allocator }, .random = random, .seed = seed, .operations = operations };
    }

    /// Tears down even after a mismatch, leaving nothing for the leak check to report.
    fn deinit(run: *ModelRun) void {
        if (run.table.objectsLive() != 0) run.table.releaseAll(&run.released);
        run.released.clear(&run.table.callbacks);
        run.table.deinit();
        run.model.deinit();
    }

    fn mismatch(run: *ModelRun, comptime format: []const u8, args: anytype) error{ModelMismatch} {
        std.debug.print("\nmodel test: step {d} ({s}): " ++ format ++ "\n", .{ run.step, run.description } ++ args);
        std.debug.print("  seed {d}; replay up to this step with:\n  REFSCOPE_MODEL_SEED={d} REFSCOPE_MODEL_OPS={d} bash .ci/zig build test --summary all\n", .{ run.seed, run.seed, @min(run.step, run.operations) });
        return error.ModelMismatch;
    }

    fn describe(run: *ModelRun, comptime format: []const u8, args: anytype) void {
        run.description = std.fmt.bufPrint(&run.description_buffer, format, args) catch "(description too long)";
    }

    fn expectOutcome(run: *ModelRun, real: Outcome, expected: Outcome) !void {
        if (!real.eql(expected)) return run.mismatch("the table says {f}, the model {f}", .{ real, expected });
        run.outcomes.getPtr(.of(real)).* += 1;
    }

    fn chance(run: *ModelRun, probability: f64) bool {
        return run.random.float(f64) < probability;
    }

    fn anySink(run: *ModelRun) Sink {
        return sinkOf(run.random.uintLessThan(usize, participant_count));
    }

    fn anyObject(run: *ModelRun) ?*ModelObject {
        const objects = run.model.objects.items;
        if (objects.len == 0) return null;
        return &objects[run.random.uintLessThan(usize, objects.len)];
    }

    /// Mostly a live object's id; else a deleted one's, or one never issued.
    fn anyId(run: *ModelRun) Id {
        const roll = run.random.uintLessThan(u32, 100);
        if (roll < 85) {
            if (run.anyObject()) |object| return object.id;
        }
        if (roll < 96 and run.graveyard.len > 0) return run.graveyard.ids[run.random.uintLessThan(usize, run.graveyard.len)];
        return run.forgedId();
    }

    fn forgedId(run: *ModelRun) Id {
        return switch (run.random.uintLessThan(u32, 5)) {
            0 => 0,
            1 => std.math.nan(f64),
            2 => IdParts.encode(.{ .slot = IdParts.slot_count_max - 1, .generation = 1 }) + 0.5,
            3 => IdParts.encode(.{ .slot = IdParts.slot_count_max - 1, .generation = 1 }),
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
    fn holderOf(run: *ModelRun, object: *ModelObject, kind: Count) Sink {
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
    fn ownerOf(run: *ModelRun, object: ?*ModelObject) Sink {
        const known = object orelse return run.anySink();
        if (!run.chance(0.8)) return run.anySink();
        return if (run.chance(0.3)) sink_none else sinkOf(known.owner);
    }

    /// Mostly an object on which `caller` holds a count of `kind`; else any id.
    fn heldId(run: *ModelRun, caller: Sink, kind: Count) Id {
        return run.idWhere(caller, kind, 0.9);
    }

    /// Mostly an object on which someone holds a count of `kind`; else any id.
    fn heldByAnyoneId(run: *ModelRun, kind: Count) Id {
        return run.idWhere(null, kind, 0.85);
    }

    /// With `probability`, an object on which `caller` (anyone, if null) holds a count of
    /// `kind`, if there is one; else any id.
    fn idWhere(run: *ModelRun, caller: ?Sink, kind: Count, probability: f64) Id {
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
    fn holderOfId(run: *ModelRun, id: Id, kind: Count) Sink {
        const object = run.model.find(id) orelse return run.anySink();
        return run.holderOf(object, kind);
    }

    fn randomStep(run: *ModelRun) !void {
        const live = run.model.objects.items.len;
        if (live >= model_live_high) run.shrinking = true;
        if (live <= model_live_low) run.shrinking = false;
        const weights = if (run.shrinking) &shrinking_weights else &growing_weights;
        var roll = run.random.uintLessThan(u32, weightsTotal(weights));
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

    fn create(run: *ModelRun) !void {
        const owner = run.anySink();
        var contains_buffer: [links_max]Id = undefined;
        var lineage_buffer: [links_max]Id = undefined;
        const contains = run.links(&contains_buffer, 0.35);
        const lineage = run.links(&lineage_buffer, 0.25);
        const reconstructable = run.chance(0.3);
        const size_bytes = run.random.uintAtMost(u64, 100);
        run.describe("create by {f}, containing {any}, lineage {any}", .{ sinkName(owner), contains, lineage });
        const result = run.table.create(.{
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
    fn links(run: *ModelRun, buffer: *[links_max]Id, probability: f64) []const Id {
        if (!run.chance(probability)) return &.{};
        const count = 1 + run.random.uintLessThan(usize, links_max);
        for (buffer[0..count]) |*id| {
            const object = run.anyObject();
            id.* = if (object != null and run.chance(0.95)) object.?.id else run.anyId();
        }
        return buffer[0..count];
    }

    fn retain(run: *ModelRun) !void {
        const id = run.anyId();
        const caller = run.holderOfId(id, .local);
        run.describe("retain {d} by {f}", .{ id, sinkName(caller) });
        const real = Outcome.of(run.table.retain(id, caller));
        try run.expectOutcome(real, run.model.change(id, caller, .local, .add, .in_scope));
    }

    fn release(run: *ModelRun) !void {
        const id = run.heldByAnyoneId(.local);
        const caller = run.holderOfId(id, .local);
        run.describe("release {d} by {f}", .{ id, sinkName(caller) });
        const real = Outcome.of(run.table.release(id, caller, &run.released));
        try run.expectOutcome(real, try run.model.batch(&.{id}, caller, .local, .remove));
    }

    /// A batch of one to four changes of `kind` by one caller, ids possibly repeated.
    fn batch(run: *ModelRun, kind: Count, direction: Direction) !void {
        const caller = if (direction == .remove) run.holderOfId(run.heldByAnyoneId(kind), kind) else run.anySink();
        var ids_buffer: [4]Id = undefined;
        const ids = ids_buffer[0 .. 1 + run.random.uintLessThan(usize, ids_buffer.len)];
        for (ids) |*id| id.* = if (direction == .remove) run.heldId(caller, kind) else run.anyId();
        run.describe("{t} {t} {any} by {f}", .{ direction, kind, ids, sinkName(caller) });
        const real = Outcome.of(switch (kind) {
            .local => run.table.releaseBatch(ids, caller, &run.released),
            .submitted => switch (direction) {
                .add => run.table.submittedAdd(ids, caller),
                .remove => run.table.submittedRemove(ids, caller, &run.released),
            },
            .lineage => switch (direction) {
                .add => run.table.lineageAdd(ids, caller),
                .remove => run.table.lineageRemove(ids, caller, &run.released),
            },
            .lent => unreachable,
        });
        try run.expectOutcome(real, try run.model.batch(ids, caller, kind, direction));
    }

    fn lend(run: *ModelRun) !void {
        const id = run.heldByAnyoneId(.local);
        const caller = run.holderOfId(id, .local);
        run.describe("lend {d} by {f}", .{ id, sinkName(caller) });
        try run.expectOutcome(Outcome.of(run.table.lend(id, caller)), run.model.lend(id, caller));
    }

    fn borrow(run: *ModelRun) !void {
        const id = run.heldByAnyoneId(.lent);
        const lender = run.holderOfId(id, .lent);
        const caller = run.anySink();
        run.describe("borrow {d} lent by {f}, by {f}", .{ id, sinkName(lender), sinkName(caller) });
        try run.expectOutcome(Outcome.of(run.table.borrow(id, lender, caller)), run.model.borrow(id, lender, caller));
    }

    fn free(run: *ModelRun) !void {
        const id = run.anyId();
        const caller = run.ownerOf(run.model.find(id));
        run.describe("free {d} by {f}", .{ id, sinkName(caller) });
        const real = Outcome.of(run.table.free(id, caller, &run.released));
        try run.expectOutcome(real, try run.model.free(id, caller));
    }

    fn register(run: *ModelRun, id: Id, by: ?Sink, kind: CallbackKind) !void {
        const caller = by orelse run.ownerOf(run.model.find(id));
        run.labels += 1;
        const label = run.labels;
        run.describe("register {t} callback {d} on {d} by {f}", .{ kind, label, id, sinkName(caller) });
        const real = Outcome.of(run.table.register(id, caller, kind, tokenCallback(caller, label)));
        try run.expectOutcome(real, try run.model.register(id, caller, kind, label));
    }

    /// Mostly a callback still registered, by its registrant; else any label, id and caller.
    fn unregister(run: *ModelRun) !void {
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
        const real = Outcome.of(run.table.unregister(id, caller, kind, tokenCallback(caller, label)));
        try run.expectOutcome(real, run.model.unregister(id, caller, kind, label));
    }

    fn tokenCallback(caller: Sink, label: u32) callback.Callback {
        return .{ .sink = .{ .sink = caller, .token = label } };
    }

    /// Compares everything observable after a step, then forgets what the step deleted.
    fn check(run: *ModelRun) !void {
        var index: usize = 0;
        while (true) : (index += 1) {
            const node_index = run.released.pop(&run.table.callbacks);
            if (node_index == pool_module.nil) break;
            const node = run.table.callbacks.at(node_index).*;
            run.table.callbacks.destroy(node_index);
            const real: Fired = .{ .label = node.callback.sink.token, .sink = node.callback.sink.sink, .object_id = node.object_id };
            if (index >= run.model.fired.items.len) return run.mismatch("released callback #{d} {any}, the model nothing more", .{ index, real });
            const expected = run.model.fired.items[index];
            if (!std.meta.eql(real, expected)) return run.mismatch("released callback #{d} {any}, the model {any}", .{ index, real, expected });
        }
        if (index != run.model.fired.items.len) {
            return run.mismatch("released {d} callbacks, the model {d} (first missing: {any})", .{ index, run.model.fired.items.len, run.model.fired.items[index] });
        }
        run.fired_total += index;
        run.model.fired.clearRetainingCapacity();

        var bytes: u64 = 0;
        for (run.model.objects.items) |*object| {
            if (object.deleted) {
                try run.expectStale(object.id);
                continue;
            }
            bytes += object.size_bytes;
            const info = run.table.info(object.id) catch |err| return run.mismatch("object {d}: info fails with {s}, the model has it live", .{ object.id, @errorName(err) });
            const expected = object.info();
            if (!std.meta.eql(info, expected)) return run.mismatch("object {d}: info {any}, the model {any}", .{ object.id, info, expected });

            var table_holdings_buffer: [participant_count + 1]Holding = undefined;
            const count = try run.table.holdings(object.id, &table_holdings_buffer);
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
        if (run.table.objectsLive() != live) return run.mismatch("{d} objects live, the model {d}", .{ run.table.objectsLive(), live });
        if (run.table.bytesLive() != bytes) return run.mismatch("{d} bytes live, the model {d}", .{ run.table.bytesLive(), bytes });
    }

    fn expectStale(run: *ModelRun, id: Id) !void {
        const real = Outcome.of(run.table.info(id));
        if (!real.eql(.{ .failed = error.StaleId })) return run.mismatch("object {d} was deleted, but info says {f}", .{ id, real });
    }

    fn holdingLessThan(_: void, a: Holding, b: Holding) bool {
        return a.sink < b.sink;
    }

    /// Every participant lets go of everything it holds, one step at a time, each checked;
    /// a lender claims back what it lent. Then nothing may be left.
    fn releaseEverything(run: *ModelRun) !void {
        while (run.model.objects.items.len > 0) {
            run.step += 1;
            const step = for (run.model.objects.items) |*object| {
                if (heldCount(object)) |held| break .{ object.id, held.kind, held.sink };
            } else return run.mismatch("{d} objects live that nobody holds", .{run.model.objects.items.len});
            const id, const kind, const caller = step;
            run.describe("at the end, {f} drops a {t} reference to {d}", .{ sinkName(caller), kind, id });
            switch (kind) {
                .local => {
                    const real = Outcome.of(run.table.release(id, caller, &run.released));
                    try run.expectOutcome(real, try run.model.batch(&.{id}, caller, .local, .remove));
                },
                .submitted => {
                    const real = Outcome.of(run.table.submittedRemove(&.{id}, caller, &run.released));
                    try run.expectOutcome(real, try run.model.batch(&.{id}, caller, .submitted, .remove));
                },
                .lineage => {
                    const real = Outcome.of(run.table.lineageRemove(&.{id}, caller, &run.released));
                    try run.expectOutcome(real, try run.model.batch(&.{id}, caller, .lineage, .remove));
                },
                .lent => try run.expectOutcome(Outcome.of(run.table.borrow(id, caller, caller)), run.model.borrow(id, caller, caller)),
            }
            try run.check();
        }
        try testing.expectEqual(@as(u32, 0), run.table.objectsLive());
        try testing.expectEqual(@as(u64, 0), run.table.bytesLive());
        try testing.expectEqual(@as(usize, 0), run.table.callbacks.countInUse());
        for (&run.table.shards) |*shard| {
            try testing.expectEqual(@as(usize, 0), shard.holders.countInUse());
            try testing.expectEqual(@as(usize, 0), shard.links.countInUse());
            try testing.expectEqual(@as(usize, 0), shard.exts.countInUse());
        }
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

test "model: the table agrees with a reference model of Ray's rules after every random step" {
    const seed = try envInteger("REFSCOPE_MODEL_SEED") orelse testing.random_seed;
    const operations = try envInteger("REFSCOPE_MODEL_OPS") orelse try scaledDefault(100_000);
    var prng = std.Random.DefaultPrng.init(seed);
    var run = ModelRun.init(testing.allocator, prng.random(), seed, operations);
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

// --- Threads -------------------------------------------------------------------------------

const stress_thread_count = 4;
/// The first threads open a sink each; the others act as native code (`sink_none`).
const stress_sink_count = 3;
const stress_operations_default = 50_000;
/// Local references a thread holds before it stops creating objects.
const stress_held_max = 48;
const stress_leases_max = 8;
/// Objects every thread holds from its start to its end, and takes and drops more
/// references to often: contention on the same entries, and a race for the last release.
const stress_shared_count = 4;
/// Bounds every wait for another thread, to fail a hang rather than time a run: a minute,
/// plus 10 ms per operation of a thread (some 500 times what one takes in Debug).
fn stressTimeout(operations: u64) u64 {
    return 60 * std.time.ns_per_s +| operations *| (10 * std.time.ns_per_ms);
}

/// One registration of a native callback: its context, and how often it ran.
const Tally = struct {
    object_id: Id,
    kind: CallbackKind,
    /// Counts every tally's firings, for the test to wait on.
    firings: *Latch,
    fired: std.atomic.Value(u32) = .init(0),
    /// Runs given another object's id.
    misdirected: std.atomic.Value(u32) = .init(0),
    /// The counter accepted the registration. Written by the registering thread, read by
    /// the test once that thread has released everything.
    registered: bool = false,
    /// It must run once: registered and not unregistered.
    due: bool = false,

    fn run(id: f64, context: ?*anyopaque) callconv(.c) void {
        const tally: *Tally = @ptrCast(@alignCast(context.?));
        if (id != tally.object_id) _ = tally.misdirected.fetchAdd(1, .monotonic);
        _ = tally.fired.fetchAdd(1, .acq_rel);
        tally.firings.add();
    }

    fn callbackOf(tally: *Tally) callback.Callback {
        return .{ .native = .{ .function = run, .context = tally } };
    }
};

/// Points the threads and the test meet at. Every wait is bounded and ends early once a
/// thread has failed (`abort`).
const Phase = enum {
    /// Every thread has its sink: they start together, to overlap as much as they can.
    started,
    /// Every thread has stopped lending: what is in an inbox now is all it will get.
    sent,
    /// Every thread has released everything.
    released,
    /// The test has checked that nothing is live: the threads may close their sinks.
    checked,
};

const Phases = struct {
    /// How many have arrived at each phase.
    arrived: std.EnumArray(Phase, Latch),
    /// The thread whose failure aborted the run first; null if none did (or the test did).
    /// Written by that thread alone, and read by the test once it has joined every thread.
    culprit: ?usize = null,

    fn init(timeout_ns: u64) Phases {
        return .{ .arrived = .initFill(.{ .timeout_ns = timeout_ns }) };
    }

    fn arrive(phases: *Phases, phase: Phase) void {
        phases.arrived.getPtr(phase).add();
    }

    /// Ends every wait, on a failure of thread `culprit` (null: of the test itself). Others
    /// fail in turn (a thread that aborts closes its sink, releasing what it lent), so the
    /// first is the one to report.
    fn abort(phases: *Phases, culprit: ?usize) void {
        // The first phase's latch tells which abort came first; every latch is aborted.
        if (phases.arrived.getPtr(.started).abort()) phases.culprit = culprit;
        for (&phases.arrived.values) |*latch| _ = latch.abort();
    }

    fn wait(phases: *Phases, phase: Phase, count: u32) !void {
        return phases.arrived.getPtr(phase).waitFor(count);
    }
};

/// A local reference a thread holds, and the object's owner (to know whether the thread
/// may free it or register on it).
const Held = struct { id: Id, owner: Sink };

/// A reference lent to a thread: `lender` lent it, the receiver borrows it.
const Lent = struct { id: Id, lender: Sink, owner: Sink };

const Lease = struct {
    kind: enum { submitted, lineage },
    ids: [3]Id,
    len: usize,
};

const Inbox = struct {
    mutex: sync.Mutex = .{},
    lent: std.ArrayList(Lent) = .empty,
};

const StressOperation = enum {
    create,
    retain,
    release,
    release_batch,
    lend,
    receive,
    share,
    submitted,
    lineage,
    lease_release,
    free,
    register,
    register_late,
    unregister,
    inspect,
};

const stress_weights = std.enums.EnumArray(StressOperation, u32).init(.{
    .create = 12,
    .retain = 8,
    .release = 14,
    .release_batch = 4,
    .lend = 8,
    .receive = 8,
    .share = 8,
    .submitted = 4,
    .lineage = 3,
    .lease_release = 6,
    .free = 2,
    .register = 8,
    .register_late = 3,
    .unregister = 3,
    .inspect = 3,
});

const Stress = struct {
    counter: *Counter,
    seed: u64,
    operations: u64,
    /// Native objects lent to every thread by the test, and borrowed by each at its start.
    shared: [stress_shared_count]Id = undefined,
    phases: Phases,
    /// Callback firings, of every tally.
    firings: Latch,
    workers: [stress_thread_count]Worker = undefined,

    fn report(stress: *const Stress, comptime format: []const u8, args: anytype) void {
        std.debug.print("\nthreads test: " ++ format ++ "\n", args);
        std.debug.print("  seed {d}; run again with:\n  REFSCOPE_STRESS_SEED={d} REFSCOPE_STRESS_OPS={d} bash .ci/zig build test --summary all\n", .{ stress.seed, stress.seed, stress.operations });
    }

    /// The test's side of the end: once every thread released everything, nothing is live
    /// and every callback due has run. Returns how many are due.
    fn expectQuiescent(stress: *Stress) !u64 {
        try stress.phases.wait(.released, stress_thread_count);
        var registered: u64 = 0;
        var due: u64 = 0;
        for (&stress.workers) |*worker| {
            for (worker.tallies[0..worker.tally_count]) |*tally| {
                registered += @intFromBool(tally.registered);
                due += @intFromBool(tally.due);
            }
        }
        const stats = stress.counter.stats();
        if (stats.objects_live != 0 or stats.bytes_live != 0) {
            stress.report("{d} objects ({d} bytes) live after every thread released everything", .{ stats.objects_live, stats.bytes_live });
            return error.ObjectsLeftLive;
        }
        if (stats.callbacks_registered != registered or stats.callbacks_released != due) {
            stress.report("the counter registered {d} callbacks and released {d}; the threads saw {d} accepted, {d} due", .{ stats.callbacks_registered, stats.callbacks_released, registered, due });
            return error.CallbackCount;
        }
        stress.firings.waitFor(due) catch |err| {
            stress.report("{d} of {d} callbacks ran", .{ stress.firings.get(), due });
            return err;
        };
        return due;
    }

    /// After the counter's destruction (every queued callback has run): each callback ran
    /// exactly as often as it was due, with its own object's id.
    fn expectExactlyOnce(stress: *Stress, due: u64) !void {
        for (&stress.workers) |*worker| {
            for (worker.tallies[0..worker.tally_count], 0..) |*tally, index| {
                const fired = tally.fired.load(.acquire);
                const misdirected = tally.misdirected.load(.monotonic);
                if (fired == @intFromBool(tally.due) and misdirected == 0) continue;
                stress.report("thread {d}'s callback #{d} ({t} on {d}, accepted: {}, due: {}) ran {d} times, {d} with another id", .{ worker.index, index, tally.kind, tally.object_id, tally.registered, tally.due, fired, misdirected });
                return error.NotExactlyOnce;
            }
        }
        try testing.expectEqual(due, stress.firings.get());
    }
};

const Worker = struct {
    stress: *Stress,
    index: usize,
    prng: std.Random.DefaultPrng,
    /// Its own registrations, in a fixed array: the dispatcher reads them meanwhile.
    tallies: []Tally,
    tally_count: usize = 0,
    sink: Sink = sink_none,
    held: std.ArrayList(Held) = .empty,
    leases: std.ArrayList(Lease) = .empty,
    /// Objects it freed lately: an out-of-scope registration on one must be refused.
    freed: Graveyard = .{},
    /// What others lent it; they append, it takes.
    inbox: Inbox = .{},
    /// What it was doing, and how it failed: read by the test once it has exited.
    doing: []const u8 = "starting",
    failure: ?anyerror = null,

    fn main(worker: *Worker) void {
        worker.run() catch |err| worker.fail(err);
        if (worker.sink != sink_none) {
            // No wake, so no waker: the close finishes at once.
            if (worker.stress.counter.sinkClose(worker.sink)) |closed| {
                if (closed != .closed) worker.fail(error.SinkNotClosed);
            } else |err| worker.fail(err);
        }
        worker.held.deinit(testing.allocator);
        worker.leases.deinit(testing.allocator);
    }

    fn fail(worker: *Worker, err: anyerror) void {
        if (worker.failure == null) worker.failure = err;
        worker.stress.phases.abort(worker.index);
    }

    fn run(worker: *Worker) !void {
        const phases = &worker.stress.phases;
        if (worker.index < stress_sink_count) worker.sink = try worker.stress.counter.sinkOpen(null, null, false);
        for (worker.stress.shared) |id| try worker.counter().borrow(id, sink_none, worker.sink);
        phases.arrive(.started);
        try phases.wait(.started, stress_thread_count);
        for (0..worker.stress.operations) |_| try worker.randomStep();
        worker.doing = "waiting until nobody lends";
        phases.arrive(.sent);
        try phases.wait(.sent, stress_thread_count);
        try worker.receive();
        try worker.releaseEverything();
        worker.doing = "waiting for the check";
        phases.arrive(.released);
        try phases.wait(.checked, 1);
    }

    fn random(worker: *Worker) std.Random {
        return worker.prng.random();
    }

    fn chance(worker: *Worker, probability: f64) bool {
        return worker.random().float(f64) < probability;
    }

    fn counter(worker: *Worker) *Counter {
        return worker.stress.counter;
    }

    /// Native code owns everything it holds; a sink, only what it created.
    fn owns(worker: *const Worker, held: Held) bool {
        return worker.sink == sink_none or held.owner == worker.sink;
    }

    fn randomStep(worker: *Worker) !void {
        var roll = worker.random().uintLessThan(u32, stressWeightsTotal());
        const chosen = for (std.enums.values(StressOperation)) |operation| {
            if (roll < stress_weights.get(operation)) break operation;
            roll -= stress_weights.get(operation);
        } else unreachable;
        worker.doing = @tagName(chosen);
        switch (chosen) {
            .create => try worker.create(),
            .retain => try worker.retain(),
            .release => try worker.release(),
            .release_batch => try worker.releaseBatch(),
            .lend => try worker.lend(),
            .receive => try worker.receive(),
            .share => try worker.share(),
            .submitted => try worker.lease(.submitted),
            .lineage => try worker.lease(.lineage),
            .lease_release => try worker.leaseRelease(),
            .free => try worker.free(),
            .register => if (worker.pickHeld()) |index| {
                try worker.register(worker.held.items[index], if (worker.random().boolean()) .out_of_scope else .deleted);
            },
            .register_late => try worker.registerLate(),
            .unregister => try worker.unregister(),
            .inspect => try worker.inspect(),
        }
    }

    fn stressWeightsTotal() u32 {
        var total: u32 = 0;
        for (stress_weights.values) |weight| total += weight;
        return total;
    }

    fn pickHeld(worker: *Worker) ?usize {
        if (worker.held.items.len == 0) return null;
        return worker.random().uintLessThan(usize, worker.held.items.len);
    }

    /// Up to three ids of objects it holds (repeats allowed), with `probability`.
    fn heldIds(worker: *Worker, buffer: *[3]Id, probability: f64) []const Id {
        if (worker.held.items.len == 0 or !worker.chance(probability)) return &.{};
        const count = 1 + worker.random().uintLessThan(usize, buffer.len);
        for (buffer[0..count]) |*id| id.* = worker.held.items[worker.pickHeld().?].id;
        return buffer[0..count];
    }

    fn create(worker: *Worker) !void {
        if (worker.held.items.len >= stress_held_max) return worker.release();
        var contains_buffer: [3]Id = undefined;
        var lineage_buffer: [3]Id = undefined;
        const id = try worker.counter().create(worker.sink, .{
            .size_bytes = worker.random().uintAtMost(u64, 64),
            .reconstructable = worker.chance(0.3),
            .contains = worker.heldIds(&contains_buffer, 0.2),
            .lineage = worker.heldIds(&lineage_buffer, 0.15),
        });
        const held: Held = .{ .id = id, .owner = worker.sink };
        try worker.held.append(testing.allocator, held);
        if (worker.chance(0.6)) try worker.register(held, .out_of_scope);
        if (worker.chance(0.3)) try worker.register(held, .deleted);
    }

    fn retain(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.items[index];
        try worker.counter().retain(held.id, worker.sink);
        try worker.held.append(testing.allocator, held);
    }

    fn release(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.swapRemove(index);
        _ = try worker.counter().release(held.id, worker.sink);
    }

    fn releaseBatch(worker: *Worker) !void {
        var ids: [8]Id = undefined;
        const count = @min(worker.held.items.len, 1 + worker.random().uintLessThan(usize, ids.len));
        for (ids[0..count]) |*id| id.* = worker.held.swapRemove(worker.pickHeld().?).id;
        _ = try worker.counter().releaseBatch(ids[0..count], worker.sink);
    }

    /// Lends one of its references to another thread, which borrows it later.
    fn lend(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.swapRemove(index);
        try worker.counter().lend(held.id, worker.sink);
        var target = worker.random().uintLessThan(usize, stress_thread_count - 1);
        if (target >= worker.index) target += 1;
        const inbox = &worker.stress.workers[target].inbox;
        inbox.mutex.lock();
        defer inbox.mutex.unlock();
        try inbox.lent.append(testing.allocator, .{ .id = held.id, .lender = worker.sink, .owner = held.owner });
    }

    /// Borrows everything lent to it so far.
    fn receive(worker: *Worker) !void {
        var lent: std.ArrayList(Lent) = blk: {
            worker.inbox.mutex.lock();
            defer worker.inbox.mutex.unlock();
            const taken = worker.inbox.lent;
            worker.inbox.lent = .empty;
            break :blk taken;
        };
        defer lent.deinit(testing.allocator);
        for (lent.items) |item| {
            try worker.counter().borrow(item.id, item.lender, worker.sink);
            try worker.held.append(testing.allocator, .{ .id = item.id, .owner = item.owner });
        }
    }

    /// Takes one more reference to a shared object (it holds one until its end).
    fn share(worker: *Worker) !void {
        const id = worker.stress.shared[worker.random().uintLessThan(usize, stress_shared_count)];
        try worker.counter().retain(id, worker.sink);
        try worker.held.append(testing.allocator, .{ .id = id, .owner = sink_none });
    }

    fn lease(worker: *Worker, kind: @FieldType(Lease, "kind")) !void {
        if (worker.leases.items.len >= stress_leases_max) return worker.leaseRelease();
        var taken: Lease = .{ .kind = kind, .ids = undefined, .len = 0 };
        taken.len = worker.heldIds(&taken.ids, 1).len;
        if (taken.len == 0) return;
        switch (kind) {
            .submitted => try worker.counter().submittedAdd(taken.ids[0..taken.len], worker.sink),
            .lineage => try worker.counter().lineageAdd(taken.ids[0..taken.len], worker.sink),
        }
        try worker.leases.append(testing.allocator, taken);
    }

    fn leaseRelease(worker: *Worker) !void {
        if (worker.leases.items.len == 0) return;
        const taken = worker.leases.swapRemove(worker.random().uintLessThan(usize, worker.leases.items.len));
        _ = switch (taken.kind) {
            .submitted => try worker.counter().submittedRemove(taken.ids[0..taken.len], worker.sink),
            .lineage => try worker.counter().lineageRemove(taken.ids[0..taken.len], worker.sink),
        };
    }

    fn free(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.items[index];
        const result = worker.counter().free(held.id, worker.sink);
        if (!worker.owns(held)) {
            if (result) |_| return error.FreedByBorrower else |err| if (err != error.NotOwned) return err;
            return;
        }
        _ = try result;
        worker.freed.add(held.id);
    }

    fn newTally(worker: *Worker, id: Id, kind: CallbackKind) ?*Tally {
        if (worker.tally_count == worker.tallies.len) return null;
        const tally = &worker.tallies[worker.tally_count];
        tally.* = .{ .object_id = id, .kind = kind, .firings = &worker.stress.firings };
        worker.tally_count += 1;
        return tally;
    }

    /// Registers on an object it holds: refused to a borrower (NotOwned); always accepted
    /// for a deleted callback (the object is live); an out-of-scope callback only until the
    /// object is freed (by it, or by a native thread).
    fn register(worker: *Worker, held: Held, kind: CallbackKind) !void {
        const tally = worker.newTally(held.id, kind) orelse return;
        const result = worker.counter().register(held.id, worker.sink, kind, tally.callbackOf());
        if (!worker.owns(held)) {
            if (result) |_| return error.RegisteredByBorrower else |err| if (err != error.NotOwned) return err;
            return;
        }
        const registered = try result;
        tally.registered = registered;
        tally.due = registered;
        if (kind == .deleted and !registered) return error.HeldObjectRefusedRegistration;
        const freed = std.mem.indexOfScalar(Id, worker.freed.ids[0..worker.freed.len], held.id) != null;
        if (kind == .out_of_scope and registered and freed) return error.RegisteredAfterFree;
    }

    /// Finds a registration of its own that has run, and registers on that object again:
    /// its object is freed, out of scope or deleted, so the counter must refuse.
    fn registerLate(worker: *Worker) !void {
        const ran = worker.pickTally(hasRun) orelse return;
        // A deleted callback ran: the object is gone, so any kind is refused. An
        // out-of-scope one ran: the object may still be live (lineage-pinned, or freed).
        const kind: CallbackKind = if (ran.kind == .deleted and worker.random().boolean()) .deleted else .out_of_scope;
        const tally = worker.newTally(ran.object_id, kind) orelse return;
        if (try worker.counter().register(ran.object_id, worker.sink, kind, tally.callbackOf())) {
            tally.registered = true;
            tally.due = true;
            return error.RegisteredAfterOutOfScope;
        }
    }

    fn hasRun(tally: *const Tally) bool {
        return tally.due and tally.fired.load(.acquire) > 0;
    }

    fn isDue(tally: *const Tally) bool {
        return tally.due;
    }

    /// Removes a registration still due: if the counter still had it, it must never run;
    /// if not, it has left the table and must run once.
    fn unregister(worker: *Worker) !void {
        const tally = worker.pickTally(isDue) orelse return;
        if (try worker.counter().unregister(tally.object_id, worker.sink, tally.kind, tally.callbackOf())) tally.due = false;
    }

    /// A few random tries at one of its registrations that satisfies `matches`.
    fn pickTally(worker: *Worker, comptime matches: fn (*const Tally) bool) ?*Tally {
        if (worker.tally_count == 0) return null;
        for (0..8) |_| {
            const tally = &worker.tallies[worker.random().uintLessThan(usize, worker.tally_count)];
            if (matches(tally)) return tally;
        }
        return null;
    }

    /// An object it holds is live, in scope, and owned by whom it was told.
    fn inspect(worker: *Worker) !void {
        const index = worker.pickHeld() orelse return;
        const held = worker.held.items[index];
        const info = try worker.counter().info(held.id);
        if (info.out_of_scope) return error.HeldObjectOutOfScope;
        if (info.owner != held.owner) return error.WrongOwner;
    }

    fn releaseEverything(worker: *Worker) !void {
        worker.doing = "releasing everything";
        while (worker.leases.items.len > 0) try worker.leaseRelease();
        while (worker.held.items.len > 0) {
            if (worker.chance(0.2)) try worker.releaseBatch() else try worker.release();
        }
        for (worker.stress.shared) |id| _ = try worker.counter().release(id, worker.sink);
    }
};

test "threads: lending, borrowing and releasing at random, every callback runs exactly once" {
    const seed = try envInteger("REFSCOPE_STRESS_SEED") orelse testing.random_seed;
    const operations = try envInteger("REFSCOPE_STRESS_OPS") orelse try scaledDefault(stress_operations_default);
    // Each operation registers at most two callbacks.
    const tally_capacity = 2 * operations + 2;

    const timeout_ns = stressTimeout(operations);
    var stress: Stress = .{
        .counter = undefined,
        .seed = seed,
        .operations = operations,
        .phases = .init(timeout_ns),
        .firings = .{ .timeout_ns = timeout_ns },
    };
    var workers_ready: usize = 0;
    defer for (stress.workers[0..workers_ready]) |*worker| {
        testing.allocator.free(worker.tallies);
        worker.inbox.lent.deinit(testing.allocator);
    };
    for (&stress.workers, 0..) |*worker, index| {
        worker.* = .{
            .stress = &stress,
            .index = index,
            .prng = .init(seed +% index *% 0x9e3779b97f4a7c15),
            .tallies = try testing.allocator.alloc(Tally, tally_capacity),
        };
        workers_ready += 1;
    }
    // Destroyed before the tallies are freed: closing runs the callbacks still registered.
    const counter = try Counter.open(testing.allocator);
    stress.counter = counter;
    var destroyed = false;
    defer if (!destroyed) counter.destroy() catch unreachable;
    // The test lends each shared object once to every thread, and keeps no reference.
    for (&stress.shared) |*id| {
        id.* = try counter.create(sink_none, .{ .size_bytes = 8 });
        for (1..stress_thread_count) |_| try counter.retain(id.*, sink_none);
        for (0..stress_thread_count) |_| try counter.lend(id.*, sink_none);
    }

    var threads: [stress_thread_count]std.Thread = undefined;
    var running: usize = 0;
    errdefer {
        stress.phases.abort(null);
        for (threads[0..running]) |thread| thread.join();
    }
    for (&threads, &stress.workers) |*thread, *worker| {
        thread.* = try std.Thread.spawn(.{}, Worker.main, .{worker});
        running += 1;
    }

    const quiescent = stress.expectQuiescent();
    if (quiescent) |_| stress.phases.arrive(.checked) else |_| stress.phases.abort(null);
    for (threads) |thread| thread.join();
    running = 0;
    // Destroying joins the dispatcher: whatever was still queued has run.
    try counter.destroy();
    destroyed = true;

    if (stress.phases.culprit) |index| {
        const worker = &stress.workers[index];
        stress.report("thread {d} ({f}) failed while {s}: {s}", .{ index, sinkName(worker.sink), worker.doing, @errorName(worker.failure.?) });
        return worker.failure.?;
    }
    const due = try quiescent;
    try stress.expectExactlyOnce(due);
}
