//! A Zig program using librefscope through the `refscope` package: a cache of buffers whose
//! memory is given back, exactly once, when the last reference to a buffer goes. The same
//! scenario as the C example (native/examples/c/main.c).
//!
//! A dataset object contains eight block objects, each backed by an allocated buffer. The
//! program drops its own references to the blocks (the dataset keeps them in scope), a
//! worker thread holds a submitted-task reference on one block while it reads it, and then
//! the program drops the dataset: the seven idle blocks go out of scope, then the dataset;
//! the busy block goes only when the worker is done with it. Each out-of-scope callback
//! frees its buffer.
//!
//! The callbacks run on the counter's dispatcher thread, never inside the call that dropped
//! the reference, so the main thread waits for them on a condition with a deadline: a lost
//! callback fails the program instead of hanging it. Exits non-zero on the first
//! unexpected result.

const std = @import("std");
const refscope = @import("refscope");

const block_count = 8;
const block_bytes = 64 * 1024;
/// The block the worker holds.
const busy = 3;
/// The dataset's entry comes after the blocks'.
const dataset_index = block_count;
const wait_ns = 10 * std.time.ns_per_s;

/// One object the program tracks: a block (with its buffer) or the dataset (none).
const Entry = struct {
    cache: *Cache,
    index: usize,
    id: refscope.Id = 0,
    buffer: ?[]u8 = null,
    /// Out-of-scope callbacks run for it: must end at exactly 1.
    fired: u32 = 0,
};

/// What the callbacks change, guarded by `mutex`; `changed` is signalled after each. The
/// callbacks run on the library's dispatcher thread, which belongs to no `std.Io`: so the
/// lock is refscope's own (`refscope.sync`), which needs none.
const Cache = struct {
    allocator: std.mem.Allocator,
    main_thread: std.Thread.Id,
    mutex: refscope.sync.Mutex = .{},
    changed: refscope.sync.Condition = .{},
    entries: [block_count + 1]Entry = undefined,
    /// Entry indexes, in the order their callbacks ran.
    order: [block_count + 1]usize = undefined,
    callbacks: usize = 0,
    /// Callbacks whose id was not their entry's.
    wrong_id: usize = 0,
    /// Callbacks that ran on the main thread: must stay 0.
    on_main_thread: usize = 0,
    /// Buffer bytes not yet freed.
    bytes_live: usize = 0,
    worker_may_finish: bool = false,

    fn callbacksSoFar(cache: *Cache) usize {
        cache.mutex.lock();
        defer cache.mutex.unlock();
        return cache.callbacks;
    }

    /// Waits until `target` callbacks have run or `wait_ns` has passed (on the monotonic
    /// clock); returns how many ran.
    fn waitForCallbacks(cache: *Cache, io: std.Io, target: usize) usize {
        const deadline = std.Io.Clock.awake.now(io).addDuration(.fromNanoseconds(wait_ns));
        cache.mutex.lock();
        defer cache.mutex.unlock();
        while (cache.callbacks < target) {
            const remaining_ns = std.Io.Clock.awake.now(io).durationTo(deadline).nanoseconds;
            if (remaining_ns <= 0) break;
            cache.changed.timedWait(&cache.mutex, @intCast(remaining_ns)) catch {};
        }
        return cache.callbacks;
    }
};

/// Runs on the dispatcher thread, with no refscope lock held. Nobody references the object
/// any more, so nobody can use its buffer: free it. It must not block for long (the next
/// callbacks wait for it), so it only takes the cache's mutex for a few stores, and frees
/// outside it.
fn onOutOfScope(id: refscope.Id, entry: *Entry) void {
    const cache = entry.cache;
    cache.mutex.lock();
    const buffer = entry.buffer;
    entry.buffer = null; // a second call, if there ever were one, frees nothing
    entry.fired += 1;
    if (buffer) |bytes| cache.bytes_live -= bytes.len;
    if (id != entry.id) cache.wrong_id += 1;
    if (std.Thread.getCurrentId() == cache.main_thread) cache.on_main_thread += 1;
    if (cache.callbacks < cache.order.len) cache.order[cache.callbacks] = entry.index;
    cache.callbacks += 1;
    cache.changed.broadcast();
    cache.mutex.unlock();
    if (buffer) |bytes| cache.allocator.free(bytes);
}

const Worker = struct {
    counter: refscope.Counter,
    cache: *Cache,
    checksum: u64 = 0,
    result: refscope.Error!void = {},

    /// A task that took the busy block as an argument: the submitted-task reference (taken
    /// by the submitter, before the task started) keeps the buffer alive while it reads it.
    /// It finishes when the main thread says so, then drops the reference, from this thread.
    fn main(worker: *Worker) void {
        const cache = worker.cache;
        const block = &cache.entries[busy];
        for (block.buffer.?) |byte| worker.checksum += byte;
        cache.mutex.lock();
        while (!cache.worker_may_finish) cache.changed.wait(&cache.mutex);
        cache.mutex.unlock();
        worker.result = worker.counter.submittedRemove(&.{block.id});
    }
};

fn expect(ok: bool, what: []const u8) void {
    if (ok) return;
    std.debug.print("zig example: FAILED: {s}\n", .{what});
    std.process.exit(1);
}

fn expectError(expected: refscope.Error, result: anytype) void {
    if (result) |_| {
        std.debug.print("zig example: FAILED: expected error.{s}, got success\n", .{@errorName(expected)});
        std.process.exit(1);
    } else |err| if (err != expected) {
        std.debug.print("zig example: FAILED: expected error.{s}, got error.{s}\n", .{ @errorName(expected), @errorName(err) });
        std.process.exit(1);
    }
}

