//! The reference table: one entry per object, its reference counts, and its callbacks.
//!
//! Semantics follow Ray's `ReferenceCounter` (`reference_counter.cc`), with the table shared
//! by every sink of a counter instead of one table per worker:
//!
//! - An object is *owned* by the sink that created it. The owner's local and submitted-task
//!   counts live in the entry; any other sink that holds references is a *borrower* with a
//!   holder record of its own (so its references can be released on its behalf if it dies).
//!   `sink_none` (native code) always acts for the owner.
//! - In scope while any count is non-zero: the owner's local and submitted references,
//!   borrowers' references, references lent to another sink and not yet borrowed, owned
//!   containers that contain it, and, for objects that cannot be reconstructed, lineage
//!   references (Ray: `OutOfScope`).
//! - When it goes out of scope, the objects it contains are processed first (their
//!   callbacks leave before its own), then its out-of-scope-or-freed callbacks leave, once.
//!   It is deleted once its lineage count is also zero (Ray: `ShouldDelete`): the objects
//!   its lineage pins are released first (and theirs, in turn), then its reference-deleted
//!   callbacks leave and the entry is erased. Out of scope but lineage-pinned, it refuses
//!   new out-of-scope registrations and new references.
//! - An explicit free of an owned object hands its out-of-scope callbacks over at once and
//!   keeps the entry until its references drop.
//!
//! Containment and lineage always point from a newer object to older ones, so they form a
//! DAG. Settling walks it depth first, without recursion: on a fixed-size stack of
//! `depth_max + 1` frames (`SettleStack`), enough because `create` refuses deeper chains.
//!
//! Callbacks that leave are appended to a caller-supplied list, which the counter routes to
//! the queue; the table never runs one, knows nothing of threads, and never allocates on a
//! path that releases references. The counter's locks guard it: each shard by its own, the
//! callback pool by the queue's, and a settle that follows links holds every shard's. The
//! exception is an owner's count that stays above zero, and the last release of an object
//! with nothing but that count: threads change those with no lock (see "Counts without the
//! lock").
//!
//! Ids are integer-valued doubles (`Id`), the fast path of both JS runtimes' FFI. An id
//! packs a slot and the slot's generation, so a stale id (its object deleted, the slot
//! perhaps reused) or a forged one is told apart from a live one and can never reach
//! another object; a slot whose generation is exhausted is retired.
//!
//! A shard that has emptied and stays empty gives its memory back (`trimShard`, called in
//! rounds by the counter's dispatcher), keeping only each slot's generation: see "Giving
//! memory back" below.

const std = @import("std");
const assert = std.debug.assert;
const pool_module = @import("pool.zig");
const callback_module = @import("callback.zig");
const chunks_module = @import("chunks.zig");

const List = pool_module.List;
const Index = pool_module.Index;
const nil = pool_module.nil;

/// An object id: an integer-valued double in [2^24, 2^53). See `IdParts` for the layout.
pub const Id = f64;

/// A sink index, `sink_none` (native code, acting for the owner), or
/// `sink_gone` (the owner of an object whose owning sink has closed).
pub const Sink = u32;
pub const sink_none: Sink = std.math.maxInt(u32);
pub const sink_gone: Sink = std.math.maxInt(u32) - 1;

/// Nesting and lineage chains longer than this are refused: settling keeps one frame per
/// level of a chain, in a stack of fixed size (`SettleStack`).
pub const depth_max = 1000;

pub const Error = error{
    /// Not an id this table ever issued: not an integer, out of range, or ahead of its slot.
    InvalidId,
    /// The object has been deleted, or (for new references) is out of scope.
    StaleId,
    /// Releasing a count that the caller does not hold.
    NoReference,
    /// Only the object's owner may do this (free, register, unregister).
    NotOwned,
    /// A count, the number of slots, the byte total or the nesting depth would overflow.
    Limit,
    OutOfMemory,
};

/// Layout of an id: `generation << slot_bits | slot`, 53 bits in all, generation ≥ 1 (so
/// that 0 and every small integer are invalid ids, which catches many mistakes).
pub const IdParts = struct {
    slot: u32,
    generation: u32,

    pub const slot_bits = 24;
    pub const generation_bits = 29;
    pub const slot_count_max: u32 = 1 << slot_bits;
    pub const generation_max: u32 = (1 << generation_bits) - 1;

    comptime {
        assert(slot_bits + generation_bits == std.math.floatMantissaBits(f64) + 1);
    }

    pub fn encode(parts: IdParts) Id {
        assert(parts.slot < slot_count_max);
        assert(parts.generation >= 1);
        assert(parts.generation <= generation_max);
        const value = (@as(u64, parts.generation) << slot_bits) | parts.slot;
        return @floatFromInt(value);
    }

    /// Returns null for anything that is not the encoding of some slot and generation.
    pub fn decode(id: Id) ?IdParts {
        // The negated comparison also rejects NaN.
        if (!(id >= 0 and id < 9007199254740992.0)) return null;
        const value: u64 = @intFromFloat(id);
        if (@as(f64, @floatFromInt(value)) != id) return null;
        const generation: u32 = @intCast(value >> slot_bits);
        if (generation == 0) return null;
        return .{ .slot = @intCast(value & (slot_count_max - 1)), .generation = generation };
    }
};

/// Which callbacks: Ray's out-of-scope-or-freed callbacks, or its reference-deleted ones.
pub const CallbackKind = enum(u32) { out_of_scope = 0, deleted = 1 };

pub const CreateOptions = struct {
    size_bytes: u64 = 0,
    owner: Sink = sink_none,
    /// Lineage references only delay its deletion instead of keeping it in scope.
    reconstructable: bool = false,
    /// Objects it contains (repeats count once): each stays in scope while it is.
    contains: []const Id = &.{},
    /// Objects its lineage depends on (repeats count once): each gets a lineage reference
    /// until this object is deleted.
    lineage: []const Id = &.{},
    /// The shard to create it in (the creating thread's, for locality).
    shard: u32 = 0,
};

/// A copy of one entry's state.
pub const Info = struct {
    owner: Sink,
    refs_local: u32,
    refs_submitted: u32,
    /// Borrowers' local and submitted references.
    refs_borrowed: u32,
    refs_lent: u32,
    refs_lineage: u32,
    contained_in_owned: u32,
    borrowers: u32,
    callbacks_pending: u32,
    deleted_callbacks_pending: u32,
    freed: bool,
    out_of_scope: bool,
    reconstructable: bool,
    size_bytes: u64,
};

/// One sink's references on an object (`refscope_holding` in the C header).
pub const Holding = extern struct {
    sink: Sink,
    refs_local: u32 = 0,
    refs_submitted: u32 = 0,
    refs_lent: u32 = 0,
    refs_lineage: u32 = 0,
};

const Holder = struct {
    holding: Holding,
    next: Index = nil,

    fn isEmpty(holder: *const Holder) bool {
        const holding = holder.holding;
        return holding.refs_local == 0 and holding.refs_submitted == 0 and
            holding.refs_lent == 0 and holding.refs_lineage == 0;
    }
};

/// A link to another object (contained, or a lineage dependency), which it keeps live.
const Link = struct { slot: u32, next: Index = nil };

/// What only some objects need, kept out of the entry so plain objects stay small.
const Ext = struct {
    holders: List = .{},
    contains: List = .{},
    lineage: List = .{},
    deleted_callbacks: List = .{},
    /// Sums over the holders, so that a scope check is O(1).
    refs_borrowed: u32 = 0,
    refs_lent: u32 = 0,
    refs_lineage: u32 = 0,
    contained_in_owned: u32 = 0,
    /// The longest chain of links out of the object: 0 without links, else one more than
    /// any linked object's (set by `create`, checked by `linkAll` and `settleLinked`), and
    /// never more than `depth_max`.
    depth: u32 = 0,
    next: Index = nil,
};

/// The part of an entry that threads change without the shard's lock (see "Counts without
/// the lock" below), in one atomic word: the slot's generation and the owner's local count.
const Word = packed struct(u64) {
    /// The owner's local references (`sink_none` counts here too, acting for the owner).
    refs_local: u32 = 0,
    /// The generation of the slot's current or most recent object (0: never used, or given
    /// back: no id names it).
    generation: u29 = 0,
    /// The owner is still the one `create` set. Cleared once, for good, when the owner
    /// changes (its sink ends, or the counter closes); set again only by the next object in
    /// the slot, with a new generation. So a word that still holds this bit and its
    /// generation has had the same owner all along.
    fast: bool = false,
    /// Nothing but the owner's local count can keep the object in scope, and going out of
    /// scope hands no callback over (no `Ext`, no submitted count, no callback): its last
    /// release may then be made without the lock (`releaseFast`). Set by `create`, cleared
    /// for good under the lock when any of that changes (`unplain`).
    plain: bool = false,
    /// Released for the last time without the lock, and not yet erased: out of scope and
    /// stale for every lookup, on its way to (or in) its chunk's list of slots to erase
    /// (`Shard.remote`), where `reap` finds it. Set only from a word that was `plain`.
    dying: bool = false,

    comptime {
        assert(@bitSizeOf(@FieldType(Word, "generation")) == IdParts.generation_bits);
    }
};

