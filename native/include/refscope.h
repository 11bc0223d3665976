/*
 * refscope: reference counting with out-of-scope notifications.
 *
 * A counter owns a table of objects, shared by every participant attached to it. The
 * semantics are Ray Core's ReferenceCounter: an object is in scope while its owner holds
 * local or submitted-task references, while a borrower holds references, while a reference
 * lent to another participant is unclaimed, while an owned container that contains it is
 * in scope, or (objects that cannot be reconstructed) while lineage references pin it. When
 * it goes out of scope, the objects it contains are processed first, then its out-of-scope
 * callbacks run, in registration order, exactly once. It is deleted once no lineage
 * reference pins it either: its lineage dependencies are released, then its
 * reference-deleted callbacks run. An explicit free of an owned object runs its
 * out-of-scope callbacks at once and keeps the entry until its references drop.
 *
 * Participants. A sink is a participant: one event loop (a JavaScript runtime instance:
 * the main thread or a Worker) with an outbox of tokens. References taken through a sink
 * are attributed to it: the object's creator owns it, any other sink holding references is
 * a borrower. Passing REFSCOPE_NO_SINK as `caller` means native code acting for the
 * owner. A sink belongs to the thread that opened it; if that thread exits with the sink
 * open, the sink is closed for it, which releases every reference it held.
 *
 * Callbacks never run inside the call that caused them. Native callbacks run on the
 * counter's dispatcher thread, with no lock held, so they may call back into the counter.
 * Sink callbacks deliver a token to a sink: an outbox that one event loop (a JavaScript
 * runtime instance) drains in batches after a coalesced wake. Each sink's wakes are made by
 * a waker thread of its own, because a wake may block (a Deno thread-safe callback waits
 * for its JS thread, forever if that thread's Worker is terminated): one busy or dead event
 * loop never delays native callbacks or another sink's wakes.
 *
 * Threads. Every function may be called from any thread unless its comment says otherwise,
 * including from inside a callback. "Does not block" means the call takes the counter's
 * mutex for a bounded amount of work (proportional to its arguments) and never waits for a
 * callback or for another thread's progress.
 *
 * Results. Functions return an int32_t status: negative values are errors (REFSCOPE_E_*),
 * and an error leaves the counter unchanged. Values never change between releases.
 *
 * Ids. An object id is an integer-valued double in [2^24, 2^53): JavaScript runtimes pass
 * doubles on their fast FFI path, while 64-bit integers cost a BigInt or a slow conversion.
 * Treat ids as opaque. An id packs a slot and a generation, so an id whose object has been
 * deleted is reported as stale (REFSCOPE_E_STALE_ID) and one never issued as invalid
 * (REFSCOPE_E_INVALID_ID); neither can reach another object. Byte sizes are passed as
 * integer-valued doubles for the same reason.
 */
#ifndef REFSCOPE_H
#define REFSCOPE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REFSCOPE_ABI_VERSION 4u

typedef double refscope_id;
typedef struct refscope_counter refscope_counter;
/* A sink index, or REFSCOPE_NO_SINK (native code, acting for the owner). */
typedef uint32_t refscope_sink;
#define REFSCOPE_NO_SINK UINT32_MAX
/* refscope_info.owner of an object whose owning sink has closed. */
#define REFSCOPE_OWNER_GONE (UINT32_MAX - 1u)

/* Runs on the dispatcher thread once the object is out of scope or freed (or deleted, for
 * reference-deleted callbacks). It must not block for long: later callbacks and wakes wait
 * for it. It may call any refscope function but refscope_counter_destroy. */
typedef void (*refscope_callback_fn)(refscope_id id, void *context);
/* Runs on the sink's waker thread, with no lock held, when the sink has tokens to drain.
 * One wake covers every token that arrives until a drain finds the sink empty. It may be
 * called until refscope_sink_close returns REFSCOPE_OK, and never after; if the sink's
 * thread exits first, the library stops calling it at once (a call in progress is left to
 * return, and counted in refscope_stats.wakers_blocked until it does). So a wake may only
 * call into code that outlives its thread: a JS runtime's main thread, never a Worker's. */
typedef void (*refscope_wake_fn)(void *context);

