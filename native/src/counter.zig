//! A reference counter: the table, the callback queue and the dispatcher thread, behind one
//! mutex, with the lifecycle open → closing → closed → destroyed.
//!
//! Every public function is safe to call from any thread. Each takes the mutex for a
//! bounded amount of work (a batch is bounded by its length) and none of them ever runs a
//! user callback or waits for one: callbacks that leave the table are routed to the queue
//! and the dispatcher is signalled. The exception is `destroy`, which joins the dispatcher.
//!
//! Lifecycle. `close` deletes every live object (so every registered callback is
//! delivered exactly once, shutdown included), refuses all later mutations, and lets the
//! dispatcher finish the queue and exit, which moves the state to `closed`. Sink outboxes
//! stay drainable until `destroy`, which joins the thread and frees the memory.

const std = @import("std");
const assert = std.debug.assert;
const callback = @import("callback.zig");
const table_module = @import("table.zig");
const queue_module = @import("queue.zig");
const dispatcher = @import("dispatcher.zig");

const Table = table_module.Table;
const Queue = queue_module.Queue;
pub const Id = table_module.Id;
pub const sink_none = queue_module.sink_none;

pub const Error = table_module.Error || error{
    /// The counter is closing or closed.
    Closed,
    /// An argument that is not an id is out of its domain (an unknown sink, say).
    InvalidArgument,
    /// The call would deadlock on this thread (destroying from the dispatcher).
    WrongThread,
    /// The operating system refused a resource (the dispatcher thread).
    SystemResources,
};

/// What a successful mutation asks of its caller.
pub const Outcome = enum {
    ok,
    /// Tokens arrived for `caller_sink` and no wake was sent for them: drain that sink.
    drain,
};

pub const State = enum(u8) { open, closing, closed };

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
};

