//! The dispatcher thread: the only place where user-supplied code runs.
//!
//! It sleeps until the queue has work, takes a bounded batch of native callbacks under the
//! counter's mutex and runs them with the mutex released, then does the same with every
//! requested sink wake.
//! So a callback may call back into the counter (register, release, create) without
//! deadlocking, and a thread that drops a reference never waits for a callback: it only
//! relinks nodes and signals a condition variable.
//!
//! A wake may block: a Deno thread-safe callback does not return until the JS thread has
//! run it. That delays later native callbacks but never a mutator, and it is why nobody
//! may synchronously join this thread from a JS thread while it can still wake that JS
//! thread (see `Counter.destroy`).
//!
//! On close it keeps going until the queue is empty, then marks the counter closed and
//! exits: every callback that left the table has run or sits in a sink's outbox.

const std = @import("std");
const assert = std.debug.assert;
const Counter = @import("counter.zig").Counter;
const queue_module = @import("queue.zig");

/// Native callbacks taken per lock acquisition: bounds the time the mutex is held and the
/// stack this thread uses, while amortising the lock over many callbacks.
pub const batch_max = 256;

pub fn main(counter: *Counter) void {
    // Release: a thread that reads this id (`Counter.destroy`) compares it with its own,
    // and only the dispatcher itself can ever observe its own id here.
    counter.dispatcher_thread_id.store(std.Thread.getCurrentId(), .release);

    var jobs: [batch_max]queue_module.Job = undefined;
    var wakes: [queue_module.sink_count_max]queue_module.Wake = undefined;

    counter.mutex.lock();
    while (true) {
        while (counter.queue.isIdle() and counter.state == .open) {
            counter.condition.wait(&counter.mutex);
        }
        const jobs_count = counter.queue.popNative(&counter.table.callbacks, &jobs);
        if (jobs_count > 0) {
            counter.mutex.unlock();
            for (jobs[0..jobs_count]) |job| job.function(job.id, job.context);
            counter.mutex.lock();
            counter.native_callbacks_run += jobs_count;
        }
        // Wakes are taken only now, right before they are called, never across a batch of
        // native callbacks: until taken, a wake can still be cancelled (its sink drained,
        // or closed because its thread exited and its isolate is gone).
        const wakes_count = counter.queue.takeWakes(&wakes);
        if (wakes_count > 0) {
            counter.mutex.unlock();
            for (wakes[0..wakes_count]) |wake| wake.function(wake.context);
            counter.mutex.lock();
            counter.wakes_sent += wakes_count;
            for (wakes[0..wakes_count]) |wake| {
                if (counter.queue.wakeDone(wake.sink)) counter.finishSinkClose(wake.sink);
            }
        }
        if (jobs_count == 0 and wakes_count == 0) {
            // Closing and the queue is empty: nothing can be queued any more, because every
            // mutator refuses to run once the counter is closing.
            assert(counter.state == .closing);
            break;
        }
    }
    counter.state = .closed;
    // A thread created after this one exits may reuse its id; it must not be mistaken
    // for the dispatcher by `Counter.destroy`.
    counter.dispatcher_thread_id.store(0, .release);
    counter.mutex.unlock();
}
