//! The lifecycles of a counter and of a sink (one thread's part in it), as state machines: every
//! state, every legal transition, and the rule each transition carries. The README's
//! "Closing" and "Workers" sections are these two tables in prose.
//!
//! Counter (guarded by the counter's mutex; written with every lock held, because calls
//! that hold just a table shard's lock read it):
//!
//!   open ──close──▶ closing ──dispatcher drained its queue──▶ closed
//!
//! - `open`: every call works.
//! - `closing`: every live object was deleted by `close` (so every registered callback is
//!   delivered exactly once, shutdown included); mutations are refused with `CLOSED`; the
//!   dispatcher runs what is queued. Sinks still drain.
//! - `closed`: the dispatcher has exited; `destroy` joins it (never from the dispatcher
//!   itself, never by the thread being joined) and drops the opener's hold. The memory goes
//!   with the last hold: the opener's, one per sink slot in use (open or closing), one per
//!   waker thread that has not exited.
//!
//! Participant (one slot of the queue's sink table; `generation` tells a slot's successive
//! sinks apart):
//!
//!   free ──open──▶ open ──close, or its thread exited──▶ closing ──its waker is out of any wake──▶ free
//!
//! - `open`: the sink holds references, owns objects, receives tokens.
//! - `closing`: it has ended: it released, on its behalf, every reference, borrow and lend
//!   it held (the objects it owned lost their owner), its undelivered tokens were dropped,
//!   and it receives none. It stays `closing` only while its owner closed it and its waker
//!   is inside a wake call (perhaps to the owner's own thread): the owner must let the wake
//!   return and call again before freeing the wake callback (a live owner can).
//! - `free`: reusable. When its thread exits, the slot is freed at once, whatever its
//!   waker is doing: a waker still inside a wake call is *let go* (it exits when the call
//!   returns, touching nothing but the counter's memory, which it keeps until then) and
//!   counted in `wakers_blocked`.
//!
//! Where each transition happens (every one through `transition`, which asserts it):
//!
//! | transition                 | function                                    | locks held   |
//! |----------------------------|---------------------------------------------|--------------|
//! | counter open → closing     | `Counter.closeLocked` (close, destroy, exit) | every lock   |
//! | counter closing → closed   | `dispatcher.main`, once its queue is empty   | every lock   |
//! | sink free → open           | `Queue.sinkOpen` (from `Counter.openSink`)   | every lock   |
//! | sink open → closing        | `Queue.sinkStop` (from `Counter.stopSink`)   | every lock   |
//! | sink closing → free        | `Queue.sinkFree` (from `Counter.freeSink`)   | every lock   |
//!
//! The counter's memory is freed by whoever drops its last hold (`Counter.dropHold`, with
//! every lock held, then `Counter.deallocate` with none): the opener's `destroy`, a sink's
//! close or its thread's exit (`Counter.closeAbandoned`), or a waker that was let go.
//! Holds are taken only while the counter is `open` (`Counter.takeHold`: a sink's as its
//! slot opens, its waker's as the thread starts), so never on a counter whose holds have
//! reached zero; the opener's is dropped only once it is `closed`, so the last hold goes
//! only then, and once. Each take and drop checks `holds` against what the state accounts
//! for (`Counter.holdsAccounted`).
//!
//! Which sinks have a waker at all: only those opened with a wake function, and
//! refscope's JS side gives one only to a runtime's main thread, whose end is the process's
//! end. A Worker's sink has no wake function: native code never calls into a Worker's
//! isolate, which its runtime may free at any moment, with no event that native code could
//! see first. Its owner is told to drain by the JS threads that routed it tokens (through a
//! `BroadcastChannel`), or by a main-thread sink relaying wakes that native threads
//! caused (`Queue.relay_owed`).

const std = @import("std");
const assert = std.debug.assert;

pub const CounterState = enum(u8) {
    open,
    closing,
    closed,

    pub fn canBecome(from: CounterState, to: CounterState) bool {
        return switch (from) {
            .open => to == .closing,
            .closing => to == .closed,
            .closed => false,
        };
    }
};

pub const SinkState = enum(u8) {
    free,
    open,
    closing,

    pub fn canBecome(from: SinkState, to: SinkState) bool {
        return switch (from) {
            .free => to == .open,
            .open => to == .closing,
            .closing => to == .free,
        };
    }
};

/// Moves `state` to `to`, asserting that the lifecycle allows it.
pub fn transition(comptime State: type, state: *State, to: State) void {
    assert(state.*.canBecome(to));
    state.* = to;
}

test "the counter's lifecycle only goes forward" {
    const testing = std.testing;
    try testing.expect(CounterState.open.canBecome(.closing));
    try testing.expect(!CounterState.open.canBecome(.closed));
    try testing.expect(CounterState.closing.canBecome(.closed));
    try testing.expect(!CounterState.closed.canBecome(.open));
    try testing.expect(SinkState.free.canBecome(.open));
    try testing.expect(!SinkState.free.canBecome(.closing));
    try testing.expect(!SinkState.open.canBecome(.free));
    try testing.expect(SinkState.closing.canBecome(.free));
    try testing.expect(!SinkState.closing.canBecome(.open));
    var state: SinkState = .free;
    transition(SinkState, &state, .open);
    transition(SinkState, &state, .closing);
    transition(SinkState, &state, .free);
    try testing.expectEqual(SinkState.free, state);
}
