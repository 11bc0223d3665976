//! A reference counter: the table, the callback queue and the dispatcher thread behind one
//! mutex, shared by every sink attached to it (one per JS thread: the main thread and each
//! Worker).
//!
//! Every public function is safe to call from any thread. Each takes the mutex (or, for
//! most retains and releases, no lock: `Table.retainFast`, `Table.releaseFast`) for a
//! bounded amount of work (a batch is bounded by its length, a sink close by the table's
//! size) and none of them ever runs a user callback or waits for one: callbacks that leave
//! the table are routed to the queue and the dispatcher is signalled. The exception is
//! `destroy`, which joins the dispatcher.
//!
//! Lifecycle. `open` creates the counter, registers it under a key (`registry.zig`) and
//! starts the dispatcher; other threads `attach` by key, each getting a sink. `close`
//! deletes every live object (so every registered callback is delivered exactly once,
//! shutdown included), refuses all later mutations, and lets the dispatcher finish the
//! queue and exit, which moves the state to `closed`. `destroy` joins the dispatcher and
//! drops the opener's hold; each sink holds the counter too, until `sinkClose` (or its
//! thread's exit, see `thread_exit.zig`), and so does each waker thread until it exits.
//! The last hold to go frees the memory (see `lifecycle.zig` for when it may go).

const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;
const pool_module = @import("pool.zig");
const callback_module = @import("callback.zig");
const table_module = @import("table.zig");
const queue_module = @import("queue.zig");
const dispatcher = @import("dispatcher.zig");
const registry = @import("registry.zig");
const thread_exit = @import("thread_exit.zig");
const lifecycle = @import("lifecycle.zig");
const sync = @import("sync.zig");

const List = pool_module.List;
const Table = table_module.Table;
const Queue = queue_module.Queue;
pub const Id = table_module.Id;
pub const Sink = table_module.Sink;
pub const sink_none = table_module.sink_none;
pub const CallbackKind = table_module.CallbackKind;
pub const CreateOptions = table_module.CreateOptions;

/// `Counter.trim_delay_ns`'s default.
pub const trim_delay_default_ns = std.time.ns_per_s;

pub const Error = table_module.Error || error{
    /// The counter is closing or closed.
    Closed,
    /// An argument that is not an id is out of its domain (an unknown sink, say).
    InvalidArgument,
    /// The call would deadlock on this thread (destroying from the dispatcher).
    WrongThread,
    /// The operating system refused a resource (the dispatcher thread).
    SystemResources,
    /// The counter has its maximum of sinks (`queue.sink_count_max`).
    SinkLimit,
    /// The calling thread takes part in its maximum of counters (`thread_exit`).
    ThreadLimit,
    /// The process has its maximum of open counters (`registry.slot_count`).
    CounterLimit,
};

/// What a successful mutation asks of its caller.
pub const Outcome = enum {
    ok,
    /// Tokens arrived for `caller` and no wake was sent for them: drain that sink.
    drain,
    /// Wake-less sinks are owed wakes that the caller (a relaying sink) must pass on:
    /// take them with `takeRelay`.
    relay,
    /// Both.
    drain_relay,

    fn of(routed: queue_module.Routed) Outcome {
        if (routed.drain_caller) return if (routed.relay_caller) .drain_relay else .drain;
        return if (routed.relay_caller) .relay else .ok;
    }
};

pub const State = lifecycle.CounterState;

pub const Stats = struct {
    objects_live: u64,
    bytes_live: u64,
    objects_created: u64,
    callbacks_registered: u64,
    /// Callbacks that left the table: run, waiting to run, or waiting in an outbox.
    callbacks_released: u64,
    native_callbacks_queued: u64,
    native_callbacks_run: u64,
    sink_tokens_pending: u64,
    wakes_sent: u64,
    sinks_open: u64,
    /// Tokens dropped because their sink had closed (its thread was gone).
    tokens_discarded: u64,
    /// Bytes the table has allocated for entries and callbacks (capacity, not use).
    memory_bytes: u64,
    /// Wakers let go while inside a wake call that has not returned (see `lifecycle.zig`):
    /// each holds the counter's memory, and nothing else, until it returns.
    wakers_blocked: u64,
    /// Waker threads that have not exited yet, let go or not. Not in the C ABI's stats: for
    /// tests, which must see a let-go waker gone before they check for leaks.
    wakers_live: u64,
};

/// One object in a snapshot.
pub const Record = struct { id: Id, info: table_module.Info };

/// Names a thread of the library's, so that tools (and tests) can tell them from the host's.
/// Linux only: elsewhere the call is either limited to the calling thread (macOS) or needs
/// a newer system than the library supports (Windows 10 1607's SetThreadDescription).
/// libc's call, not std.Thread.setName: that one takes an `Io` (for the /proc fallback of
/// a build without libc), and the library has none to give.
fn nameThread(thread: std.Thread, name: [:0]const u8) void {
    if (builtin.os.tag != .linux) return;
    assert(name.len <= std.Thread.max_name_len);
    // A name is for tools only: if naming fails, nothing else changes.
    _ = std.c.pthread_setname_np(thread.getHandle(), name.ptr);
}