enum {
    REFSCOPE_OK = 0,
    /* Success, and tokens arrived for `caller` that no wake will announce: drain it. */
    REFSCOPE_DRAIN = 1,
    /* Not finished (refscope_sink_close): the sink's waker is still running. Call again. */
    REFSCOPE_PENDING = 2,
    /* Success, and sinks without a wake are owed wakes that the caller (a sink opened with
     * REFSCOPE_SINK_RELAYS) passes on: take them with refscope_relay_take. */
    REFSCOPE_RELAY = 4,
    /* Both REFSCOPE_DRAIN and REFSCOPE_RELAY. */
    REFSCOPE_DRAIN_RELAY = 5,
    REFSCOPE_E_INVALID_ARGUMENT = -1, /* a NULL pointer, or an argument outside its domain */
    REFSCOPE_E_INVALID_ID = -2,       /* not an id this counter issued */
    REFSCOPE_E_STALE_ID = -3,         /* the object has been deleted (or, for new references, is out of scope) */
    REFSCOPE_E_NO_REFERENCE = -4,     /* releasing a count that the caller does not hold */
    REFSCOPE_E_LIMIT = -5,            /* a count, the table, the byte total or the nesting depth would overflow */
    REFSCOPE_E_OUT_OF_MEMORY = -6,
    REFSCOPE_E_CLOSED = -7,           /* the counter is closing or closed */
    REFSCOPE_E_WRONG_THREAD = -8,     /* the call would deadlock on this thread */
    REFSCOPE_E_SYSTEM_RESOURCES = -9, /* the OS refused a resource (the dispatcher thread) */
    REFSCOPE_E_NOT_OWNED = -10,       /* only the object's owner may do this */
    REFSCOPE_E_LIMIT_PARTICIPANTS = -11, /* the counter has REFSCOPE_SINKS_MAX participants */
    REFSCOPE_E_LIMIT_THREAD = -12,    /* this thread has 128 sinks and counters it opened, open */
    REFSCOPE_E_LIMIT_COUNTERS = -13   /* the process has 1024 open counters */
};

/* Participants (sinks) per counter. */
#define REFSCOPE_SINKS_MAX 64u
/* refscope_sink_open and refscope_counter_attach flags: the owner relays wakes to sinks
 * that have no wake function (REFSCOPE_RELAY). */
#define REFSCOPE_SINK_RELAYS 1u

/* Registration and removal results. */
enum { REFSCOPE_REFUSED = 0, REFSCOPE_REGISTERED = 1 };
enum { REFSCOPE_NOT_REMOVED = 0, REFSCOPE_REMOVED = 1 };

/* Callback kinds, for the *_sink and off functions. */
enum { REFSCOPE_ON_OUT_OF_SCOPE = 0, REFSCOPE_ON_DELETED = 1 };

/* Counter states, from refscope_counter_state. */
enum { REFSCOPE_STATE_OPEN = 0, REFSCOPE_STATE_CLOSING = 1, REFSCOPE_STATE_CLOSED = 2 };

/* refscope_info.flags */
#define REFSCOPE_OBJECT_FREED 1u
#define REFSCOPE_OBJECT_OUT_OF_SCOPE 2u  /* out of scope, kept (not deleted) by lineage */
#define REFSCOPE_OBJECT_RECONSTRUCTABLE 4u
/* refscope_object_create_ex flags */
#define REFSCOPE_CREATE_RECONSTRUCTABLE 1u

typedef struct refscope_info {
    refscope_id id;
    uint64_t size_bytes;
    uint32_t owner;          /* a sink, REFSCOPE_NO_SINK (native code) or REFSCOPE_OWNER_GONE */
    uint32_t flags;          /* REFSCOPE_OBJECT_* */
    uint32_t refs_local;     /* the owner's local references */
    uint32_t refs_submitted; /* the owner's submitted-task references */
    uint32_t refs_borrowed;  /* borrowers' local and submitted-task references */
    uint32_t refs_lent;      /* references lent and not yet borrowed */
    uint32_t refs_lineage;
    uint32_t contained_in_owned;
    uint32_t borrowers;
    uint32_t callbacks_pending;         /* out-of-scope callbacks not yet handed over */
    uint32_t deleted_callbacks_pending; /* reference-deleted callbacks not yet handed over */
    uint32_t reserved;
} refscope_info;

/* One sink's references on an object (its holder record). */
typedef struct refscope_holding {
    uint32_t sink;
    uint32_t refs_local;
    uint32_t refs_submitted;
    uint32_t refs_lent;
    uint32_t refs_lineage;
} refscope_holding;