const Entry = struct {
    /// Atomic (`load`, `store`, `update`): threads change the owner's count without the lock.
    word: std.atomic.Value(u64) = .init(0),
    flags: Flags,
    /// The owning sink, compacted (see `ownerSink`): every entry pays for this field. Read
    /// atomically: `retainFast` reads it without the lock.
    owner: u16 = owner_native,
    refs_submitted: u32 = 0,
    callbacks: List = .{},
    /// An `Ext` index, or `nil`. While the slot is free: the next free slot.
    ext: Index = nil,
    size_bytes: u64 = 0,

    const Flags = packed struct(u8) {
        state: enum(u2) { live, free, retired },
        freed: bool = false,
        out_of_scope: bool = false,
        reconstructable: bool = false,
        /// Scratch mark for de-duplicating a create's id lists; always false between calls.
        marked: bool = false,
        _: u2 = 0,
    };

    const owner_native: u16 = std.math.maxInt(u16);
    const owner_gone: u16 = std.math.maxInt(u16) - 1;

    fn ownerSink(entry: *const Entry) Sink {
        return switch (@atomicLoad(u16, &entry.owner, .monotonic)) {
            owner_native => sink_none,
            owner_gone => sink_gone,
            else => |owner| owner,
        };
    }

    fn setOwner(entry: *Entry, sink: Sink) void {
        const owner: u16 = switch (sink) {
            sink_none => owner_native,
            sink_gone => owner_gone,
            else => @intCast(sink),
        };
        @atomicStore(u16, &entry.owner, owner, .monotonic);
    }

    fn load(entry: *const Entry) Word {
        return @bitCast(entry.word.load(.monotonic));
    }

    /// For the lock's holder: other threads may be changing the count (never across zero),
    /// so a store here discards what they did meanwhile. Only for a count that every
    /// reference of the owner's loses at once (its end, the counter's close) or for a slot
    /// no object is in.
    fn store(entry: *Entry, word: Word) void {
        entry.word.store(@bitCast(word), .monotonic);
    }

    /// Sets every field but `word` (left as it is) to an empty slot's: the fields that only
    /// the lock's holder reads, written one by one, since threads may read `word` meanwhile.
    fn clearFields(entry: *Entry, flags: Flags) void {
        entry.flags = flags;
        entry.setOwner(sink_none);
        entry.refs_submitted = 0;
        entry.callbacks = .{};
        entry.ext = nil;
        entry.size_bytes = 0;
    }

    comptime {
        // The per-object budget (issue: ≤ 64 bytes per live object, allocation included).
        assert(@sizeOf(Entry) <= 40);
    }
};

const Count = enum { local, submitted, lent, lineage };

/// An object being settled, and how far settling it has got.
const SettleFrame = struct {
    slot: u32,
    step: Step,

    const Step = enum(u8) {
        /// Out of scope: settling the objects it contains, one link at a time.
        contained,
        /// Out of scope and unpinned by lineage: settling its lineage dependencies, one
        /// link at a time, before erasing it.
        lineage,
    };
};

/// The objects being settled, the one to go on with last: one per level of a nesting or
/// lineage chain. Fixed-size, because a release must never allocate (it could then fail
/// half way); `depth_max` bounds the chains, so it never overflows.
const SettleStack = struct {
    frames: [depth_max + 1]SettleFrame = undefined,
    count: u32 = 0,

    fn push(stack: *SettleStack, frame: SettleFrame) void {
        assert(stack.count < stack.frames.len);
        stack.frames[stack.count] = frame;
        stack.count += 1;
    }

    fn top(stack: *SettleStack) ?*SettleFrame {
        if (stack.count == 0) return null;
        return &stack.frames[stack.count - 1];
    }

    fn pop(stack: *SettleStack) void {
        assert(stack.count > 0);
        stack.count -= 1;
    }
};

/// A part of the table with its own storage and statistics. Each shard is guarded by its
/// own mutex (held by the counter), so threads working on objects in different shards run
/// in parallel; an object lives in the shard of the thread that created it. A slot's low
/// `shard_bits` name its shard.
pub const Shard = struct {
    /// Aligned to a cache line, as is the whole shard: threads on neighbouring shards must
    /// not write the same line (their free-list heads and counters, say). Entries never
    /// move (`chunks.zig`): threads reach them without the lock.
    entries: Entries align(std.atomic.cache_line) = .{},
    /// A stack of free slots; reusing the most recently freed slot keeps the shard dense.
    free_head: u32 = nil,
    exts: pool_module.Pool(Ext) = .{},
    holders: pool_module.Pool(Holder) = .{},
    /// Links out of this shard's objects (to objects in any shard).
    links: pool_module.Pool(Link) = .{},

    objects_live: u32 = 0,
    bytes_live: u64 = 0,
    objects_created: u64 = 0,
    callbacks_registered: u64 = 0,
    /// Callbacks that have left this shard's objects (to be run or delivered).
    callbacks_released: u64 = 0,
    /// The generations of the slots at and past `entries.len` whose entries were
    /// given back (`Table.trimShard`): an id naming one of them stays stale, and the slot,
    /// when the shard grows again, resumes from its generation.
    past_generations: std.ArrayList(u32) = .empty,
    /// The shard's last object was erased, and its memory may be given back
    /// (`Table.trimShard`) if it stays empty.
    trim_pending: bool = false,
    /// `objects_created` when a round of `trimShard` last found the shard empty: unchanged at
    /// the next round, it has stayed empty since.
    trim_watch: u64 = 0,
    /// Slots released for the last time without the lock (`dying`), one list per chunk,
    /// linked through their entries' `ext`: pushed by any thread, taken whole by `reap`
    /// under the lock. Per chunk, so that threads releasing different parts of the shard do
    /// not write one line.
    remote: [Entries.chunk_count_max]std.atomic.Value(u32) = @splat(.init(nil)),
    /// Some `remote` list may be non-empty: set by a pusher that finds it clear, cleared by
    /// `reap`. On a line of its own: it is read by every pusher.
    remote_pending: std.atomic.Value(bool) align(std.atomic.cache_line) = .init(false),
    /// Dying slots whose object was already counted out by a scan (`releaseAll`), waiting
    /// for `reap` to free the slot. The shard keeps its memory while there are any.
    remote_counted: u32 = 0,

    fn deinit(shard: *Shard, allocator: std.mem.Allocator) void {
        assert(shard.objects_live == 0);
        assert(shard.exts.countInUse() == 0);
        assert(shard.holders.countInUse() == 0);
        assert(shard.links.countInUse() == 0);
        shard.entries.deinit();
        shard.past_generations.deinit(allocator);
        shard.exts.deinit(allocator);
        shard.holders.deinit(allocator);
        shard.links.deinit(allocator);
    }
};

pub const shard_bits = 3;
pub const shard_count = 1 << shard_bits;
/// Slots per shard: the id's slot bits, less the shard bits.
const shard_slots_max: u32 = IdParts.slot_count_max >> shard_bits;
/// A shard's entries: chunks of 4096 (160 KiB of address space, whose pages are touched as
/// slots are taken), 512 of them for `shard_slots_max`.
const entry_chunk_len = 4096;
const Entries = chunks_module.Chunked(Entry, entry_chunk_len, shard_slots_max / entry_chunk_len);
/// `Table.trim_min`'s default: entries (40 bytes each) or pool nodes below which an emptied
/// shard keeps its memory for its next objects.
pub const trim_min_default = 4096;