pub const Counter = struct {
    allocator: std.mem.Allocator,
    mutex: std.Thread.Mutex = .{},
    /// Signalled when the queue gains work or the state leaves `open`; the dispatcher waits.
    condition: std.Thread.Condition = .{},
    table: Table,
    queue: Queue = .{},
    state: State = .open,
    thread: std.Thread = undefined,
    /// Zero until the dispatcher starts; see `dispatcher.main`.
    dispatcher_thread_id: std.atomic.Value(std.Thread.Id) = .init(0),
    native_callbacks_run: u64 = 0,
    wakes_sent: u64 = 0,

    /// Allocates a counter and starts its dispatcher thread.
    pub fn open(allocator: std.mem.Allocator) Error!*Counter {
        const counter = try allocator.create(Counter);
        errdefer allocator.destroy(counter);
        counter.* = .{ .allocator = allocator, .table = Table.init(allocator) };
        counter.thread = std.Thread.spawn(.{}, dispatcher.main, .{counter}) catch
            return error.SystemResources;
        return counter;
    }

    /// Starts shutdown without blocking: deletes every live object, refuses further
    /// mutations and lets the dispatcher drain the queue and exit.
    pub fn close(counter: *Counter, caller_sink: u32) Error!Outcome {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(caller_sink);
        return counter.closeLocked(caller_sink);
    }

    fn closeLocked(counter: *Counter, caller_sink: u32) Outcome {
        assert(counter.state == .open);
        var released: callback.List = .{};
        counter.table.releaseAll(&released);
        counter.state = .closing;
        const outcome = counter.route(&released, caller_sink);
        // The dispatcher must see the state change even when nothing was queued.
        counter.condition.signal();
        return outcome;
    }

    /// Closes if still open, waits for the dispatcher to run every queued native callback
    /// and exit, then frees everything. Tokens left undrained in a sink are discarded.
    ///
    /// Blocks. Must not be called from the dispatcher thread (a callback), nor from a
    /// thread that services a wake while the state is not yet `closed`: the dispatcher
    /// may be blocked in that wake.
    pub fn destroy(counter: *Counter) Error!void {
        if (counter.dispatcher_thread_id.load(.acquire) == std.Thread.getCurrentId()) {
            return error.WrongThread;
        }
        counter.mutex.lock();
        if (counter.state == .open) _ = counter.closeLocked(sink_none);
        counter.mutex.unlock();

        counter.thread.join();
        assert(counter.state == .closed);
        assert(counter.queue.native.len == 0);
        counter.queue.discardAll(&counter.table.pool);
        counter.table.deinit();
        const allocator = counter.allocator;
        allocator.destroy(counter);
    }

    pub fn stateGet(counter: *Counter) State {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        return counter.state;
    }

    /// Opens a sink: an outbox of tokens for one JS runtime instance, and the wake that
    /// tells it to drain. `wake` may be null for an owner that polls.
    pub fn sinkOpen(counter: *Counter, wake: ?queue_module.WakeFunction, wake_context: ?*anyopaque) Error!u32 {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(sink_none);
        return counter.queue.sinkOpen(wake, wake_context);
    }

    /// Copies up to `tokens.len` tokens out of the sink, in order. Zero means empty, and
    /// re-arms the wake. Allowed in every state until `destroy`.
    pub fn sinkDrain(counter: *Counter, sink: u32, tokens: []u32) Error!usize {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        if (!counter.queue.isSink(sink)) return error.InvalidArgument;
        return counter.queue.drain(&counter.table.pool, sink, tokens);
    }

    pub fn sinkPending(counter: *Counter, sink: u32) Error!u32 {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        if (!counter.queue.isSink(sink)) return error.InvalidArgument;
        return counter.queue.sinks[sink].outbox.len;
    }

    pub fn create(counter: *Counter, size_bytes: u64) Error!Id {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(sink_none);
        return counter.table.create(size_bytes);
    }

    pub fn retain(counter: *Counter, id: Id) Error!void {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(sink_none);
        return counter.table.retain(id);
    }

    pub fn release(counter: *Counter, id: Id, caller_sink: u32) Error!Outcome {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(caller_sink);
        var released: callback.List = .{};
        try counter.table.release(id, &released);
        return counter.route(&released, caller_sink);
    }

    pub fn releaseBatch(counter: *Counter, ids: []const Id, caller_sink: u32) Error!Outcome {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(caller_sink);
        var released: callback.List = .{};
        try counter.table.releaseBatch(ids, &released);
        return counter.route(&released, caller_sink);
    }

    pub fn submittedAdd(counter: *Counter, ids: []const Id) Error!void {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(sink_none);
        return counter.table.submittedAdd(ids);
    }

    pub fn submittedRemove(counter: *Counter, ids: []const Id, caller_sink: u32) Error!Outcome {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(caller_sink);
        var released: callback.List = .{};
        try counter.table.submittedRemove(ids, &released);
        return counter.route(&released, caller_sink);
    }

    pub fn free(counter: *Counter, id: Id, caller_sink: u32) Error!Outcome {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(caller_sink);
        var released: callback.List = .{};
        try counter.table.free(id, &released);
        return counter.route(&released, caller_sink);
    }

    /// Registers a callback; false when the object is deleted or freed (see `Table.register`).
    pub fn register(counter: *Counter, id: Id, cb: callback.Callback) Error!bool {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(sink_none);
        switch (cb) {
            .native => {},
            .sink => |target| if (!counter.queue.isSink(target.sink)) return error.InvalidArgument,
        }
        return counter.table.register(id, cb);
    }

    pub fn info(counter: *Counter, id: Id) Error!table_module.Info {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        try counter.checkOpen(sink_none);
        return counter.table.info(id);
    }

    pub fn stats(counter: *Counter) Stats {
        counter.mutex.lock();
        defer counter.mutex.unlock();
        var sink_tokens_pending: u64 = 0;
        for (&counter.queue.sinks) |*sink| sink_tokens_pending += sink.outbox.len;
        return .{
            .objects_live = counter.table.objects_live,
            .bytes_live = counter.table.bytes_live,
            .objects_created = counter.table.objects_created,
            .callbacks_registered = counter.table.callbacks_registered,
            .callbacks_released = counter.table.callbacks_released,
            .native_callbacks_queued = counter.queue.native.len,
            .native_callbacks_run = counter.native_callbacks_run,
            .sink_tokens_pending = sink_tokens_pending,
            .wakes_sent = counter.wakes_sent,
        };
    }

    fn checkOpen(counter: *Counter, caller_sink: u32) Error!void {
        if (counter.state != .open) return error.Closed;
        if (caller_sink != sink_none and !counter.queue.isSink(caller_sink)) return error.InvalidArgument;
    }

    fn route(counter: *Counter, released: *callback.List, caller_sink: u32) Outcome {
        const routed = counter.queue.route(&counter.table.pool, released, caller_sink);
        if (routed.signal_dispatcher) counter.condition.signal();
        return if (routed.drain_caller) .drain else .ok;
    }
};