typedef struct refscope_stats {
    uint64_t objects_live;
    uint64_t bytes_live;
    uint64_t objects_created;
    uint64_t callbacks_registered;
    uint64_t callbacks_released;      /* left the table: ran, queued, or in an outbox */
    uint64_t native_callbacks_queued; /* waiting for the dispatcher */
    uint64_t native_callbacks_run;
    uint64_t sink_tokens_pending;     /* waiting in sink outboxes */
    uint64_t wakes_sent;
    uint64_t sinks_open;
    uint64_t tokens_discarded;        /* dropped because their sink had closed */
    uint64_t memory_bytes;            /* allocated for entries and callbacks (capacity) */
    uint64_t wakers_blocked;          /* let go inside a wake that has not returned */
} refscope_stats;

/* Every function below may be called from any thread, including from a callback, and does
 * not block, unless its comment says otherwise. */

/* --- Library ------------------------------------------------------------------------ */

/* REFSCOPE_ABI_VERSION of the loaded library. */
uint32_t refscope_abi_version(void);
/* The constant's name ("REFSCOPE_E_STALE_ID") and a sentence; static strings, never NULL. */
const char *refscope_status_name(int32_t status);
const char *refscope_status_message(int32_t status);

/* --- Counter lifecycle -------------------------------------------------------------- */

/* Creates a counter and starts its dispatcher thread (blocks only for thread creation).
 * *out_counter is NULL on error. The library pins itself in memory first, so that a host
 * that unloads it cannot pull code out from under the thread. */
int32_t refscope_counter_open(refscope_counter **out_counter);

/* The key other threads pass to refscope_counter_attach: plain data (an integer-valued
 * double), never a pointer, so it can cross a postMessage; a stale or forged key finds
 * nothing. */
int32_t refscope_counter_key(refscope_counter *counter, double *out_key);

/* Attaches the calling thread to the open counter registered under `key`, opening a sink
 * for it (as refscope_sink_open). REFSCOPE_E_CLOSED when the key names no open counter. */
int32_t refscope_counter_attach(double key, refscope_wake_fn wake, void *wake_context, uint32_t flags,
                                refscope_counter **out_counter, refscope_sink *out_sink);

/* If the calling thread exits before refscope_counter_destroy, the counter is closed and
 * destroyed for it (after that thread's sinks are closed). For a counter opened by a JS
 * Worker, whose end is the counter's end; a thread that never exits (the main thread) is
 * unaffected. REFSCOPE_E_WRONG_THREAD on the library's own threads (from a callback or a
 * wake): their exit is the counter's own doing. */
int32_t refscope_counter_destroy_on_thread_exit(refscope_counter *counter);

/* Starts shutdown and returns at once: every live object is deleted as if its last
 * reference dropped (so every registered callback is delivered exactly once, shutdown
 * included), later mutations fail with REFSCOPE_E_CLOSED, and the dispatcher runs what is
 * queued, sends the wakes it owes, and exits; the state then becomes
 * REFSCOPE_STATE_CLOSED. */
int32_t refscope_counter_close(refscope_counter *counter, refscope_sink caller);

/* REFSCOPE_STATE_*. */
int32_t refscope_counter_state(refscope_counter *counter);

/* Closes if still open, waits for the dispatcher to run every queued native callback and
 * exit, and releases the opener's hold on the counter; the memory is freed once every sink
 * is closed (and its waker has exited) too. NULL is a no-op. BLOCKS, for as long as the
 * queued native callbacks take. Call once, from the opener. Not from a callback
 * (REFSCOPE_E_WRONG_THREAD). */
int32_t refscope_counter_destroy(refscope_counter *counter);

int32_t refscope_counter_stats(refscope_counter *counter, refscope_stats *out_stats);

/* Copies up to `capacity` records of live objects, from table slot `start_slot` on, and
 * sets *out_next_slot to where to continue; returns how many were written (0: done). One
 * call is consistent; several calls are not one atomic snapshot. Takes the counter's lock
 * for a time proportional to `capacity`. */
int32_t refscope_counter_snapshot(refscope_counter *counter, uint32_t start_slot, refscope_info *records,
                                  uint32_t capacity, uint32_t *out_next_slot);

/* --- Sinks -------------------------------------------------------------------------- */

/* Opens a sink for the calling thread (at most REFSCOPE_SINKS_MAX per counter,
 * REFSCOPE_E_LIMIT_PARTICIPANTS beyond; a thread holds at most 128 sinks and counters it opened,
 * REFSCOPE_E_LIMIT_THREAD beyond). If the thread exits without closing it, it is closed
 * for the thread (see refscope_sink_close). With a wake, a waker thread calls it once per
 * batch; with NULL, the owner polls, or is woken by a relaying sink's owner (flags:
 * REFSCOPE_SINK_RELAYS, an owner that passes on the wakes owed to wake-less sinks when a
 * call returns REFSCOPE_RELAY, or when it is woken). The sink holds the counter until it
 * closes. */