pub const Table = struct {
    allocator: std.mem.Allocator,
    shards: [shard_count]Shard = @splat(.{}),
    /// Shared by every shard: callbacks move between objects and the queue. Guarded by
    /// the queue's lock, not a shard's.
    callbacks: callback_module.Pool = .{},
    /// Scratch for `settleLinked`, kept here rather than on the call stack of each release.
    /// Shared by every shard, and used only by a settle that follows links, which holds
    /// every shard (`Follow.global`); empty between calls.
    settle_stack: SettleStack = .{},
    /// Entries or pool nodes below which an emptied shard (or the empty callback pool) keeps
    /// its memory: a small table is not worth giving back. Tests lower it to trim at every
    /// chance.
    trim_min: u32 = trim_min_default,
    /// Some shard's last object was erased since the last round of `trimShard` (set by the
    /// erasing thread under its shard's lock, cleared by the round).
    trim_wanted: std.atomic.Value(bool) = .init(false),
    /// Whether threads may change counts without the shard's lock (`retainFast`,
    /// `releaseFast`, which the counter calls only then). False for a counter opened with
    /// `REFSCOPE_LOCKED_COUNTS`: every count change then takes the lock, as before those
    /// paths existed. Set before the table is shared.
    lock_free: bool = true,
    /// `trim_wanted` was just set: whoever takes this signals the counter's dispatcher,
    /// which runs the rounds (`takeTrimSignal`).
    trim_signal: std.atomic.Value(bool) = .init(false),

    pub fn init(allocator: std.mem.Allocator) Table {
        return .{ .allocator = allocator };
    }

    /// Frees the table's memory. Every object must be gone (see `releaseAll`), and every
    /// callback node back in its pool: the queue owns those still in flight.
    pub fn deinit(table: *Table) void {
        assert(table.callbacks.countInUse() == 0);
        for (&table.shards) |*shard| shard.deinit(table.allocator);
        table.callbacks.deinit(table.allocator);
        table.* = undefined;
    }

    pub fn shardIndexOf(slot: u32) u32 {
        return slot & (shard_count - 1);
    }

    fn shardOf(table: *Table, slot: u32) *Shard {
        return &table.shards[shardIndexOf(slot)];
    }

    fn entryAt(table: *Table, slot: u32) *Entry {
        return table.shardOf(slot).entries.at(slot >> shard_bits);
    }

    /// Live objects in every shard. The caller holds every shard.
    pub fn objectsLive(table: *const Table) u32 {
        var sum: u32 = 0;
        for (&table.shards) |*shard| sum += shard.objects_live;
        return sum;
    }

    pub fn bytesLive(table: *const Table) u64 {
        var sum: u64 = 0;
        // Saturating: each shard checks its own total against overflow, not their sum.
        for (&table.shards) |*shard| sum +|= shard.bytes_live;
        return sum;
    }

    pub fn objectsCreated(table: *const Table) u64 {
        var sum: u64 = 0;
        for (&table.shards) |*shard| sum += shard.objects_created;
        return sum;
    }

    pub fn callbacksRegistered(table: *const Table) u64 {
        var sum: u64 = 0;
        for (&table.shards) |*shard| sum += shard.callbacks_registered;
        return sum;
    }

    pub fn callbacksReleased(table: *const Table) u64 {
        var sum: u64 = 0;
        for (&table.shards) |*shard| sum += shard.callbacks_released;
        return sum;
    }

    /// Creates an object in `options.shard`, owned by `options.owner`, holding one local
    /// reference. The caller holds that shard, or every shard when the object contains or
    /// depends on others. `error.Limit` when the shard is full: try another.
    pub fn create(table: *Table, options: CreateOptions) Error!Id {
        const shard = &table.shards[options.shard];
        // Slots released without the lock come back when a slot is needed, a list (at most a
        // chunk's) at a time, so that no create stalls on a whole burst of them: `stats`,
        // `snapshot` and the dispatcher's rounds take the rest.
        if (shard.free_head == nil) _ = table.reapLists(options.shard, .one_list);
        const bytes_live = std.math.add(u64, shard.bytes_live, options.size_bytes) catch blk: {
            // The bytes of objects released without the lock may still be counted.
            table.reap(options.shard);
            break :blk std.math.add(u64, shard.bytes_live, options.size_bytes) catch return error.Limit;
        };
        // Validate every referenced object and measure what to allocate, changing nothing
        // (but the scratch marks, which are always cleared) until nothing can fail.
        var plan: Plan = .{};
        defer table.unmark(options);
        try table.planLinks(options.contains, .contains, &plan);
        try table.planLinks(options.lineage, .lineage, &plan);
        const needs_ext = plan.links > 0;
        // Only where links are planned: a create without links holds just its own shard.
        for (&table.shards, plan.exts) |*other, count| {
            if (count > 0) try other.exts.reserve(table.allocator, count);
        }
        try shard.exts.reserve(table.allocator, plan.exts[options.shard] + @intFromBool(needs_ext));
        try shard.links.reserve(table.allocator, plan.links);
        if (shard.free_head == nil) try shard.entries.reserveOne();

        const slot = table.takeSlot(options.shard);
        const entry = table.entryAt(slot);
        const generation = entry.load().generation + 1;
        entry.clearFields(.{ .state = .live, .reconstructable = options.reconstructable });
        entry.size_bytes = options.size_bytes;
        entry.setOwner(options.owner);
        // Last, and release: a thread that reads this word without the lock then sees the
        // owner written above (`changeFast`).
        entry.word.store(@bitCast(Word{ .refs_local = 1, .generation = @intCast(generation), .fast = true, .plain = !needs_ext }), .release);
        if (needs_ext) {
            assert(plan.depth + 1 <= depth_max);
            entry.ext = shard.exts.create(table.allocator, .{ .depth = plan.depth + 1 }) catch unreachable;
            table.linkAll(slot, options.contains, .contains);
            table.linkAll(slot, options.lineage, .lineage);
        }
        shard.objects_live += 1;
        shard.objects_created += 1;
        shard.bytes_live = bytes_live;
        return IdParts.encode(.{ .slot = slot, .generation = generation });
    }

    pub fn retain(table: *Table, id: Id, caller: Sink) Error!void {
        try table.increment(try table.lookupInScope(id), caller, .local);
    }

    /// Drops one of the caller's local references; may send the object out of scope.
    pub fn release(table: *Table, id: Id, caller: Sink, released: *List) Error!void {
        const slot = try table.lookupInScope(id);
        try table.decrement(slot, caller, .local);
        table.settle(slot, released);
    }

    /// What settling an object needs after its counts changed, for a caller that holds
    /// only the object's shard.
    pub const Follow = enum {
        /// Still in scope: nothing.
        none,
        /// Goes out of scope with no callbacks and no links: the shard alone.
        local,
        /// Goes out of scope with callbacks to hand over: the shard and the callback pool.
        callbacks,
        /// Goes out of scope with links to other objects (contains, lineage): every shard.
        global,
    };

    /// Drops one of the caller's local references without settling, and says what the
    /// settle (`settleSlot`, or `settleId` under every shard) needs.
    pub fn releaseOnly(table: *Table, id: Id, caller: Sink) Error!struct { slot: u32, follow: Follow } {
        const slot = try table.lookupInScope(id);
        try table.decrement(slot, caller, .local);
        return .{ .slot = slot, .follow = table.follow(slot) };
    }

    fn follow(table: *Table, slot: u32) Follow {
        if (table.inScope(slot)) return .none;
        if (table.hasLinks(slot)) return .global;
        const entry = table.entryAt(slot);
        var callbacks = entry.callbacks.len;
        if (entry.ext != nil and table.lineageCount(slot) == 0) {
            callbacks += table.shardOf(slot).exts.at(entry.ext).deleted_callbacks.len;
        }
        return if (callbacks > 0) .callbacks else .local;
    }

    /// Settles the object in `slot`, which has no links (`Follow.local` or
    /// `Follow.callbacks`), for a caller that may hold just its shard.
    pub fn settleSlot(table: *Table, slot: u32, released: *List) void {
        // What `follow` saw: so the settle touches no other shard, nor `settle_stack`.
        assert(!table.hasLinks(slot));
        table.settle(slot, released);
    }

    /// Settles the object `id` if it still exists: for a settle deferred until every shard
    /// was held, meanwhile which the object may have gone (and its slot been reused).
    pub fn settleId(table: *Table, id: Id, released: *List) void {
        const slot = table.lookupSlot(id) catch return;
        table.settle(slot, released);
    }

    /// The shard an id names (any shard for an invalid id: its lookup fails anyway).
    pub fn shardOfId(id: Id) u32 {
        const parts = IdParts.decode(id) orelse return 0;
        return shardIndexOf(parts.slot);
    }

    /// Drops one of the caller's local references per id (ids may repeat). All or nothing.
    pub fn releaseBatch(table: *Table, ids: []const Id, caller: Sink, released: *List) Error!void {
        try table.applyAll(ids, caller, .local, .decrement, .in_scope);
        table.settleAll(ids, released);
    }

    /// Adds one submitted-task reference per id for the caller (a task took them as
    /// arguments). All or nothing.
    pub fn submittedAdd(table: *Table, ids: []const Id, caller: Sink) Error!void {
        try table.applyAll(ids, caller, .submitted, .increment, .in_scope);
    }

    /// Removes one of the caller's submitted-task references per id. All or nothing.
    pub fn submittedRemove(table: *Table, ids: []const Id, caller: Sink, released: *List) Error!void {
        try table.applyAll(ids, caller, .submitted, .decrement, .in_scope);
        table.settleAll(ids, released);
    }

    /// Adds one lineage reference per id for the caller. All or nothing.
    pub fn lineageAdd(table: *Table, ids: []const Id, caller: Sink) Error!void {
        try table.applyAll(ids, caller, .lineage, .increment, .in_scope);
    }

    /// Removes one of the caller's lineage references per id. All or nothing.
    pub fn lineageRemove(table: *Table, ids: []const Id, caller: Sink, released: *List) Error!void {
        try table.applyAll(ids, caller, .lineage, .decrement, .live);
        table.settleAll(ids, released);
    }

    /// Turns one of the caller's local references into a reference lent to another sink,
    /// which `borrow` will claim. The object stays in scope meanwhile.
    pub fn lend(table: *Table, id: Id, caller: Sink) Error!void {
        const slot = try table.lookupInScope(id);
        try table.increment(slot, caller, .lent);
        table.decrement(slot, caller, .local) catch |err| {
            table.decrement(slot, caller, .lent) catch unreachable;
            return err;
        };
    }

    /// Claims a reference that `lender` lent: it becomes one of the caller's local
    /// references (making the caller a borrower unless it owns the object).
    pub fn borrow(table: *Table, id: Id, lender: Sink, caller: Sink) Error!void {
        const slot = try table.lookupInScope(id);
        try table.increment(slot, caller, .local);
        table.decrement(slot, lender, .lent) catch |err| {
            table.decrement(slot, caller, .local) catch unreachable;
            return err;
        };
    }

    /// Explicitly frees an owned object: its out-of-scope callbacks leave now (once in
    /// total, so freeing twice is a no-op) and later registrations are refused. The entry
    /// stays until its references drop, so ids keep working for retain, release and info.
    pub fn free(table: *Table, id: Id, caller: Sink, released: *List) Error!void {
        const slot = try table.lookupSlot(id);
        const entry = table.entryAt(slot);
        if (!isOwner(entry, caller)) return error.NotOwned;
        if (entry.flags.freed or entry.flags.out_of_scope) return;
        entry.flags.freed = true;
        table.handOver(slot, &entry.callbacks, released);
    }

    /// Appends a callback. Returns false, registering nothing, when it could never run: the
    /// object is deleted, or (out-of-scope callbacks) freed or already out of scope, as Ray
    /// does. Only the owner may register.
    pub fn register(table: *Table, id: Id, caller: Sink, kind: CallbackKind, callback: callback_module.Callback) Error!bool {
        const slot = table.lookupSlot(id) catch |err| switch (err) {
            error.StaleId => return false,
            else => return err,
        };
        const entry = table.entryAt(slot);
        if (!isOwner(entry, caller)) return error.NotOwned;
        if (kind == .out_of_scope and (entry.flags.freed or entry.flags.out_of_scope)) return false;
        // Its last release must now hand the callback over, under the lock.
        unplain(entry) catch return false;
        const index = try table.callbacks.create(table.allocator, .{ .callback = callback, .object_id = id });
        const list = switch (kind) {
            .out_of_scope => &table.entryAt(slot).callbacks,
            .deleted => &(table.ensureExt(slot) catch {
                table.callbacks.destroy(index);
                return error.OutOfMemory;
            }).deleted_callbacks,
        };
        list.push(&table.callbacks, index);
        table.shardOf(slot).callbacks_registered += 1;
        return true;
    }

    /// Removes the first registered callback equal to `callback`. Returns whether one was
    /// removed: false when it already left the table (it will run, or ran) or never was.
    pub fn unregister(table: *Table, id: Id, caller: Sink, kind: CallbackKind, callback: callback_module.Callback) Error!bool {
        const slot = table.lookupSlot(id) catch |err| switch (err) {
            error.StaleId => return false,
            else => return err,
        };
        const entry = table.entryAt(slot);
        if (!isOwner(entry, caller)) return error.NotOwned;
        const list = table.callbackList(slot, kind) orelse return false;
        const index = list.removeFirst(&table.callbacks, callback, matchesCallback);
        if (index == nil) return false;
        table.callbacks.destroy(index);
        return true;
    }

    /// Copies the tokens of `sink`'s callbacks of `kind` on the object, in order, into
    /// `tokens`; returns how many there are (which may exceed `tokens.len`).
    pub fn sinkTokens(table: *Table, id: Id, sink: Sink, kind: CallbackKind, tokens: []u32) Error!usize {
        const slot = table.lookupSlot(id) catch |err| switch (err) {
            error.StaleId => return 0,
            else => return err,
        };
        const list = table.callbackList(slot, kind) orelse return 0;
        var count: usize = 0;
        var nodes = list.iterate();
        while (nodes.next(&table.callbacks)) |index| {
            switch (table.callbacks.at(index).callback) {
                .sink => |target| if (target.sink == sink) {
                    if (count < tokens.len) tokens[count] = target.token;
                    count += 1;
                },
                .native => {},
            }
        }
        return count;
    }

    /// The object's state, as seen by `caller`. Out of scope but lineage-pinned objects
    /// still have an entry.
    pub fn info(table: *Table, id: Id) Error!Info {
        return table.infoAt(try table.lookupSlot(id));
    }

    pub fn infoAt(table: *Table, slot: u32) Info {
        const entry = table.entryAt(slot);
        assert(entry.flags.state == .live);
        const word = entry.load();
        var result: Info = .{
            .owner = entry.ownerSink(),
            // Released for the last time by another thread since the lookup: none left.
            .refs_local = if (word.dying) 0 else word.refs_local,
            .refs_submitted = entry.refs_submitted,
            .refs_borrowed = 0,
            .refs_lent = 0,
            .refs_lineage = 0,
            .contained_in_owned = 0,
            .borrowers = 0,
            .callbacks_pending = entry.callbacks.len,
            .deleted_callbacks_pending = 0,
            .freed = entry.flags.freed,
            .out_of_scope = entry.flags.out_of_scope,
            .reconstructable = entry.flags.reconstructable,
            .size_bytes = entry.size_bytes,
        };
        if (entry.ext != nil) {
            const extension = table.shardOf(slot).exts.at(entry.ext);
            result.refs_borrowed = extension.refs_borrowed;
            result.refs_lent = extension.refs_lent;
            result.refs_lineage = extension.refs_lineage;
            result.contained_in_owned = extension.contained_in_owned;
            result.deleted_callbacks_pending = extension.deleted_callbacks.len;
            var nodes = extension.holders.iterate();
            while (nodes.next(&table.shardOf(slot).holders)) |index| {
                const holding = table.shardOf(slot).holders.at(index).holding;
                const borrows = holding.refs_local != 0 or holding.refs_submitted != 0;
                if (holding.sink != entry.ownerSink() and borrows) result.borrowers += 1;
            }
        }
        return result;
    }

    /// Copies the holdings of every sink with a holder record on the object (borrowers,
    /// lenders, lineage pins); returns how many there are (which may exceed `out.len`).
    pub fn holdings(table: *Table, id: Id, out: []Holding) Error!usize {
        const slot = try table.lookupSlot(id);
        const entry = table.entryAt(slot);
        if (entry.ext == nil) return 0;
        var count: usize = 0;
        var nodes = table.shardOf(slot).exts.at(entry.ext).holders.iterate();
        while (nodes.next(&table.shardOf(slot).holders)) |index| {
            if (count < out.len) out[count] = table.shardOf(slot).holders.at(index).holding;
            count += 1;
        }
        return count;
    }

    /// The id of the live object in `slot`, or null. For iterating the table.
    pub fn idAt(table: *Table, slot: u32) ?Id {
        const shard = table.shardOf(slot);
        if (slot >> shard_bits >= shard.entries.len) return null;
        const entry = table.entryAt(slot);
        const word = entry.load();
        if (entry.flags.state != .live or word.dying) return null;
        return IdParts.encode(.{ .slot = slot, .generation = word.generation });
    }

    /// Slots to examine when iterating: every slot below this may be in use.
    pub fn slotCount(table: *const Table) u32 {
        var longest: usize = 0;
        for (&table.shards) |*shard| longest = @max(longest, shard.entries.len);
        return @intCast(longest << shard_bits);
    }

    /// Bytes the table has allocated (capacity, not use): every pool, and the pages the
    /// entries in use may occupy.
    pub fn memoryBytes(table: *const Table) u64 {
        var sum: u64 = table.callbacks.nodes.capacity * @sizeOf(callback_module.Node);
        for (&table.shards) |*shard| {
            sum += shard.entries.residentBytes() +
                shard.past_generations.capacity * @sizeOf(u32) +
                shard.exts.nodes.capacity * @sizeOf(Ext) +
                shard.holders.nodes.capacity * @sizeOf(Holder) +
                shard.links.nodes.capacity * @sizeOf(Link);
        }
        return sum;
    }

    /// Releases every reference `sink` holds, on its behalf: its borrows, lent references
    /// and lineage pins, and, for the objects it owns, the owner's references. The objects
    /// it owns lose their owner; the callbacks that deliver to `sink` leave now (nobody could
    /// run them later), while native callbacks stay until the object really goes out of
    /// scope or is deleted. Objects others still reference stay live. The caller holds
    /// every shard.
    pub fn sinkRelease(table: *Table, sink: Sink, released: *List) void {
        assert(sink != sink_none);
        assert(sink != sink_gone);
        table.reapAll();
        const slots = table.slotCount();
        for (0..slots) |slot_usize| {
            const slot: u32 = @intCast(slot_usize);
            if (table.idAt(slot) == null) continue;
            const entry = table.entryAt(slot);
            if (entry.ext != nil) table.dropHolder(slot, sink);
            if (entry.ownerSink() == sink) {
                // Released for the last time by another thread meanwhile: it is going.
                if (!takeOwnerCount(entry)) continue;
                entry.setOwner(sink_gone);
                entry.refs_submitted = 0;
                table.handOverSink(slot, &entry.callbacks, sink, released);
                if (entry.ext != nil) table.handOverSink(slot, &table.shardOf(slot).exts.at(entry.ext).deleted_callbacks, sink, released);
            }
        }
        for (0..slots) |slot| {
            if (table.idAt(@intCast(slot)) != null) table.settle(@intCast(slot), released);
        }
    }

    /// Deletes every object, as if every reference had dropped: the counter is closing and
    /// nothing it tracks outlives it. Contained objects still go before their containers,
    /// and lineage dependencies before their dependents' erasure. The caller holds every
    /// shard.
    pub fn releaseAll(table: *Table, released: *List) void {
        table.reapAll();
        const slots = table.slotCount();
        for (0..slots) |slot_usize| {
            const slot: u32 = @intCast(slot_usize);
            if (slot >> shard_bits >= table.shardOf(slot).entries.len) continue;
            const entry = table.entryAt(slot);
            if (entry.flags.state != .live) continue;
            // Released for the last time by another thread, its slot perhaps not yet in its
            // list: counted out now, so that nothing is live when this returns.
            if (!takeOwnerCount(entry)) {
                table.countOutDying(slot);
                continue;
            }
            entry.refs_submitted = 0;
            if (entry.ext == nil) continue;
            const holders = &table.shardOf(slot).exts.at(entry.ext).holders;
            // Each pass drops the first holder, and one more finds none left.
            for (0..@as(usize, holders.len) + 1) |_| {
                const index = holders.head;
                if (index == nil) break;
                table.dropHolder(slot, table.shardOf(slot).holders.at(index).holding.sink);
            } else unreachable;
            assert(holders.len == 0);
        }
        for (0..slots) |slot| {
            if (table.idAt(@intCast(slot)) != null) table.settle(@intCast(slot), released);
        }
        assert(table.objectsLive() == 0);
        assert(table.bytesLive() == 0);
    }

    // --- Giving memory back ----------------------------------------------------------------
    //
    // A shard whose last object is erased flags itself (`trim_pending`, `trim_wanted`). The
    // counter's dispatcher then runs rounds of `trimShard` a delay apart: a shard still
    // empty, with no object created since the previous round, gives its entries and pools
    // back. A shard that fills again before then keeps them: a workload that empties and
    // refills a shard does not pay for freeing and growing it every time. Nothing is given
    // back inside an operation: a settle holds slots, and a release stays as cheap as ever.

    /// Whether this call is the one to tell the dispatcher that a shard emptied.
    pub fn takeTrimSignal(table: *Table) bool {
        return table.trim_signal.load(.monotonic) and table.trim_signal.swap(false, .monotonic);
    }

    /// One round for a shard: gives its memory back if it was empty at the previous round
    /// too, with no object created in between (or at once, if `immediate`); true if it must
    /// be looked at again next round. The caller holds the shard.
    pub fn trimShard(table: *Table, shard_index: u32, immediate: bool) bool {
        const shard = &table.shards[shard_index];
        table.reap(shard_index);
        // Slots counted out but not yet in their lists: their pages must stay.
        if (shard.remote_counted != 0) return true;
        if (!shard.trim_pending) return false;
        if (shard.objects_live != 0) {
            shard.trim_pending = false;
            return false;
        }
        if (!immediate and shard.trim_watch != shard.objects_created) {
            shard.trim_watch = shard.objects_created;
            return true;
        }
        shard.trim_pending = false;
        shard.exts.trimIfEmpty(table.allocator, table.trim_min);
        shard.holders.trimIfEmpty(table.allocator, table.trim_min);
        shard.links.trimIfEmpty(table.allocator, table.trim_min);
        table.trimEntries(shard);
        return false;
    }

    /// Gives back at once what every emptied shard and the callback pool (if empty) can: for
    /// a caller that holds every shard and the queue (a table without a counter, in tests).
    pub fn trimNow(table: *Table) void {
        table.trim_wanted.store(false, .monotonic);
        table.trim_signal.store(false, .monotonic);
        for (0..shard_count) |index| _ = table.trimShard(@intCast(index), true);
        table.trimCallbacks();
    }

    /// Gives an empty shard's entry pages back (`Entries.giveBack`), keeping each slot's
    /// generation (4 bytes instead of an entry's 40) in `past_generations`, so that every id
    /// ever issued stays stale and no new object can take an old id. A shard with a retired
    /// slot keeps its entries (a slot retires after 2^29 objects). If recording the
    /// generations fails for want of memory, nothing changes but that the memory stays.
    fn trimEntries(table: *Table, shard: *Shard) void {
        if (!Entries.canGiveBack()) return;
        const count = shard.entries.len;
        if (count == 0 or count < table.trim_min) return;
        for (0..count) |index| {
            const entry = shard.entries.at(@intCast(index));
            assert(entry.flags.state != .live);
            if (entry.flags.state == .retired) return;
        }
        const past = &shard.past_generations;
        if (count > past.items.len) {
            const known = past.items.len;
            past.ensureTotalCapacityPrecise(table.allocator, count) catch return;
            past.items.len = count;
            @memset(past.items[known..], 0);
        }
        for (past.items[0..count], 0..) |*generation, index| {
            const current = shard.entries.at(@intCast(index)).load().generation;
            // A slot grown again resumed from its past generation.
            assert(current >= generation.*);
            generation.* = current;
        }
        shard.entries.giveBack();
        shard.free_head = nil;
    }

    /// Gives the callback pool's memory back if no callback is registered or in flight
    /// (from `trim_min` nodes on). The caller holds the queue's lock.
    pub fn trimCallbacks(table: *Table) void {
        table.callbacks.trimIfEmpty(table.allocator, table.trim_min);
    }

    // --- Scope and deletion --------------------------------------------------------------

    inline fn inScope(table: *Table, slot: u32) bool {
        const entry = table.entryAt(slot);
        // The count read without the lock may be changing, but never to or from zero.
        if (entry.load().refs_local != 0 or entry.refs_submitted != 0) return true;
        if (entry.ext == nil) return false;
        const extension = table.shardOf(slot).exts.at(entry.ext);
        if (extension.refs_borrowed != 0 or extension.refs_lent != 0 or extension.contained_in_owned != 0) return true;
        // Lineage keeps in scope only what could not be rebuilt from it (Ray: OutOfScope).
        return !entry.flags.reconstructable and extension.refs_lineage != 0;
    }

    fn lineageCount(table: *Table, slot: u32) u32 {
        const entry = table.entryAt(slot);
        return if (entry.ext == nil) 0 else table.shardOf(slot).exts.at(entry.ext).refs_lineage;
    }

    /// Ray's `DeleteReferenceInternal`: if the object just went out of scope, settle what
    /// it contains, then hand over its out-of-scope callbacks; if it may now be deleted,
    /// settle its lineage dependencies, then erase it. Each linked object is settled in
    /// full, in link order, before the next link is followed: the order recursion along
    /// the links gives, kept on `settle_stack` rather than on the call stack.
    ///
    /// Its helpers are `inline`: every release that sends an object out of scope runs
    /// them, and as calls they made such a release about a tenth slower (ReleaseSafe).
    fn settle(table: *Table, slot: u32, released: *List) void {
        // A plain object at zero (no thread changes a count of zero without the lock) is out
        // of scope with nothing to hand over and nothing linked: erased at once, the path of
        // most last releases under the lock (batches, locked counters).
        const entry = table.entryAt(slot);
        const word = entry.load();
        if (word.plain and !word.dying and word.refs_local == 0) {
            assert(!entry.flags.out_of_scope and entry.ext == nil and entry.callbacks.len == 0);
            entry.flags.out_of_scope = true;
            table.countOut(slot);
            table.freeSlot(slot);
            return;
        }
        const step = table.settleBegin(slot) orelse return;
        var frame: SettleFrame = .{ .slot = slot, .step = step };
        if (table.hasLinks(slot)) return table.settleLinked(frame, released);
        // Nothing to settle but this object, so no stack: the caller may hold just its
        // shard (`Follow.local`, `Follow.callbacks`), while the stack is shared by all.
        const linked = table.settleStep(&frame, released);
        assert(linked == null);
    }

    /// Settles an object with links, and every object that settling it reaches, depth
    /// first on `settle_stack`. The caller holds every shard (`Follow.global`).
    fn settleLinked(table: *Table, root: SettleFrame, released: *List) void {
        const stack = &table.settle_stack;
        // Only one settle runs at a time (every shard is held), and none re-enters another.
        assert(stack.count == 0);
        stack.push(root);
        // A pass either pops a link or finishes an object, and every object but the root
        // was reached through a popped link; links are only destroyed meanwhile. So two
        // passes per link, one for the root, and one to find the stack empty.
        const passes_max = 2 * table.linksInUse() + 2;
        for (0..passes_max) |_| {
            const frame = stack.top() orelse break;
            const linked = table.settleStep(frame, released) orelse {
                stack.pop();
                continue;
            };
            // Links point from an object to shallower ones (`create` sets the depths), so
            // the stack holds at most one frame per level: `depth_max + 1` in all.
            assert(table.depthOf(linked) < table.depthOf(frame.slot));
            if (table.settleBegin(linked)) |step| stack.push(.{ .slot = linked, .step = step });
        } else unreachable;
        assert(stack.count == 0);
    }

    /// The step settling the object in `slot` starts with, or null when there is nothing
    /// to do: it is still in scope, or out of scope but still pinned by lineage.
    inline fn settleBegin(table: *Table, slot: u32) ?SettleFrame.Step {
        const entry = table.entryAt(slot);
        assert(entry.flags.state == .live);
        // One read decides for an object whose last release may come without the lock: a
        // plain one with references is in scope (and that release will not involve this
        // settle); a dying one is `reap`'s. A plain one at zero cannot change: no thread
        // changes a count of zero without the lock.
        const word = entry.load();
        if (word.dying) return null;
        if (word.plain and word.refs_local != 0) return null;
        if (!entry.flags.out_of_scope) {
            if (table.inScope(slot)) return null;
            entry.flags.out_of_scope = true;
            return .contained;
        }
        if (table.lineageCount(slot) != 0) return null;
        return .lineage;
    }

    /// Advances `frame` until it pops a link, returning the linked object (to be settled
    /// before the frame goes on), or until its object is settled, returning null: its
    /// out-of-scope callbacks handed over, and the object erased unless lineage pins it.
    inline fn settleStep(table: *Table, frame: *SettleFrame, released: *List) ?u32 {
        // Most objects have no `Ext`, so no links: they skip the lookups in `popLink`.
        const entry = table.entryAt(frame.slot);
        if (frame.step == .contained) {
            if (entry.ext != nil) {
                if (table.popLink(frame.slot, .contains)) |inner| return inner;
            }
            table.handOver(frame.slot, &entry.callbacks, released);
            if (table.lineageCount(frame.slot) != 0) return null;
            frame.step = .lineage;
        }
        assert(frame.step == .lineage);
        if (entry.ext != nil) {
            if (table.popLink(frame.slot, .lineage)) |dependency| return dependency;
        }
        table.erase(frame.slot, released);
        return null;
    }

    /// Unlinks the first object in the `relation` list of the object in `slot`, and drops
    /// the count that the link gave it (`linkAll`); null when the list is empty.
    fn popLink(table: *Table, slot: u32, relation: Relation) ?u32 {
        const entry = table.entryAt(slot);
        assert(entry.ext != nil);
        const shard = table.shardOf(slot);
        const extension = shard.exts.at(entry.ext);
        const list = switch (relation) {
            .contains => &extension.contains,
            .lineage => &extension.lineage,
        };
        const link = list.pop(&shard.links);
        if (link == nil) return null;
        const target = shard.links.at(link).slot;
        shard.links.destroy(link);
        // A link keeps its target live: erasing it waits for the count dropped here.
        assert(table.entryAt(target).flags.state == .live);
        const target_extension = table.ext(target);
        switch (relation) {
            .contains => {
                assert(target_extension.contained_in_owned > 0);
                target_extension.contained_in_owned -= 1;
            },
            .lineage => {
                assert(target_extension.refs_lineage > 0);
                target_extension.refs_lineage -= 1;
            },
        }
        return target;
    }

    /// Links to other objects: what makes settling an object reach beyond it.
    inline fn hasLinks(table: *Table, slot: u32) bool {
        const entry = table.entryAt(slot);
        if (entry.ext == nil) return false;
        const extension = table.shardOf(slot).exts.at(entry.ext);
        return extension.contains.len > 0 or extension.lineage.len > 0;
    }

    /// How long the longest chain of links from the object is (0 without links).
    fn depthOf(table: *Table, slot: u32) u32 {
        const entry = table.entryAt(slot);
        return if (entry.ext == nil) 0 else table.shardOf(slot).exts.at(entry.ext).depth;
    }

    /// Links in every shard: the bound on the passes of one settle.
    fn linksInUse(table: *Table) usize {
        var sum: usize = 0;
        for (&table.shards) |*shard| sum += shard.links.countInUse();
        return sum;
    }

    /// Settles each object of a batch. The caller holds every shard.
    fn settleAll(table: *Table, ids: []const Id, released: *List) void {
        for (ids) |id| {
            // Every id was valid in the first pass; a stale one now is a repeat whose
            // object an earlier occurrence already deleted.
            const slot = table.lookupSlot(id) catch |err| {
                assert(err == error.StaleId);
                continue;
            };
            table.settle(slot, released);
        }
    }

    fn erase(table: *Table, slot: u32, released: *List) void {
        const entry = table.entryAt(slot);
        assert(entry.flags.state == .live);
        assert(entry.flags.out_of_scope);
        assert(entry.callbacks.len == 0);
        if (entry.ext != nil) {
            const extension = table.shardOf(slot).exts.at(entry.ext);
            assert(extension.holders.len == 0);
            assert(extension.contains.len == 0);
            assert(extension.lineage.len == 0);
            assert(extension.refs_borrowed == 0);
            assert(extension.refs_lent == 0);
            assert(extension.refs_lineage == 0);
            assert(extension.contained_in_owned == 0);
            table.handOver(slot, &extension.deleted_callbacks, released);
            table.shardOf(slot).exts.destroy(entry.ext);
        }
        table.countOut(slot);
        table.freeSlot(slot);
    }

    /// Takes the object in `slot` out of its shard's live figures.
    inline fn countOut(table: *Table, slot: u32) void {
        const shard = table.shardOf(slot);
        shard.objects_live -= 1;
        shard.bytes_live -= table.entryAt(slot).size_bytes;
        if (shard.objects_live == 0) {
            shard.trim_pending = true;
            if (!table.trim_wanted.load(.monotonic)) {
                table.trim_wanted.store(true, .monotonic);
                table.trim_signal.store(true, .monotonic);
            }
        }
    }

    /// Empties the slot of an object counted out, for the next object (or retires it).
    inline fn freeSlot(table: *Table, slot: u32) void {
        const shard = table.shardOf(slot);
        const entry = table.entryAt(slot);
        const word = entry.load();
        assert(word.refs_local == 0);
        // A dying word goes too: its list was taken (`reap`).
        entry.store(.{ .generation = word.generation });
        entry.clearFields(.{ .state = .free });
        if (word.generation == IdParts.generation_max) {
            // Reusing the slot would let a new object's id equal an old one's.
            entry.flags.state = .retired;
        } else {
            entry.ext = shard.free_head;
            shard.free_head = slot;
        }
    }

    /// Moves the callbacks of `list` (on the object in `slot`) to `released`. Needs the
    /// callback pool (the queue's lock) unless `list` is empty.
    fn handOver(table: *Table, slot: u32, list: *List, released: *List) void {
        table.shardOf(slot).callbacks_released += list.len;
        released.concat(&table.callbacks, list);
    }

    /// Hands over the callbacks of `list` that deliver to `sink`, keeping the others in
    /// order.
    fn handOverSink(table: *Table, slot: u32, list: *List, sink: Sink, released: *List) void {
        var kept: List = .{};
        // One pass per callback, and one more to find the list empty.
        for (0..@as(usize, list.len) + 1) |_| {
            const index = list.pop(&table.callbacks);
            if (index == nil) break;
            const to_sink = switch (table.callbacks.at(index).callback) {
                .sink => |target| target.sink == sink,
                .native => false,
            };
            if (to_sink) {
                released.push(&table.callbacks, index);
                table.shardOf(slot).callbacks_released += 1;
            } else {
                kept.push(&table.callbacks, index);
            }
        } else unreachable;
        assert(list.len == 0);
        list.* = kept;
    }

    // --- Counts ----------------------------------------------------------------------------

    fn isOwner(entry: *const Entry, caller: Sink) bool {
        return caller == sink_none or caller == entry.ownerSink();
    }

    /// The caller's count of `kind`, or null when it holds none (and has no record). Not
    /// the owner's local count, which is in the entry's word (`changeOwnerLocal`).
    fn countOf(table: *Table, slot: u32, caller: Sink, kind: Count) ?*u32 {
        const entry = table.entryAt(slot);
        const owner = isOwner(entry, caller);
        assert(!(owner and kind == .local));
        if (owner and kind == .submitted) return &entry.refs_submitted;
        const holder = table.findHolder(slot, if (owner) entry.ownerSink() else caller) orelse return null;
        const holding = &table.shardOf(slot).holders.at(holder).holding;
        return switch (kind) {
            .local => &holding.refs_local,
            .submitted => &holding.refs_submitted,
            .lent => &holding.refs_lent,
            .lineage => &holding.refs_lineage,
        };
    }

    /// The per-object sum that a holder count of `kind` feeds, for a holder of `sink`.
    fn totalOf(table: *Table, slot: u32, sink: Sink, kind: Count) *u32 {
        const extension = table.ext(slot);
        return switch (kind) {
            .local, .submitted => blk: {
                assert(sink != table.entryAt(slot).ownerSink());
                break :blk &extension.refs_borrowed;
            },
            .lent => &extension.refs_lent,
            .lineage => &extension.refs_lineage,
        };
    }

    fn increment(table: *Table, slot: u32, caller: Sink, kind: Count) Error!void {
        const entry = table.entryAt(slot);
        const owner = isOwner(entry, caller);
        if (owner and kind == .local) return table.changeOwnerLocal(entry, .increment);
        // Any other count keeps the object in scope beside the owner's.
        try unplain(entry);
        if (owner and kind == .submitted) {
            const count = table.countOf(slot, caller, kind).?;
            count.* = std.math.add(u32, count.*, 1) catch return error.Limit;
            return;
        }
        const sink = if (owner) entry.ownerSink() else caller;
        const holder = try table.holderFor(slot, sink);
        const holding = &table.shardOf(slot).holders.at(holder).holding;
        const count = switch (kind) {
            .local => &holding.refs_local,
            .submitted => &holding.refs_submitted,
            .lent => &holding.refs_lent,
            .lineage => &holding.refs_lineage,
        };
        const total = table.totalOf(slot, sink, kind);
        if (count.* == std.math.maxInt(u32) or total.* == std.math.maxInt(u32)) {
            table.dropHolderIfEmpty(slot, holder);
            return error.Limit;
        }
        count.* += 1;
        total.* += 1;
    }

    fn decrement(table: *Table, slot: u32, caller: Sink, kind: Count) Error!void {
        const entry = table.entryAt(slot);
        const owner = isOwner(entry, caller);
        if (owner and kind == .local) return table.changeOwnerLocal(entry, .decrement);
        const count = table.countOf(slot, caller, kind) orelse return error.NoReference;
        if (count.* == 0) return error.NoReference;
        count.* -= 1;
        if (owner and kind == .submitted) return;
        const sink = if (owner) entry.ownerSink() else caller;
        table.totalOf(slot, sink, kind).* -= 1;
        table.dropHolderIfEmpty(slot, table.findHolder(slot, sink).?);
    }

    /// Changes the owner's local count under the lock. Other threads may be changing it too
    /// (`changeFast`), never to or from zero: so a compare-and-swap, and what it leaves at
    /// zero stays there until the lock's holder changes it. Without `lock_free`, nobody else
    /// changes it: a plain store.
    fn changeOwnerLocal(table: *Table, entry: *Entry, direction: Direction) Error!void {
        var word = entry.load();
        if (!table.lock_free) {
            assert(!word.dying);
            switch (direction) {
                .increment => word.refs_local = std.math.add(u32, word.refs_local, 1) catch return error.Limit,
                .decrement => word.refs_local = std.math.sub(u32, word.refs_local, 1) catch return error.NoReference,
            }
            return entry.store(word);
        }
        while (true) {
            // Released for the last time by another thread since the lookup.
            if (word.dying) return error.StaleId;
            var changed = word;
            switch (direction) {
                .increment => changed.refs_local = std.math.add(u32, word.refs_local, 1) catch return error.Limit,
                .decrement => changed.refs_local = std.math.sub(u32, word.refs_local, 1) catch return error.NoReference,
            }
            word = @bitCast(entry.word.cmpxchgWeak(@bitCast(word), @bitCast(changed), .monotonic, .monotonic) orelse return);
        }
    }

    // --- Counts without the lock -------------------------------------------------------------
    //
    // Most reference operations change an owner's local count that stays above zero: a
    // retain of a held object, a release that is not the last. Those cannot change the
    // object's scope, so nothing else in the entry needs to change with them, and a thread
    // does them with one compare-and-swap on the entry's word, without the shard's lock
    // (which costs a pthread mutex's two atomic operations, and a cache line shared by every
    // thread on the shard). Everything else takes the lock: the first reference after zero,
    // the last release (the object may go out of scope), a borrower's references, and every
    // error (so that errors are told apart exactly as before).
    //
    // Why a word that passes the checks names the right object and owner: entries never move
    // (`Entries`); its generation is the id's, so the slot holds that object; `fast` was
    // never cleared for it, so its owner is the one `create` set (and published before the
    // word, with release); and the count is at least one, so the object is in scope, which
    // also means the counter is open (closing deletes every object first) and an owning sink
    // has not ended (its end clears `fast`). The compare-and-swap succeeds only if the word
    // is unchanged since: the same generation, still `fast`, so all of that still held at
    // that instant, which is when the operation takes effect. Under the lock, the count is
    // changed by compare-and-swap too (`changeOwnerLocal`); crossing zero only happens there.

    /// The owner's retain of an object it holds, without the lock; false when it needs the
    /// locked path (which also reports every error).
    pub fn retainFast(table: *Table, id: Id, caller: Sink) bool {
        const found = table.findConcurrent(id) orelse return false;
        return changeFast(found, caller, .increment) == .changed;
    }

    pub const FastRelease = enum {
        /// Not done: take the locked path (which also reports every error).
        locked,
        done,
        /// Done, and the dispatcher must learn that slots wait to be erased: signal it.
        done_signal,
    };

    /// The owner's release of an object it holds, without the lock: one that is not the
    /// last, or the last of a `plain` object, which then goes out of scope with nothing to
    /// hand over. Its slot joins its chunk's list (`Shard.remote`); `reap` erases it later,
    /// under the lock, meanwhile which every lookup finds it stale and `stats`, `snapshot`
    /// and the scans reap (or count it out) first, so nothing sees it live.
    pub fn releaseFast(table: *Table, id: Id, caller: Sink) FastRelease {
        const found = table.findConcurrent(id) orelse return .locked;
        switch (changeFast(found, caller, .decrement)) {
            .none => return .locked,
            .changed => return .done,
            .dying => {},
        }
        const parts = found.parts;
        const entry = found.entry;
        const shard = &table.shards[shardIndexOf(parts.slot)];
        const head = &shard.remote[(parts.slot >> shard_bits) / entry_chunk_len];
        // Push, the link in the word's count (a dying word's count means nothing else): no
        // thread but this one writes the word now (every other writer leaves a dying word
        // alone), and `reap` reads the link only after taking the list, whose release CAS
        // publishes it. `reap` takes whole lists, so a slot is never popped alone (no ABA).
        var next = head.load(.monotonic);
        while (true) {
            entry.store(.{ .refs_local = next, .generation = @intCast(parts.generation), .dying = true });
            next = head.cmpxchgWeak(next, parts.slot, .seq_cst, .monotonic) orelse break;
        }
        // The push, this read and `reap`'s clear and take are all sequentially consistent:
        // if this reads the flag set, `reap` clears it after, and then takes the lists after
        // that, so it sees the push. Else this sets it, for the next `reap`. (On x86 these are
        // the same instructions as weaker orders.)
        if (shard.remote_pending.load(.seq_cst)) return .done;
        shard.remote_pending.store(true, .seq_cst);
        // The dispatcher's rounds reap every shard (`trimShard`): one signal until the next.
        if (table.trim_wanted.load(.monotonic)) return .done;
        table.trim_wanted.store(true, .monotonic);
        return .done_signal;
    }

    /// Attempts at the compare-and-swap before leaving it to the locked path: others change
    /// the word only as often as they call.
    const fast_attempts = 4;

    const Fast = enum { none, changed, dying };

    const Found = struct { parts: IdParts, entry: *Entry };

    /// The entry an id names, for a thread without the lock (it may be any object's, or
    /// all zero: `changeFast` checks the word).
    fn findConcurrent(table: *Table, id: Id) ?Found {
        const parts = IdParts.decode(id) orelse return null;
        const entry = table.shards[shardIndexOf(parts.slot)].entries.atConcurrent(parts.slot >> shard_bits) orelse return null;
        return .{ .parts = parts, .entry = entry };
    }

    fn changeFast(found: Found, caller: Sink, comptime direction: Direction) Fast {
        const parts = found.parts;
        const entry = found.entry;
        // Acquire: the owner that `create` published with this word.
        var word: Word = @bitCast(entry.word.load(.acquire));
        for (0..fast_attempts) |_| {
            if (!word.fast or word.generation != parts.generation) return .none;
            var changed = word;
            switch (direction) {
                .increment => {
                    if (word.refs_local == 0 or word.refs_local == std.math.maxInt(u32)) return .none;
                    changed.refs_local += 1;
                },
                .decrement => {
                    if (word.refs_local == 0) return .none;
                    if (word.refs_local == 1) {
                        if (!word.plain) return .none;
                        changed = .{ .generation = word.generation, .dying = true };
                    } else {
                        changed.refs_local -= 1;
                    }
                },
            }
            if (caller != sink_none and caller != entry.ownerSink()) return .none;
            word = @bitCast(entry.word.cmpxchgWeak(@bitCast(word), @bitCast(changed), .monotonic, .monotonic) orelse
                return if (changed.dying) .dying else .changed);
        }
        return .none;
    }

    /// Drops the owner's whole local count and ends `fast` and `plain` for the object, under
    /// the lock: its owner changes, or the counter closes. False, changing nothing, if
    /// another thread has just released it for the last time (it is dying).
    fn takeOwnerCount(entry: *Entry) bool {
        var word = entry.load();
        while (true) {
            if (word.dying) return false;
            word = @bitCast(entry.word.cmpxchgWeak(@bitCast(word), @bitCast(Word{ .generation = word.generation }), .monotonic, .monotonic) orelse return true);
        }
    }

    /// Clears `plain` for good, under the lock, before a change that makes the object more
    /// than its owner's count (a callback, an `Ext`, a submitted count): from then on its last
    /// release takes the lock. `StaleId` if another thread has just released it for the last
    /// time.
    fn unplain(entry: *Entry) Error!void {
        var word = entry.load();
        while (true) {
            if (word.dying) return error.StaleId;
            if (!word.plain) return;
            var changed = word;
            changed.plain = false;
            word = @bitCast(entry.word.cmpxchgWeak(@bitCast(word), @bitCast(changed), .monotonic, .monotonic) orelse return);
        }
    }

    /// Takes the shard's lists of slots released without the lock and erases their objects
    /// (or, for those a scan already counted out, just frees the slots). The caller holds
    /// the shard.
    pub fn reap(table: *Table, shard_index: u32) void {
        _ = table.reapLists(shard_index, .all);
    }

    /// How much a reap does: every list, or (for a create, which needs one slot and must not
    /// stall) the first non-empty one, of at most a chunk's slots.
    const ReapBound = enum { all, one_list };

    /// Reaps the shard's lists as `bound` says; returns how many slots it freed.
    fn reapLists(table: *Table, shard_index: u32, bound: ReapBound) usize {
        const shard = &table.shards[shard_index];
        if (!shard.remote_pending.load(.seq_cst)) return 0;
        // Cleared before the lists are read, so that a push after its list was read is seen
        // by the next reap (`releaseFast` sets it after its push).
        shard.remote_pending.store(false, .seq_cst);
        var freed: usize = 0;
        for (shard.remote[0..shard.entries.chunks]) |*head| {
            if (head.load(.monotonic) == nil) continue;
            freed += table.reapList(shard, head.swap(nil, .seq_cst));
            if (bound == .one_list) {
                // Other lists may be waiting: the next reap looks again.
                shard.remote_pending.store(true, .seq_cst);
                break;
            }
        }
        return freed;
    }

    fn reapList(table: *Table, shard: *Shard, first: u32) usize {
        var slot = first;
        // Each slot is in one list once; the entries bound the walk.
        for (0..Entries.len_max + 1) |count| {
            if (slot == nil) return count;
            const entry = table.entryAt(slot);
            const word = entry.load();
            assert(word.dying);
            assert(entry.flags.state == .live);
            assert(entry.ext == nil);
            const next = word.refs_local;
            entry.store(.{ .generation = word.generation, .dying = true });
            if (entry.flags.out_of_scope) {
                // Counted out by `countOutDying`: only the slot is left to free.
                shard.remote_counted -= 1;
                table.freeSlot(slot);
            } else {
                entry.flags.out_of_scope = true;
                var released: List = .{};
                table.erase(slot, &released);
                assert(released.len == 0);
            }
            slot = next;
        } else unreachable;
    }

    /// Reaps every shard. The caller holds every shard.
    pub fn reapAll(table: *Table) void {
        for (0..shard_count) |index| table.reap(@intCast(index));
    }

    /// Counts out an object released without the lock whose slot is not in its list yet
    /// (its releasing thread is between the two steps), so that a scan that must leave
    /// nothing live (`releaseAll`) does not wait for it; `reap` frees the slot later.
    fn countOutDying(table: *Table, slot: u32) void {
        const entry = table.entryAt(slot);
        assert(entry.load().dying);
        if (entry.flags.out_of_scope) return;
        entry.flags.out_of_scope = true;
        table.countOut(slot);
        table.shardOf(slot).remote_counted += 1;
    }

    const Direction = enum {
        increment,
        decrement,

        fn opposite(direction: Direction) Direction {
            return if (direction == .increment) .decrement else .increment;
        }
    };

    /// Which objects a batch accepts: those in scope, or (lineage removal) every live one,
    /// out of scope but lineage-pinned included.
    const Accept = enum { in_scope, live };

    /// Applies one count change per id, undoing them all on the first failure, without
    /// settling anything (that is a second pass), so that the undo is exact. An undo cannot
    /// fail: a decrement never does, and re-incrementing a count just taken reuses the
    /// holder node and ext that the pools kept.
    fn applyAll(table: *Table, ids: []const Id, caller: Sink, kind: Count, direction: Direction, accept: Accept) Error!void {
        for (ids, 0..) |id, index| {
            table.applyOne(id, caller, kind, direction, accept) catch |err| {
                for (ids[0..index]) |done| table.applyOne(done, caller, kind, direction.opposite(), accept) catch unreachable;
                return err;
            };
        }
    }

    fn applyOne(table: *Table, id: Id, caller: Sink, kind: Count, direction: Direction, accept: Accept) Error!void {
        const slot = switch (accept) {
            .in_scope => try table.lookupInScope(id),
            .live => try table.lookupSlot(id),
        };
        switch (direction) {
            .increment => try table.increment(slot, caller, kind),
            .decrement => try table.decrement(slot, caller, kind),
        }
    }

    // --- Holders, exts, links --------------------------------------------------------------

    fn ext(table: *Table, slot: u32) *Ext {
        const entry = table.entryAt(slot);
        assert(entry.ext != nil);
        return table.shardOf(slot).exts.at(entry.ext);
    }

    /// The object's `Ext`, made if need be. The object is no longer `plain` (`unplain`, by
    /// the caller: each can fail only as its own operation may).
    fn ensureExt(table: *Table, slot: u32) error{OutOfMemory}!*Ext {
        const entry = table.entryAt(slot);
        assert(!entry.load().plain);
        const exts = &table.shardOf(slot).exts;
        if (entry.ext == nil) entry.ext = try exts.create(table.allocator, .{});
        return exts.at(entry.ext);
    }

    fn callbackList(table: *Table, slot: u32, kind: CallbackKind) ?*List {
        const entry = table.entryAt(slot);
        return switch (kind) {
            .out_of_scope => &entry.callbacks,
            .deleted => if (entry.ext == nil) null else &table.shardOf(slot).exts.at(entry.ext).deleted_callbacks,
        };
    }

    fn findHolder(table: *Table, slot: u32, sink: Sink) ?Index {
        const entry = table.entryAt(slot);
        if (entry.ext == nil) return null;
        var nodes = table.shardOf(slot).exts.at(entry.ext).holders.iterate();
        while (nodes.next(&table.shardOf(slot).holders)) |index| {
            if (table.shardOf(slot).holders.at(index).holding.sink == sink) return index;
        }
        return null;
    }

    fn holderFor(table: *Table, slot: u32, sink: Sink) error{OutOfMemory}!Index {
        if (table.findHolder(slot, sink)) |index| return index;
        try table.shardOf(slot).holders.reserve(table.allocator, 1);
        const extension = try table.ensureExt(slot);
        const index = table.shardOf(slot).holders.create(table.allocator, .{ .holding = .{ .sink = sink } }) catch unreachable;
        extension.holders.push(&table.shardOf(slot).holders, index);
        return index;
    }

    fn dropHolderIfEmpty(table: *Table, slot: u32, holder: Index) void {
        if (!table.shardOf(slot).holders.at(holder).isEmpty()) return;
        table.ext(slot).holders.removeIndex(&table.shardOf(slot).holders, holder);
        table.shardOf(slot).holders.destroy(holder);
    }

    /// Removes `sink`'s holder record and everything it counted.
    fn dropHolder(table: *Table, slot: u32, sink: Sink) void {
        const extension = table.ext(slot);
        const index = extension.holders.removeFirst(&table.shardOf(slot).holders, sink, holderOf);
        if (index == nil) return;
        const holding = table.shardOf(slot).holders.at(index).holding;
        if (sink != table.entryAt(slot).ownerSink()) extension.refs_borrowed -= holding.refs_local + holding.refs_submitted;
        extension.refs_lent -= holding.refs_lent;
        extension.refs_lineage -= holding.refs_lineage;
        table.shardOf(slot).holders.destroy(index);
    }

    fn holderOf(sink: Sink, node: *const Holder) bool {
        return node.holding.sink == sink;
    }

    fn matchesCallback(callback: callback_module.Callback, node: *const callback_module.Node) bool {
        return callback.eql(node.callback);
    }

    const Plan = struct {
        /// Referenced objects that have no `Ext` yet, by shard.
        exts: [shard_count]usize = @splat(0),
        links: usize = 0,
        depth: u32 = 0,
    };

    const Relation = enum { contains, lineage };

    /// Validates the ids a create refers to (each in scope) and measures the allocation
    /// it needs, counting a repeat within the list once. Changes nothing but the scratch
    /// marks, which it clears (and `unmark` clears after an error part way).
    fn planLinks(table: *Table, ids: []const Id, relation: Relation, plan: *Plan) Error!void {
        for (ids) |id| {
            const slot = try table.lookupInScope(id);
            const entry = table.entryAt(slot);
            if (entry.flags.marked) continue;
            // Linked, it stays in scope beside its owner's count (harmless if the create then
            // fails: its last release merely takes the lock).
            try unplain(entry);
            entry.flags.marked = true;
            plan.links += 1;
            // An object in both lists is counted twice here: reserving one ext too many
            // is harmless.
            if (entry.ext == nil) {
                plan.exts[shardIndexOf(slot)] += 1;
                continue;
            }
            const extension = table.shardOf(slot).exts.at(entry.ext);
            const count = switch (relation) {
                .contains => extension.contained_in_owned,
                .lineage => extension.refs_lineage,
            };
            if (count == std.math.maxInt(u32)) return error.Limit;
            plan.depth = @max(plan.depth, extension.depth);
        }
        for (ids) |id| table.entryAt(table.lookupInScope(id) catch unreachable).flags.marked = false;
        if (plan.links > 0 and plan.depth + 1 > depth_max) return error.Limit;
    }

    fn unmark(table: *Table, options: CreateOptions) void {
        for (options.contains) |id| {
            const slot = table.lookupSlot(id) catch continue;
            table.entryAt(slot).flags.marked = false;
        }
        for (options.lineage) |id| {
            const slot = table.lookupSlot(id) catch continue;
            table.entryAt(slot).flags.marked = false;
        }
    }

    /// Links the new object in `slot` to each referenced object (repeats once). Cannot fail:
    /// `create` reserved every node.
    fn linkAll(table: *Table, slot: u32, ids: []const Id, relation: Relation) void {
        for (ids) |id| {
            const target = table.lookupInScope(id) catch unreachable;
            const entry = table.entryAt(target);
            if (entry.flags.marked) continue;
            entry.flags.marked = true;
            const extension = table.ensureExt(target) catch unreachable;
            switch (relation) {
                .contains => extension.contained_in_owned += 1,
                .lineage => extension.refs_lineage += 1,
            }
            // What `settleLinked` relies on to keep its stack within `depth_max + 1` frames.
            assert(table.depthOf(target) < table.depthOf(slot));
            const links = &table.shardOf(slot).links;
            const link = links.create(table.allocator, .{ .slot = target }) catch unreachable;
            const own = table.ext(slot);
            switch (relation) {
                .contains => own.contains.push(links, link),
                .lineage => own.lineage.push(links, link),
            }
        }
        for (ids) |id| table.entryAt(table.lookupInScope(id) catch unreachable).flags.marked = false;
    }

    // --- Lookup ------------------------------------------------------------------------------

    fn takeSlot(table: *Table, shard_index: u32) u32 {
        const shard = &table.shards[shard_index];
        if (shard.free_head != nil) {
            const slot = shard.free_head;
            shard.free_head = table.entryAt(slot).ext;
            return slot;
        }
        const index = shard.entries.append();
        const slot: u32 = @intCast(index << shard_bits | shard_index);
        // A slot whose entry was given back resumes from its generation.
        const past = shard.past_generations.items;
        const generation: u29 = if (index < past.len) @intCast(past[index]) else 0;
        const entry = shard.entries.at(index);
        entry.clearFields(.{ .state = .free });
        entry.store(.{ .generation = generation });
        return slot;
    }

    /// Sets a slot's generation: for tests that need a slot about to retire.
    pub fn setGenerationForTest(table: *Table, slot: u32, generation: u32) void {
        const entry = table.entryAt(slot);
        var word = entry.load();
        word.generation = @intCast(generation);
        entry.store(word);
    }

    /// The slot of a live object (in scope, or out of scope but lineage-pinned).
    fn lookupSlot(table: *Table, id: Id) Error!u32 {
        const parts = IdParts.decode(id) orelse return error.InvalidId;
        const shard = table.shardOf(parts.slot);
        const index = parts.slot >> shard_bits;
        if (index >= shard.entries.len) {
            // Beyond the entries, a slot given back stays stale up to its last generation.
            const past = shard.past_generations.items;
            if (index < past.len and parts.generation <= past[index]) return error.StaleId;
            return error.InvalidId;
        }
        const entry = table.entryAt(parts.slot);
        const word = entry.load();
        if (parts.generation > word.generation) return error.InvalidId;
        // A dying object is deleted as far as anyone can tell: it only waits for `reap`.
        if (parts.generation < word.generation or entry.flags.state != .live or word.dying) return error.StaleId;
        return parts.slot;
    }

    /// The slot of an object in scope: reference operations treat an object that has gone
    /// out of scope (kept only by lineage) like a deleted one.
    fn lookupInScope(table: *Table, id: Id) Error!u32 {
        const slot = try table.lookupSlot(id);
        if (table.entryAt(slot).flags.out_of_scope) return error.StaleId;
        return slot;
    }
};
