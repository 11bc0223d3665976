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
//! On close the dispatcher keeps going until its queue is empty, then marks the counter
//! closed and exits. A waker exits when its sink closes.

const std = @import("std");
const assert = std.debug.assert;
const Counter = @import("counter.zig").Counter;
const queue_module = @import("queue.zig");

/// Native callbacks taken per lock acquisition: bounds the time the mutex is held and the
/// stack this thread uses, while amortising the lock over many callbacks.
pub const batch_max = 256;

/// Stack for a waker thread: it only calls a wake (which queues a JS call, or waits for
/// one), so it needs far less than the 16 MiB default.
pub const waker_stack_size = 1024 * 1024;

pub fn main(counter: *Counter) void {
    // Release: a thread that reads this id (`Counter.destroy`) compares it with its own,
    // and only the dispatcher itself can ever observe its own id here.
    counter.dispatcher_thread_id.store(std.Thread.getCurrentId(), .release);

    var jobs: [batch_max]queue_module.Job = undefined;
    counter.lock();
    while (true) {
        while (counter.queue.isIdle() and counter.state == .open) {
            counter.condition.wait(&counter.mutex);
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
    counter.state = .closed;
    // A thread created after this one exits may reuse its id; it must not be mistaken
    // for the dispatcher by `Counter.destroy`.
    counter.dispatcher_thread_id.store(0, .release);
    counter.unlockAll();
}

/// The waker of `sink`: makes each wake its sink is owed, until the sink closes. Holds the
/// counter (one hold) while it runs.
pub fn waker(counter: *Counter, sink: u32) void {
    counter.lock();
    const state = &counter.queue.sinks[sink];
    while (true) {
        // A wake is taken only right before it is made: until then, a drain or the sink's
        // close (its thread exited, its isolate is gone) can still cancel it.
        const wake = counter.queue.takeWake(sink) orelse {
            if (state.closing) break;
            state.condition.wait(&counter.mutex);
            continue;
        };
        counter.mutex.unlock();
        wake.function(wake.context);
        counter.lock();
        counter.wakes_sent += 1;
    }
    // Freeing the slot (below) writes what calls holding just a shard's lock read
    // (`Queue.isSink`), so every lock is taken, in the usual order. Until then
    // `waker_running` keeps anybody else from finishing the close.
    counter.mutex.unlock();
    counter.lockAll();
    state.waker_running = false;
    // An abandoned sink's close has nobody else to finish it.
    if (state.abandoned) assert(!counter.finishSinkClose(sink));
    const last = counter.dropHold();
    counter.unlockAll();
    if (last) counter.deallocate();
}