pub fn main(init: std.process.Init) !void {
    const io = init.io;
    // Unbuffered: a failure exits at once, and the lines printed so far must be out by then.
    // Streaming: a positional writer would write at offset 0 of a redirected stdout, over
    // whatever the shell or the build runner wrote there before.
    var stdout_writer = std.Io.File.stdout().writerStreaming(io, &.{});
    const out = &stdout_writer.interface;

    // The header the bindings were translated from must match the library that loaded.
    const c = refscope.c;
    expect(c.refscope_abi_version() == c.REFSCOPE_ABI_VERSION, "the library's ABI version is the header's");
    try out.print("librefscope ABI {d}\n", .{c.refscope_abi_version()});

    // Thread-safe: buffers are freed on the dispatcher thread. Its leak check runs last.
    var debug_allocator: std.heap.DebugAllocator(.{}) = .init;
    defer expect(debug_allocator.deinit() == .ok, "no leaked buffer");
    const allocator = debug_allocator.allocator();

    const cache = try allocator.create(Cache); // the callbacks point into it
    defer allocator.destroy(cache);
    cache.* = .{ .allocator = allocator, .main_thread = std.Thread.getCurrentId() };

    const counter = try refscope.Counter.open();
    var destroyed = false;
    // On an early error return: destroy still runs every callback, which frees the buffers.
    defer if (!destroyed) counter.destroy() catch {};

    var block_ids: [block_count]refscope.Id = undefined;
    for (cache.entries[0..block_count], &block_ids, 0..) |*block, *id, index| {
        block.* = .{ .cache = cache, .index = index };
        const buffer = try allocator.alloc(u8, block_bytes);
        @memset(buffer, @intCast(index + 1));
        block.buffer = buffer;
        cache.bytes_live += buffer.len;
        block.id = try counter.create(buffer.len, .{});
        expect(try counter.onOutOfScope(block.id, block, onOutOfScope), "a block's callback is registered");
        id.* = block.id;
    }
    const dataset = &cache.entries[dataset_index];
    dataset.* = .{ .cache = cache, .index = dataset_index };
    dataset.id = try counter.create(0, .{ .contains = &block_ids });
    expect(try counter.onOutOfScope(dataset.id, dataset, onOutOfScope), "the dataset's callback is registered");
    try out.print("created a dataset of {d} blocks of {d} KiB ({d} KiB live)\n", .{ block_count, block_bytes / 1024, cache.bytes_live / 1024 });

    // The blocks' own references go; the dataset contains them, so they stay in scope and
    // no callback can have been queued: this check is deterministic.
    try counter.releaseBatch(&block_ids);
    const info = try counter.info(block_ids[0]);
    expect(info.refs_local == 0 and info.contained_in_owned == 1 and info.callbacks_pending == 1, "a released block is kept in scope by the dataset");
    expect(cache.callbacksSoFar() == 0, "no callback while the dataset holds the blocks");
    try out.print("released the blocks' own references: no callback (the dataset keeps them in scope)\n", .{});

    // Submitting a task takes its references before the task starts, so it cannot lose a
    // race with the release below.
    var worker: Worker = .{ .counter = counter, .cache = cache };
    try counter.submittedAdd(&.{block_ids[busy]});
    const worker_thread = try std.Thread.spawn(.{}, Worker.main, .{&worker});

    // The last reference to the dataset: the idle blocks go out of scope first, then the
    // dataset. The call returns before any callback runs; the main thread waits.
    try counter.release(dataset.id);
    expect(cache.waitForCallbacks(io, block_count) == block_count, "the idle blocks' and the dataset's callbacks ran");
    {
        cache.mutex.lock();
        defer cache.mutex.unlock();
        expect(cache.entries[busy].fired == 0 and cache.entries[busy].buffer != null, "the busy block is still in scope");
        expect(cache.order[block_count - 1] == dataset_index, "contained objects go before their container");
        expect(cache.bytes_live == block_bytes, "only the busy block's bytes are live");
        cache.worker_may_finish = true;
        cache.changed.broadcast();
    }
    try out.print("released the dataset: {d} idle blocks, then the dataset, went out of scope; block {d} is busy\n", .{ block_count - 1, busy });

    worker_thread.join();
    try worker.result;
    expect(worker.checksum == (busy + 1) * block_bytes, "the worker read the busy block's bytes");
    expect(cache.waitForCallbacks(io, block_count + 1) == block_count + 1, "the busy block's callback ran");
    try out.print("the worker finished with block {d}: it went out of scope too\n", .{busy});

    // Deleted objects refuse new callbacks and references, with an error, not a crash.
    expect(!try counter.onOutOfScope(dataset.id, dataset, onOutOfScope), "a deleted object refuses callbacks");
    expectError(error.StaleId, counter.release(dataset.id));
    const stats = try counter.stats();
    expect(stats.objects_live == 0 and stats.bytes_live == 0, "no object is live");
    expect(stats.objects_created == block_count + 1 and stats.callbacks_registered == block_count + 1, "the stats count every object and callback");

    // Destroy closes the counter and waits until the dispatcher has run everything queued
    // and exited: after it no callback can run any more, and the counts below are final.
    destroyed = true;
    try counter.destroy();

    for (cache.entries) |entry| {
        expect(entry.fired == 1, "every callback ran exactly once");
        expect(entry.buffer == null, "every buffer was freed");
    }
    expect(cache.callbacks == block_count + 1 and cache.wrong_id == 0, "each callback ran for its own object");
    expect(cache.on_main_thread == 0, "no callback ran on the main thread");
    expect(cache.bytes_live == 0, "every byte was given back");
    try out.print("every callback ran exactly once, on the dispatcher thread; {d} bytes live\n", .{cache.bytes_live});
    try out.print("zig example: ok\n", .{});
}