int32_t refscope_sink_open(refscope_counter *counter, refscope_wake_fn wake, void *wake_context, uint32_t flags,
                           refscope_sink *out_sink);

/* The sink's generation: it tells the slot's successive participants apart. A lent
 * reference names its lender by sink and generation (refscope_object_borrow). */
int32_t refscope_sink_generation(refscope_counter *counter, refscope_sink sink, uint32_t *out_generation);

/* Moves the sinks owed a relayed wake into out_sinks (capacity at least
 * REFSCOPE_SINKS_MAX; fewer is REFSCOPE_E_INVALID_ARGUMENT) and returns how many; the
 * caller wakes their owners by its own means. Called after REFSCOPE_RELAY, and by a
 * relaying sink's owner after each drain that finds its sink empty. */
int32_t refscope_relay_take(refscope_counter *counter, refscope_sink *out_sinks, uint32_t capacity);

/* Releases every reference the sink holds, on its behalf (borrows, lent references,
 * lineage pins; for objects it owns, the owner's references), and hands over the callbacks
 * that deliver to this sink on the objects it owns (which lose their owner); native
 * callbacks stay until the object really goes out of scope. Objects that others still
 * reference stay live. What a participant does when it leaves: drain afterwards, then
 * close. Takes the lock for a time proportional to the table's size. */
int32_t refscope_sink_release(refscope_counter *counter, refscope_sink sink);

/* Closes the sink: releases what it still holds (as refscope_sink_release), drops its
 * undelivered tokens, refuses it new ones, and stops its waker. While the waker is still
 * running (perhaps inside a wake to this very thread: a Deno wake waits for it) it returns
 * REFSCOPE_PENDING: never spin here without yielding to the event loop; call again later.
 * REFSCOPE_OK means the wake will never be called again (its callback may be freed) and
 * the sink's hold on the counter is dropped, which may free the counter: do not use it
 * afterwards unless another hold (the opener's, another sink) keeps it. */
int32_t refscope_sink_close(refscope_counter *counter, refscope_sink sink);

/* Copies up to capacity tokens out of the sink, in delivery order, and returns how many.
 * Returning 0 means the sink is empty and re-arms its wake (cancelling one not yet sent).
 * Allowed in every state until the sink closes. Meant for the sink's owner. */
int32_t refscope_sink_drain(refscope_counter *counter, refscope_sink sink, uint32_t *tokens,
                            uint32_t capacity);

/* Tokens waiting in the sink. */
int32_t refscope_sink_pending(refscope_counter *counter, refscope_sink sink);

/* --- Objects -------------------------------------------------------------------------- */
/* `caller` is the calling sink, or REFSCOPE_NO_SINK for native code acting for the owner.
 * A sink that is the caller receives REFSCOPE_DRAIN instead of a wake for tokens a
 * mutation sends to it. */

/* Creates an object owned by `caller`, of size_bytes (an integer-valued double in
 * [0, 2^53)), holding one local reference. */
int32_t refscope_object_create(refscope_counter *counter, double size_bytes, refscope_sink caller,
                               refscope_id *out_id);

/* As refscope_object_create, and: REFSCOPE_CREATE_RECONSTRUCTABLE (lineage references then
 * only delay deletion instead of keeping the object in scope); the objects it contains
 * (each stays in scope while this one is; repeats count once); the objects its lineage
 * depends on (each gets a lineage reference until this one is deleted). Referenced objects
 * must be in scope. Chains deeper than 1000 are REFSCOPE_E_LIMIT. */
int32_t refscope_object_create_ex(refscope_counter *counter, double size_bytes, uint32_t flags,
                                  const refscope_id *contains, uint32_t contains_count,
                                  const refscope_id *lineage, uint32_t lineage_count,
                                  refscope_sink caller, refscope_id *out_id);

/* Adds one of the caller's local references (a borrower's, if the caller does not own it). */
int32_t refscope_object_retain(refscope_counter *counter, refscope_id id, refscope_sink caller);

/* Drops one of the caller's local references; the last reference of all sends the object
 * out of scope. */
int32_t refscope_object_release(refscope_counter *counter, refscope_id id, refscope_sink caller);

/* Drops one of the caller's local references per id (ids may repeat). All or nothing. */
int32_t refscope_object_release_batch(refscope_counter *counter, const refscope_id *ids,
                                      uint32_t count, refscope_sink caller);

/* Adds/removes one of the caller's submitted-task references per id (a task took them as
 * arguments / finished). All or nothing. */