/// Set on the library's own threads (the dispatcher, the wakers), where some calls would
/// deadlock or join the calling thread.
pub threadlocal var on_library_thread: bool = false;

const no_shard = std.math.maxInt(u32);
threadlocal var thread_shard: u32 = no_shard;
var next_thread_shard = std.atomic.Value(u32).init(0);

/// A shard's mutex, alone on its cache line so that threads on different shards do not
/// contend for the line.
const ShardLock = struct {
    mutex: sync.Mutex align(std.atomic.cache_line) = .{},
};

pub const Counter = struct {
    allocator: std.mem.Allocator,
    /// One per table shard: guards that shard's objects. Operations on one object take its
    /// shard's; operations across objects take every shard's, in index order, then `mutex`.
    shard_locks: [table_module.shard_count]ShardLock = @splat(.{}),
    /// Guards the queue, the callback pool, the sinks' delivery state, the lifecycle and
    /// holds; the dispatcher and wakers wait with it. Taken after any shard's. A field that
    /// a shard-locked operation reads (the state, whether a sink is open) is written only
    /// with every lock held.
    mutex: sync.Mutex = .{},
    /// Signalled when the queue gains work or the state leaves `open`; the dispatcher waits.
    condition: sync.Condition = .{},
    table: Table,
    queue: Queue = .{},
    state: State = .open,
    thread: std.Thread = undefined,
    /// Zero unless the dispatcher is running; see `dispatcher.main`.
    dispatcher_thread_id: std.atomic.Value(std.Thread.Id) = .init(0),
    /// Wakers let go while inside a wake (`Stats.wakers_blocked`).
    wakers_blocked: u64 = 0,
    /// Waker threads started and not yet exited (`Stats.wakers_live`).
    wakers_live: u64 = 0,
    /// The registry key other threads attach with.
    key: f64 = 0,
    /// Holds on the counter's memory: the opener's (until `destroy`), one per sink slot in
    /// use (open, or closing while its waker is in a wake), and one per waker thread that
    /// has not exited. `holdsAccounted` counts what should be there; `takeHold` and
    /// `dropHold` check each other against it.
    holds: u32 = 1,
    /// `destroy` has begun (called, or claimed by the opening thread's exit hook).
    destroy_claimed: bool = false,
    destroyed: bool = false,
    native_callbacks_run: u64 = 0,
    wakes_sent: u64 = 0,
    tokens_discarded: u64 = 0,
    /// How long an emptied shard must stay empty before the dispatcher gives its memory
    /// back (`trimRound`). Tests set 0.
    trim_delay_ns: u64 = trim_delay_default_ns,

    /// Allocates a counter, registers it, and starts its dispatcher thread.
    pub fn open(allocator: std.mem.Allocator) Error!*Counter {
        const counter = try allocator.create(Counter);
        errdefer allocator.destroy(counter);
        counter.* = .{ .allocator = allocator, .table = Table.init(allocator) };
        // `REFSCOPE_LOCKED_COUNTS` (set, and not "0") as the counter opens: every count change
        // takes the shard's lock, as before the lock-free paths existed. For measuring what
        // they save (bench/refops.ts), and for ruling them out.
        counter.table.lock_free = !lockedCountsRequested();
        // The opener's hold, which `destroyClaimed` drops.
        assert(counter.holds == 1);
        assert(counter.holds == counter.holdsAccounted());
        counter.key = registry.add(counter) orelse return error.CounterLimit;
        errdefer registry.remove(counter.key);
        counter.thread = std.Thread.spawn(.{}, dispatcher.main, .{counter}) catch
            return error.SystemResources;
        nameThread(counter.thread, "refscope-disp");
        return counter;
    }

    fn lockedCountsRequested() bool {
        const value = std.mem.span(std.c.getenv("REFSCOPE_LOCKED_COUNTS") orelse return false);
        return value.len > 0 and !std.mem.eql(u8, value, "0");
    }

    pub const Attached = struct { counter: *Counter, sink: u32 };

    /// Attaches the calling thread to the open counter registered under `key`, opening a
    /// sink for it (see `sinkOpen`). Closed when the key names no counter, or a counter no
    /// longer open.
    pub fn attach(key: f64, wake: ?queue_module.WakeFunction, wake_context: ?*anyopaque, relays: bool) Error!Attached {
        // Room for the thread-exit record first, so that nothing is opened that would have
        // to be undone (a sink may already be owed a wake by the time it is tracked).
        try thread_exit.reserve(hooks);
        const opened = registry.with(key, openSinkRegistered, .{ wake, wake_context, relays }) orelse return error.Closed;
        const attached = try opened;
        // The new sink holds the counter, so it outlives the registry lock.
        attached.counter.trackSink(attached.sink);
        return attached;
    }

    fn openSinkRegistered(opaque_counter: *anyopaque, wake: ?queue_module.WakeFunction, wake_context: ?*anyopaque, relays: bool) Error!Attached {
        const counter: *Counter = @ptrCast(@alignCast(opaque_counter));
        return .{ .counter = counter, .sink = try counter.openSink(wake, wake_context, relays) };
    }

    /// Starts shutdown without blocking: deletes every live object, refuses further
    /// mutations and lets the dispatcher drain the queue and exit.
    pub fn close(counter: *Counter, caller: Sink) Error!Outcome {
        counter.lockAll();
        defer counter.unlockAll();
        try counter.checkOpen(caller);
        return counter.closeLocked(caller);
    }

    fn closeLocked(counter: *Counter, caller: Sink) Outcome {
        assert(counter.state == .open);
        var released: List = .{};
        counter.table.releaseAll(&released);
        lifecycle.transition(State, &counter.state, .closing);
        const outcome = counter.route(&released, caller);
        // The dispatcher must see the state change even when nothing was queued.
        counter.condition.signal();
        return outcome;
    }

    /// Closes if still open, waits for the dispatcher to run every queued native callback
    /// and exit, and drops the opener's hold (freeing the counter if no sink is open).
    ///
    /// Blocks. Must not be called from the dispatcher thread (a callback), nor from a
    /// thread that services a wake while the state is not yet `closed`: the dispatcher
    /// may be blocked in that wake.
    pub fn destroy(counter: *Counter) Error!void {
        if (counter.dispatcher_thread_id.load(.acquire) == std.Thread.getCurrentId()) {
            return error.WrongThread;
        }
        counter.lock();
        assert(!counter.destroy_claimed);
        counter.destroy_claimed = true;
        counter.mutex.unlock();
        counter.destroyClaimed();
    }

    fn destroyClaimed(counter: *Counter) void {
        counter.lockAll();
        assert(counter.destroy_claimed);
        assert(!counter.destroyed);
        if (counter.state == .open) _ = counter.closeLocked(sink_none);
        counter.unlockAll();

        // Never the dispatcher joining itself: `destroy` refuses it, and no thread-exit hook
        // runs on a library thread (`destroyOnThreadExit` refuses them).
        counter.thread.join();
        // Every lock, as for every hold dropped: a thread that dropped another hold may still
        // be inside its own every-lock section, and the memory must outlive that.
        counter.lockAll();
        assert(counter.state == .closed);
        assert(counter.queue.native.len == 0);
        // The opener's hold stops being accounted for, then goes.
        counter.destroyed = true;
        const last = counter.dropHold();
        counter.unlockAll();
        if (last) counter.deallocate();
    }

    /// Pauses (spin-loop hints) a thread spends trying a mutex before sleeping on it.
    const lock_spins = 128;

    /// Takes a mutex, spinning briefly first. Critical sections are short (tens to hundreds
    /// of nanoseconds), so a contended mutex is usually free again sooner than a sleep in the
    /// kernel (a futex on Linux) and the wake-up would complete, which take microseconds.
    /// The pauses between attempts double (exponential backoff): a waiter that tried at every
    /// pause would keep the holder waiting for the mutex's cache line as it lets go.
    /// With two threads releasing objects of one shard (bench/threads.ts), pthread mutexes
    /// tried at every pause lost about a third of the throughput that Zig 0.15's futex-based
    /// mutex had; with this backoff and `sync.Mutex`'s `held` hint, they lose about none.
    fn spinLock(mutex: *sync.Mutex) void {
        var pauses: u32 = 1;
        while (pauses < lock_spins) : (pauses *= 2) {
            if (mutex.tryLock()) return;
            for (0..pauses) |_| std.atomic.spinLoopHint();
        }
        mutex.lock();
    }

    /// Takes `mutex`: the queue's lock.
    pub fn lock(counter: *Counter) void {
        spinLock(&counter.mutex);
    }

    fn lockShard(counter: *Counter, shard: u32) void {
        spinLock(&counter.shard_locks[shard].mutex);
    }

    fn unlockShard(counter: *Counter, shard: u32) void {
        counter.shard_locks[shard].mutex.unlock();
    }

    /// Every shard, in index order, then the queue: for operations across objects.
    pub fn lockAll(counter: *Counter) void {
        for (0..table_module.shard_count) |shard| counter.lockShard(@intCast(shard));
        counter.lock();
    }

    pub fn unlockAll(counter: *Counter) void {
        counter.mutex.unlock();
        var shard: u32 = table_module.shard_count;
        while (shard > 0) {
            shard -= 1;
            counter.unlockShard(shard);
        }
    }

    /// The shard this thread creates objects in, given out round-robin on a thread's first
    /// create: threads that create and release their own objects then share no lock (up to
    /// `shard_count` of them).
    fn threadShard() u32 {
        if (thread_shard == no_shard) {
            thread_shard = next_thread_shard.fetchAdd(1, .monotonic) % table_module.shard_count;
        }
        return thread_shard;
    }

    /// The holds the counter's state accounts for, which `holds` must equal whenever no
    /// hold is changing hands: the opener's until `destroy` sets `destroyed`, one per sink
    /// slot not free, one per waker thread not yet exited. Every lock held.
    fn holdsAccounted(counter: *const Counter) u32 {
        var sinks_in_use: u32 = 0;
        for (&counter.queue.sinks) |*sink| sinks_in_use += @intFromBool(sink.state != .free);
        const wakers_live: u32 = @intCast(counter.wakers_live);
        return @intFromBool(!counter.destroyed) + sinks_in_use + wakers_live;
    }

    /// Takes a hold for a holder the state has just begun to account for (a sink just
    /// opened, a waker just started). Called with every lock held, like `dropHold`.
    fn takeHold(counter: *Counter) void {
        // Holds are taken only while open, and the opener's hold outlives `open`: so a hold
        // is never taken on a counter whose holds have reached zero, which `dropHold`
        // relies on to free the memory exactly once.
        assert(counter.state == .open);
        assert(!counter.destroyed);
        assert(counter.holds > 0);
        assert(counter.holds + 1 == counter.holdsAccounted());
        counter.holds += 1;
    }

    /// Drops one hold; true if it was the last, when the caller must `deallocate` once it
    /// has let go of every lock. The caller has just stopped the state accounting for it
    /// (freed the sink's slot, counted its waker out, or set `destroyed`). Called with
    /// every lock held (`lockAll`): the memory must outlive any other thread's every-lock
    /// section, which may have just dropped a hold.
    pub fn dropHold(counter: *Counter) bool {
        assert(counter.holds > 0);
        assert(counter.holds == counter.holdsAccounted() + 1);
        counter.holds -= 1;
        if (counter.holds > 0) return false;
        // The last hold goes once the lifecycle has ended, and only once: the opener's is
        // dropped only when `closed`, and no hold is taken after `open` (`takeHold`).
        assert(counter.state == .closed);
        assert(counter.destroyed);
        return true;
    }

    /// Frees everything. Only once no hold remains: nobody can reach the counter but
    /// through the registry, which `remove` serialises against.
    pub fn deallocate(counter: *Counter) void {
        registry.remove(counter.key);
        assert(counter.holds == 0);
        assert(counter.destroyed);
        assert(counter.holdsAccounted() == 0);
        assert(counter.wakers_blocked == 0);
        counter.queue.assertDrained();
        counter.table.deinit();
        const allocator = counter.allocator;
        allocator.destroy(counter);
    }

    pub fn stateGet(counter: *Counter) State {
        counter.lock();
        defer counter.mutex.unlock();
        return counter.state;
    }

    /// Opens a sink for the calling thread: an outbox of tokens, and how its owner learns
    /// to drain it. With `wake`, a waker thread calls it (with no lock held) once per
    /// batch; without, the owner polls, or relies on relaying sinks (`relays`: an owner that
    /// passes on the wakes owed to wake-less sinks, see `lifecycle.zig`). The sink is closed
    /// for the thread if the thread exits first.
    pub fn sinkOpen(counter: *Counter, wake: ?queue_module.WakeFunction, wake_context: ?*anyopaque, relays: bool) Error!u32 {
        try thread_exit.reserve(hooks);
        const sink = try counter.openSink(wake, wake_context, relays);
        counter.trackSink(sink);
        return sink;
    }

    fn openSink(counter: *Counter, wake: ?queue_module.WakeFunction, wake_context: ?*anyopaque, relays: bool) Error!u32 {
        counter.lockAll();
        defer counter.unlockAll();
        try counter.checkOpen(sink_none);
        const sink = try counter.queue.sinkOpen(wake, wake_context, relays);
        // The sink's hold, which `freeSink` drops.
        counter.takeHold();
        if (wake != null) {
            counter.startWaker(sink) catch |err| {
                _ = counter.queue.sinkStop(&counter.table.callbacks, sink);
                counter.queue.sinkFree(sink);
                // Never the last: the counter is open, so the opener's hold remains.
                const last = counter.dropHold();
                assert(!last);
                return err;
            };
        }
        if (relays and wake != null and counter.queue.relay_owed != 0) {
            // Wakes owed to wake-less sinks found no relay until now.
            var routed: queue_module.Routed = .{};
            counter.queue.armRelay(&routed);
            counter.signalWakers(routed.wake_sinks);
        }
        return sink;
    }

    fn startWaker(counter: *Counter, sink: u32) Error!void {
        const waker = try counter.allocator.create(queue_module.Waker);
        waker.* = .{ .sink = sink };
        // The waker starts by taking the mutex, so it waits until the caller is done.
        const thread = std.Thread.spawn(.{ .stack_size = dispatcher.waker_stack_size }, dispatcher.waker, .{ counter, waker }) catch {
            counter.allocator.destroy(waker);
            return error.SystemResources;
        };
        // Still alive: it waits for the lock this thread holds.
        nameThread(thread, "refscope-wake");
        thread.detach();
        assert(counter.queue.sinks[sink].waker == null);
        counter.queue.sinks[sink].waker = waker;
        // The waker's hold, which the waker drops as it exits (`dispatcher.waker`).
        counter.wakers_live += 1;
        counter.takeHold();
    }

    /// Lets a sink's waker go: it exits at its next look, touching no slot, and frees its
    /// own record. One let go inside a wake call is counted until that call returns.
    fn letWakerGo(counter: *Counter, sink: u32) void {
        const waker = counter.queue.sinks[sink].waker orelse return;
        counter.queue.sinks[sink].waker = null;
        // Let go once: the slot forgets it here, and only the slot could let it go.
        assert(!waker.let_go);
        assert(waker.sink == sink);
        waker.let_go = true;
        // Counted blocked until the call returns; the waker uncounts it then.
        if (waker.calling) counter.wakers_blocked += 1;
        assert(counter.wakers_blocked <= counter.wakers_live);
        waker.condition.signal();
    }

    /// Records the sink with the calling thread's exit hook, in the room `reserve` made.
    /// Runs with no lock held: the hook's bookkeeping may consult the registry.
    fn trackSink(counter: *Counter, sink: u32) void {
        counter.lock();
        const generation = counter.queue.sinks[sink].generation;
        counter.mutex.unlock();
        thread_exit.record(counter.key, sink, generation);
    }

    /// The sink's generation, which tells it apart from the slot's earlier sinks.
    pub fn sinkGeneration(counter: *Counter, sink: u32) Error!u32 {
        counter.lock();
        defer counter.mutex.unlock();
        if (!counter.queue.isSink(sink)) return error.InvalidArgument;
        return counter.queue.sinks[sink].generation;
    }

    /// Moves the wake-less sinks owed a wake into `out`, for the caller to wake them; see
    /// `Outcome.relay`.
    pub fn takeRelay(counter: *Counter, out: []u32) usize {
        counter.lock();
        defer counter.mutex.unlock();
        return counter.queue.takeRelay(out);
    }

    /// Releases every reference the sink holds, on its behalf, and hands over every
    /// callback registered on the objects it owns: what a closing JS thread does before it
    /// drains its sink a last time and closes it.
    pub fn sinkRelease(counter: *Counter, sink: u32) Error!Outcome {
        counter.lockAll();
        defer counter.unlockAll();
        if (!counter.queue.isSink(sink)) return error.InvalidArgument;
        var released: List = .{};
        counter.table.sinkRelease(sink, &released);
        return counter.route(&released, sink);
    }

    pub const SinkClosed = enum {
        closed,
        /// Its waker is inside a wake call (perhaps to the caller's own thread): call
        /// again, after letting that wake run, to finish.
        pending,
    };

    /// Closes the sink: releases what it still holds (as `sinkRelease`), drops its
    /// undelivered tokens, refuses it new ones, and stops its waker. Once the waker is out
    /// of any wake call, frees the slot and drops the sink's hold on the counter, which may
    /// free the counter: the caller must not use it afterwards unless it holds another
    /// hold. Until then it returns `pending` and must be called again; the wake callback
    /// may be freed only after `closed`. Never waits: the waker may be inside a wake to the
    /// caller.
    pub fn sinkClose(counter: *Counter, sink: u32) Error!SinkClosed {
        counter.lockAll();
        if (!counter.queue.isSinkSlot(sink)) {
            counter.unlockAll();
            return error.InvalidArgument;
        }
        counter.stopSink(sink);
        const slot = &counter.queue.sinks[sink];
        const calling = if (slot.waker) |waker| waker.calling else false;
        if (calling) {
            counter.unlockAll();
            return .pending;
        }
        const last = counter.freeSink(sink);
        counter.unlockAll();
        if (last) counter.deallocate();
        return .closed;
    }

    /// Ends an open sink's participation (`open` → `closing`): releases what it holds and
    /// stops its deliveries. A closing sink is left as it is.
    fn stopSink(counter: *Counter, sink: u32) void {
        const slot = &counter.queue.sinks[sink];
        if (slot.state != .open) return;
        var released: List = .{};
        counter.table.sinkRelease(sink, &released);
        counter.tokens_discarded += counter.queue.sinkStop(&counter.table.callbacks, sink);
        // Closing first, so that this sink's own tokens are dropped, not queued, and that it
        // is not chosen to relay.
        _ = counter.route(&released, table_module.sink_none);
    }

    /// Lets the waker go, frees the slot and drops its hold (the one `openSink` took);
    /// true if that was the last.
    fn freeSink(counter: *Counter, sink: u32) bool {
        counter.letWakerGo(sink);
        counter.queue.sinkFree(sink);
        return counter.dropHold();
    }

    /// `thread_exit` hook: the thread that opened the sink exited without closing it. The
    /// slot is freed at once, even if its waker is inside a wake that never returns.
    fn closeAbandoned(key: f64, sink: u32, generation: u32) void {
        const counter = registry.with(key, closeAbandonedRegistered, .{ sink, generation }) orelse return;
        if (counter) |last| last.deallocate();
    }

    fn closeAbandonedRegistered(opaque_counter: *anyopaque, sink: u32, generation: u32) ?*Counter {
        const counter: *Counter = @ptrCast(@alignCast(opaque_counter));
        counter.lockAll();
        defer counter.unlockAll();
        if (!counter.queue.isSinkGeneration(sink, generation)) return null;
        counter.stopSink(sink);
        return if (counter.freeSink(sink)) counter else null;
    }

    /// Closes and destroys the counter if the calling thread exits first (without
    /// `destroy`): for a counter opened by a JS Worker, whose end is the counter's end.
    /// Refused on the library's own threads (a native callback, a wake): their exit is
    /// the counter's own doing, and the hook would have the dispatcher join itself.
    pub fn destroyOnThreadExit(counter: *Counter) Error!void {
        if (on_library_thread) return error.WrongThread;
        try thread_exit.reserve(hooks);
        thread_exit.record(counter.key, opener_marker, 0);
    }

    const opener_marker = thread_exit.opener;
    const hooks: thread_exit.Hooks = .{ .close = closeAbandonedOrDestroy, .is_open = isOpenRegistered };

    fn closeAbandonedOrDestroy(key: f64, sink: u32, generation: u32) void {
        if (sink != opener_marker) return closeAbandoned(key, sink, generation);
        // Claimed under the registry lock; destroyed outside it, as destroy joins the
        // dispatcher, whose callbacks may attach (taking the registry lock).
        const claimed = registry.with(key, claimDestroy, .{}) orelse return;
        const counter = claimed orelse return;
        counter.destroyClaimed();
    }

    fn claimDestroy(opaque_counter: *anyopaque) ?*Counter {
        const counter: *Counter = @ptrCast(@alignCast(opaque_counter));
        counter.lock();
        defer counter.mutex.unlock();
        if (counter.destroy_claimed) return null;
        counter.destroy_claimed = true;
        return counter;
    }

    fn isOpenRegistered(key: f64, sink: u32, generation: u32) bool {
        return registry.with(key, isOpenLocked, .{ sink, generation }) orelse false;
    }

    fn isOpenLocked(opaque_counter: *anyopaque, sink: u32, generation: u32) bool {
        const counter: *Counter = @ptrCast(@alignCast(opaque_counter));
        counter.lock();
        defer counter.mutex.unlock();
        if (sink == opener_marker) return !counter.destroy_claimed;
        return counter.queue.isSinkGeneration(sink, generation);
    }

    /// Copies up to `tokens.len` tokens out of the sink, in order. Zero means empty, and
    /// re-arms the wake. Allowed in every state until the sink closes.
    pub fn sinkDrain(counter: *Counter, sink: u32, tokens: []u32) Error!usize {
        counter.lock();
        defer counter.mutex.unlock();
        if (!counter.queue.isSink(sink)) return error.InvalidArgument;
        return counter.queue.drain(&counter.table.callbacks, sink, tokens);
    }

    pub fn sinkPending(counter: *Counter, sink: u32) Error!u32 {
        counter.lock();
        defer counter.mutex.unlock();
        if (!counter.queue.isSink(sink)) return error.InvalidArgument;
        return counter.queue.sinks[sink].outbox.len;
    }

    /// Creates an object owned by `caller` (native code when `sink_none`), in the calling
    /// thread's shard, or the next one with room.
    pub fn create(counter: *Counter, caller: Sink, options: CreateOptions) Error!Id {
        var owned = options;
        owned.owner = caller;
        const global = options.contains.len > 0 or options.lineage.len > 0;
        if (global) counter.lockAll();
        defer if (global) counter.unlockAll();
        const first = threadShard();
        var result: Error!Id = error.Limit;
        for (0..table_module.shard_count) |offset| {
            const shard: u32 = @intCast((first + offset) % table_module.shard_count);
            if (!global) counter.lockShard(shard);
            defer if (!global) counter.unlockShard(shard);
            try counter.checkOpen(caller);
            owned.shard = shard;
            result = counter.table.create(owned);
            if (result != error.Limit) return result;
        }
        return result;
    }

    /// Runs `function(table, args...)` holding the shard of `id`.
    fn inShard(counter: *Counter, id: Id, caller: Sink, comptime function: anytype, args: anytype) Error!@typeInfo(@typeInfo(@TypeOf(function)).@"fn".return_type.?).error_union.payload {
        const shard = Table.shardOfId(id);
        counter.lockShard(shard);
        defer counter.unlockShard(shard);
        try counter.checkOpen(caller);
        return @call(.auto, function, .{&counter.table} ++ args);
    }

    /// Runs `function(table, args...)` holding the shard of `id` and the queue (for
    /// operations that move callbacks), then routes what left the table.
    fn inShardWithQueue(counter: *Counter, id: Id, caller: Sink, comptime function: anytype, args: anytype) Error!@typeInfo(@typeInfo(@TypeOf(function)).@"fn".return_type.?).error_union.payload {
        const shard = Table.shardOfId(id);
        counter.lockShard(shard);
        defer counter.unlockShard(shard);
        counter.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(caller);
        return @call(.auto, function, .{&counter.table} ++ args);
    }

    /// Adds one local reference: without any lock when the owner retains an object it
    /// holds (`Table.retainFast`), else holding the object's shard.
    pub fn retain(counter: *Counter, id: Id, caller: Sink) Error!void {
        if (counter.table.lock_free and counter.table.retainFast(id, caller)) return;
        return counter.inShard(id, caller, Table.retain, .{ id, caller });
    }

    /// Drops one local reference: without any lock when it is the owner's and not the last,
    /// or the last of an object with nothing else to it (`Table.releaseFast`); else holding
    /// just the object's shard unless its settle needs more: the queue to hand callbacks
    /// over, every shard to follow links.
    pub fn release(counter: *Counter, id: Id, caller: Sink) Error!Outcome {
        switch (if (counter.table.lock_free) counter.table.releaseFast(id, caller) else .locked) {
            .locked => {},
            .done => return .ok,
            .done_signal => {
                // Slots wait to be erased: the dispatcher's rounds reap them.
                counter.signalDispatcher();
                return .ok;
            },
        }
        const shard = Table.shardOfId(id);
        counter.lockShard(shard);
        counter.checkOpen(caller) catch |err| {
            counter.unlockShard(shard);
            return err;
        };
        const released = counter.table.releaseOnly(id, caller) catch |err| {
            counter.unlockShard(shard);
            return err;
        };
        var list: List = .{};
        switch (released.follow) {
            .none => {
                counter.unlockShard(shard);
                return .ok;
            },
            .local => {
                counter.table.settleSlot(released.slot, &list);
                assert(list.len == 0);
                const emptied = counter.table.takeTrimSignal();
                counter.unlockShard(shard);
                // The shard's last object: the dispatcher gives its memory back later.
                if (emptied) counter.signalDispatcher();
                return .ok;
            },
            .callbacks => {
                counter.lock();
                counter.table.settleSlot(released.slot, &list);
                const outcome = counter.route(&list, caller);
                counter.mutex.unlock();
                counter.unlockShard(shard);
                return outcome;
            },
            .global => {
                // Settle under every shard; meanwhile another thread may have settled it.
                counter.unlockShard(shard);
                counter.lockAll();
                defer counter.unlockAll();
                counter.table.settleId(id, &list);
                return counter.route(&list, caller);
            },
        }
    }

    pub fn releaseBatch(counter: *Counter, ids: []const Id, caller: Sink) Error!Outcome {
        counter.lockAll();
        defer counter.unlockAll();
        try counter.checkOpen(caller);
        var released: List = .{};
        try counter.table.releaseBatch(ids, caller, &released);
        return counter.route(&released, caller);
    }

    pub fn submittedAdd(counter: *Counter, ids: []const Id, caller: Sink) Error!void {
        counter.lockAll();
        defer counter.unlockAll();
        try counter.checkOpen(caller);
        return counter.table.submittedAdd(ids, caller);
    }

    pub fn submittedRemove(counter: *Counter, ids: []const Id, caller: Sink) Error!Outcome {
        counter.lockAll();
        defer counter.unlockAll();
        try counter.checkOpen(caller);
        var released: List = .{};
        try counter.table.submittedRemove(ids, caller, &released);
        return counter.route(&released, caller);
    }

    pub fn lineageAdd(counter: *Counter, ids: []const Id, caller: Sink) Error!void {
        counter.lockAll();
        defer counter.unlockAll();
        try counter.checkOpen(caller);
        return counter.table.lineageAdd(ids, caller);
    }

    pub fn lineageRemove(counter: *Counter, ids: []const Id, caller: Sink) Error!Outcome {
        counter.lockAll();
        defer counter.unlockAll();
        try counter.checkOpen(caller);
        var released: List = .{};
        try counter.table.lineageRemove(ids, caller, &released);
        return counter.route(&released, caller);
    }

    pub fn lend(counter: *Counter, id: Id, caller: Sink) Error!void {
        return counter.inShard(id, caller, Table.lend, .{ id, caller });
    }

    pub fn borrow(counter: *Counter, id: Id, lender: Sink, caller: Sink) Error!void {
        if (lender != sink_none and lender >= queue_module.sink_count_max) return error.InvalidArgument;
        return counter.inShard(id, caller, Table.borrow, .{ id, lender, caller });
    }

    /// Claims a reference that `lender`, in its `generation`, lent: `NoReference` when the
    /// slot's sink is no longer that one (it ended, and its lends were released),
    /// so that a stale claim can never take a later sink's lend. A native lender
    /// (`sink_none`) has no generation.
    pub fn borrowFrom(counter: *Counter, id: Id, lender: Sink, generation: u32, caller: Sink) Error!void {
        if (lender == sink_none) return counter.borrow(id, lender, caller);
        if (lender >= queue_module.sink_count_max) return error.InvalidArgument;
        const shard = Table.shardOfId(id);
        counter.lockShard(shard);
        defer counter.unlockShard(shard);
        try counter.checkOpen(caller);
        // A slot's state and generation change only with every lock held: this shard's
        // lock is enough to read them.
        if (!counter.queue.isSink(lender) or counter.queue.sinks[lender].generation != generation) {
            // The object's own errors come first, as for any other borrow.
            _ = try counter.table.info(id);
            return error.NoReference;
        }
        return counter.table.borrow(id, lender, caller);
    }

    pub fn free(counter: *Counter, id: Id, caller: Sink) Error!Outcome {
        const shard = Table.shardOfId(id);
        counter.lockShard(shard);
        defer counter.unlockShard(shard);
        counter.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(caller);
        var released: List = .{};
        try counter.table.free(id, caller, &released);
        return counter.route(&released, caller);
    }

    /// Registers a callback; false when it could never run (see `Table.register`). A sink
    /// callback must be registered by its own sink.
    pub fn register(counter: *Counter, id: Id, caller: Sink, kind: CallbackKind, callback: callback_module.Callback) Error!bool {
        try checkCallbackCaller(callback, caller);
        return counter.inShardWithQueue(id, caller, Table.register, .{ id, caller, kind, callback });
    }

    pub fn unregister(counter: *Counter, id: Id, caller: Sink, kind: CallbackKind, callback: callback_module.Callback) Error!bool {
        try checkCallbackCaller(callback, caller);
        return counter.inShardWithQueue(id, caller, Table.unregister, .{ id, caller, kind, callback });
    }

    /// A sink callback is registered (or removed) by its own sink; `sink_none` is no sink,
    /// and a token addressed to it could never be delivered.
    fn checkCallbackCaller(callback: callback_module.Callback, caller: Sink) Error!void {
        switch (callback) {
            .native => {},
            .sink => |target| if (target.sink != caller or caller == sink_none) return error.InvalidArgument,
        }
    }

    pub fn sinkTokens(counter: *Counter, id: Id, sink: u32, kind: CallbackKind, tokens: []u32) Error!usize {
        return counter.inShardWithQueue(id, sink, Table.sinkTokens, .{ id, sink, kind, tokens });
    }

    pub fn info(counter: *Counter, id: Id) Error!table_module.Info {
        return counter.inShard(id, sink_none, Table.info, .{id});
    }

    pub fn holdings(counter: *Counter, id: Id, out: []table_module.Holding) Error!usize {
        return counter.inShard(id, sink_none, Table.holdings, .{ id, out });
    }

    /// Copies records of live objects from slot `start.*` on, advancing it past the last
    /// slot examined; returns how many records were written. One page is consistent; a
    /// snapshot taken in several pages is not atomic.
    pub fn snapshot(counter: *Counter, start: *u32, out: []Record) Error!usize {
        counter.lockAll();
        defer counter.unlockAll();
        try counter.checkOpen(sink_none);
        // Objects released without a lock leave the figures first.
        counter.table.reapAll();
        var count: usize = 0;
        var slot = start.*;
        while (slot < counter.table.slotCount() and count < out.len) : (slot += 1) {
            const id = counter.table.idAt(slot) orelse continue;
            out[count] = .{ .id = id, .info = counter.table.infoAt(slot) };
            count += 1;
        }
        start.* = slot;
        return count;
    }

    pub fn stats(counter: *Counter) Stats {
        counter.lockAll();
        defer counter.unlockAll();
        // Objects released without a lock leave the figures first.
        counter.table.reapAll();
        var sink_tokens_pending: u64 = 0;
        var sinks_open: u64 = 0;
        for (&counter.queue.sinks) |*sink| {
            sink_tokens_pending += sink.outbox.len;
            sinks_open += @intFromBool(sink.state != .free);
        }
        return .{
            .objects_live = counter.table.objectsLive(),
            .bytes_live = counter.table.bytesLive(),
            .objects_created = counter.table.objectsCreated(),
            .callbacks_registered = counter.table.callbacksRegistered(),
            .callbacks_released = counter.table.callbacksReleased(),
            .native_callbacks_queued = counter.queue.native.len,
            .native_callbacks_run = counter.native_callbacks_run,
            .sink_tokens_pending = sink_tokens_pending,
            .wakes_sent = counter.wakes_sent,
            .sinks_open = sinks_open,
            .tokens_discarded = counter.tokens_discarded,
            .memory_bytes = counter.table.memoryBytes(),
            .wakers_blocked = counter.wakers_blocked,
            .wakers_live = counter.wakers_live,
        };
    }

    fn signalDispatcher(counter: *Counter) void {
        counter.lock();
        defer counter.mutex.unlock();
        counter.condition.signal();
    }

    /// One round of giving memory back (see table.zig, "Giving memory back"), run by the
    /// dispatcher with no lock held: each emptied shard that has stayed empty since the last
    /// round, then the callback pool if no callback is left. True if another round is due.
    pub fn trimRound(counter: *Counter) bool {
        counter.table.trim_wanted.store(false, .monotonic);
        var again = false;
        for (0..table_module.shard_count) |index| {
            const shard: u32 = @intCast(index);
            counter.lockShard(shard);
            defer counter.unlockShard(shard);
            if (counter.table.trimShard(shard, false)) again = true;
        }
        counter.lock();
        defer counter.mutex.unlock();
        if (again) {
            counter.table.trim_wanted.store(true, .monotonic);
        } else {
            counter.table.trimCallbacks();
        }
        return again;
    }

    fn checkOpen(counter: *Counter, caller: Sink) Error!void {
        if (counter.state != .open) return error.Closed;
        if (caller != sink_none and !counter.queue.isSink(caller)) return error.InvalidArgument;
    }

    fn route(counter: *Counter, released: *List, caller: Sink) Outcome {
        // Once `closed` the dispatcher has exited, and the table is empty (`dispatcher.main`
        // asserts it): nothing may leave it for the queue.
        if (counter.state == .closed) assert(released.len == 0);
        const routed = counter.queue.route(&counter.table.callbacks, released, caller);
        counter.tokens_discarded += routed.discarded;
        if (counter.table.takeTrimSignal()) counter.condition.signal();
        if (routed.signal_dispatcher) counter.condition.signal();
        counter.signalWakers(routed.wake_sinks);
        return Outcome.of(routed);
    }

    /// Signals the waker of each sink in `wake_sinks` (bit i: sink i), which has a wake to
    /// make.
    fn signalWakers(counter: *Counter, wake_sinks_initial: u64) void {
        var wake_sinks = wake_sinks_initial;
        while (wake_sinks != 0) : (wake_sinks &= wake_sinks - 1) {
            counter.queue.sinks[@ctz(wake_sinks)].waker.?.condition.signal();
        }
    }
};
