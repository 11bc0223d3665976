//! The threads that run user-supplied code: the dispatcher, and one waker per sink.
//!
//! The dispatcher sleeps until native callbacks are queued, takes a bounded batch under the
//! counter's mutex, releases the mutex and runs them. So a callback may call back into the
//! counter (register, release, create) without deadlocking, and a thread that drops a
//! reference never waits for a callback: it only relinks nodes and signals.
//!
//! A sink's waker makes that sink's wakes, also with no lock held. A wake may block: a Deno
//! thread-safe callback does not return until its JS thread has run it, and never returns
//! if that thread's Worker is terminated meanwhile. Giving each sink its own waker confines
//! that to the sink: native callbacks and other sinks' wakes go on. It is also why no JS
//! thread may synchronously wait for a waker that may be waking it (see `Counter.sinkClose`).
//!
//! When a table shard empties, the dispatcher also runs the rounds that give its memory back
//! once it has stayed empty for `Counter.trim_delay_ns` (`Counter.trimRound`), between
//! batches and holding no lock but the one shard's it trims.
//!
//! On close the dispatcher keeps going until its queue is empty, then marks the counter
//! closed and exits. A waker exits when its sink lets it go (see `lifecycle.zig`), at once
//! if it is waiting, or as soon as a wake call in progress returns.

const std = @import("std");
const assert = std.debug.assert;
const counter_module = @import("counter.zig");
const Counter = counter_module.Counter;
const queue_module = @import("queue.zig");
const lifecycle = @import("lifecycle.zig");
const sync = @import("sync.zig");

/// Native callbacks taken per lock acquisition: bounds the time the mutex is held and the
/// stack this thread uses, while amortising the lock over many callbacks.
pub const batch_max = 256;

/// Stack for a waker thread: it only calls a wake (which queues a JS call, or waits for
/// one), so it needs far less than the 16 MiB default.
pub const waker_stack_size = 1024 * 1024;

pub fn main(counter: *Counter) void {
    counter_module.on_library_thread = true;
    // Release: a thread that reads this id (`Counter.destroy`) compares it with its own,
    // and only the dispatcher itself can ever observe its own id here.
    counter.dispatcher_thread_id.store(std.Thread.getCurrentId(), .release);

    var jobs: [batch_max]queue_module.Job = undefined;
    // When the next round of giving memory back is due (`Counter.trimRound`), if one is.
    var trim_at: ?u64 = null;
    counter.lock();
    // The counter's event loop, so it has no fixed bound: it ends once the counter is
    // closing and the queue is empty, which the break below asserts. Each pass is bounded
    // (`batch_max` callbacks, or one round of giving memory back).
    while (true) {
        while (counter.queue.isIdle() and counter.state == .open) {
            if (!counter.table.trim_wanted.load(.monotonic)) {
                trim_at = null;
                counter.condition.wait(&counter.mutex);
                continue;
            }
            // A shard emptied: rounds a delay apart give its memory back if it stays empty.
            const now = sync.monotonicNs();
            const due = trim_at orelse now +| counter.trim_delay_ns;
            trim_at = due;
            if (now < due) {
                counter.condition.timedWait(&counter.mutex, due - now) catch {};
                continue;
            }
            trim_at = null;
            counter.mutex.unlock();
            _ = counter.trimRound();
            counter.lock();
        }
        const jobs_count = counter.queue.popNative(&counter.table.callbacks, &jobs);
        if (jobs_count == 0) {
            // Closing and the queue is empty: nothing can be queued any more, because every
            // mutator refuses to run once the counter is closing.
            assert(counter.state == .closing);
            break;
        }
        counter.mutex.unlock();
        for (jobs[0..jobs_count]) |job| job.function(job.id, job.context);
        counter.lock();
        counter.native_callbacks_run += jobs_count;
    }
    // Calls that hold just a shard's lock read the state (`Counter.checkOpen`), so it is
    // written with every lock held, taken in the usual order.
    counter.mutex.unlock();
    counter.lockAll();
    // `close` deleted every object and nothing creates one after it, so no callback can
    // leave the table for the queue from now on (`Counter.route` asserts the other side).
    assert(counter.queue.isIdle());
    assert(counter.table.objectsLive() == 0);
    lifecycle.transition(lifecycle.CounterState, &counter.state, .closed);
    // A thread created after this one exits may reuse its id; it must not be mistaken
    // for the dispatcher by `Counter.destroy`.
    counter.dispatcher_thread_id.store(0, .release);
    counter.unlockAll();
}

/// A sink's waker: makes each wake its sink is owed, until the sink lets it go. Holds the
/// counter (one hold) while it runs, and owns `waker`, which it frees as it exits. It reads
/// its sink's slot only while not let go: once let go, the slot may belong to another
/// sink.
pub fn waker(counter: *Counter, record: *queue_module.Waker) void {
    counter_module.on_library_thread = true;
    counter.lock();
    // The waker's event loop, so it has no fixed bound: it ends when its slot lets it go.
    // Each pass makes at most one wake.
    while (!record.let_go) {
        // A wake is taken only right before it is made: until then, a drain or the sink's
        // close can still cancel it.
        const wake = counter.queue.takeWake(record.sink) orelse {
            record.condition.wait(&counter.mutex);
            continue;
        };
        record.calling = true;
        // Counted as it starts, not when it returns: a Deno wake returns only after its JS
        // callback ran, and that JS may read the stats first.
        counter.wakes_sent += 1;
        counter.mutex.unlock();
        wake.function(wake.context);
        counter.lock();
        record.calling = false;
        // Let go during the call: it was counted as blocked until now (`letWakerGo`).
        if (record.let_go) {
            assert(counter.wakers_blocked > 0);
            counter.wakers_blocked -= 1;
        }
    }
    // Every lock, as for every hold dropped: a thread that has just let this waker go may
    // still be inside its own every-lock section (unlocking the shards), and the memory
    // must outlive that.
    counter.mutex.unlock();
    counter.lockAll();
    // Let go by its slot (`Counter.letWakerGo`), which no longer names it, and out of any
    // wake call: nothing else refers to the record. Freed before the hold is dropped: once
    // it is, another thread may free the counter, allocator field included, and a test's
    // leak check may run.
    assert(record.let_go);
    assert(!record.calling);
    counter.allocator.destroy(record);
    // The hold `Counter.startWaker` took for this thread stops being accounted for, then goes.
    assert(counter.wakers_live > 0);
    counter.wakers_live -= 1;
    const last = counter.dropHold();
    counter.unlockAll();
    if (last) counter.deallocate();
}