int32_t refscope_submitted_add(refscope_counter *counter, const refscope_id *ids, uint32_t count,
                               refscope_sink caller);
int32_t refscope_submitted_remove(refscope_counter *counter, const refscope_id *ids,
                                  uint32_t count, refscope_sink caller);

/* Adds/removes one of the caller's lineage references per id (a retryable task may still
 * need them). Removal also works on objects out of scope but kept by lineage. All or
 * nothing. */
int32_t refscope_lineage_add(refscope_counter *counter, const refscope_id *ids, uint32_t count,
                             refscope_sink caller);
int32_t refscope_lineage_remove(refscope_counter *counter, const refscope_id *ids, uint32_t count,
                                refscope_sink caller);

/* Turns one of the caller's local references into a reference lent to whoever borrows it
 * next; the object stays in scope meanwhile. Pass (id, caller) to the borrower. */
int32_t refscope_object_lend(refscope_counter *counter, refscope_id id, refscope_sink caller);

/* Claims a reference `lender` (in its `lender_generation`, see refscope_sink_generation;
 * ignored for REFSCOPE_NO_SINK) lent: it becomes one of the caller's local references (the
 * caller borrows the object unless it owns it). REFSCOPE_E_NO_REFERENCE when none is lent,
 * or when the lender's slot now holds another participant (the lender ended, and what it
 * lent was released with it). */
int32_t refscope_object_borrow(refscope_counter *counter, refscope_id id, refscope_sink lender,
                               uint32_t lender_generation, refscope_sink caller);

/* Explicitly frees an owned object: its out-of-scope callbacks are handed over now (freeing
 * again is a no-op), later registrations are refused, and the entry stays until its
 * references drop. REFSCOPE_E_NOT_OWNED from a sink that does not own it. */
int32_t refscope_object_free(refscope_counter *counter, refscope_id id, refscope_sink caller);

/* Registers a native callback, for the owner. REFSCOPE_REGISTERED, or REFSCOPE_REFUSED (it
 * will never run) when the object has been deleted or, for out-of-scope callbacks, freed
 * or already out of scope. A NULL function is REFSCOPE_E_INVALID_ARGUMENT. */
int32_t refscope_object_on_out_of_scope(refscope_counter *counter, refscope_id id,
                                        refscope_callback_fn function, void *context);
int32_t refscope_object_on_deleted(refscope_counter *counter, refscope_id id,
                                   refscope_callback_fn function, void *context);

/* Removes the first native callback of `kind` (REFSCOPE_ON_*) equal to (function,
 * context): REFSCOPE_REMOVED, or REFSCOPE_NOT_REMOVED when it already left the table (it
 * will run, or ran) or never was registered. */
int32_t refscope_object_off_native(refscope_counter *counter, refscope_id id, uint32_t kind,
                                   refscope_callback_fn function, void *context);

/* Registers, or removes, delivery of `token` to `sink` (which must be the caller's own
 * sink and own the object: REFSCOPE_E_NOT_OWNED otherwise; REFSCOPE_NO_SINK is no sink:
 * REFSCOPE_E_INVALID_ARGUMENT). Results as the native ones. */
int32_t refscope_object_on_sink(refscope_counter *counter, refscope_id id, refscope_sink sink,
                                uint32_t kind, uint32_t token);
int32_t refscope_object_off_sink(refscope_counter *counter, refscope_id id, refscope_sink sink,
                                 uint32_t kind, uint32_t token);

/* Copies the tokens of `sink`'s callbacks of `kind` on the object, in registration order,
 * and returns how many there are (possibly more than capacity). `tokens` may be NULL when
 * capacity is 0, to ask for the count. */
int32_t refscope_object_sink_tokens(refscope_counter *counter, refscope_id id, refscope_sink sink,
                                    uint32_t kind, uint32_t *tokens, uint32_t capacity);

/* The object's state. Objects out of scope but kept by lineage still have one. */
int32_t refscope_object_info(refscope_counter *counter, refscope_id id, refscope_info *out_info);

/* Copies the holder records of the object (each sink with references recorded apart from
 * the owner's local and submitted counts: borrowers, lenders, lineage pins) and returns how
 * many there are (possibly more than capacity). `out_holdings` may be NULL when capacity is
 * 0, to ask for the count. */
int32_t refscope_object_holdings(refscope_counter *counter, refscope_id id,
                                 refscope_holding *out_holdings, uint32_t capacity);

#ifdef __cplusplus
}
#endif

#endif /* REFSCOPE_H */
