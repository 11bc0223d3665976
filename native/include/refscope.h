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
 * Threads. Each function's comment says from which threads it may be called ("Threads:")
 * and whether it may block. "Any" includes the library's own threads (from inside a
 * callback or a wake). "Does not block" means the call takes the counter's mutex for a
 * bounded amount of work (proportional to its arguments) and never waits for a callback
 * or for another thread's progress.
 *
 * Results. Each function returns one result family, each with its own type and its own
 * values, so that no value can be read as another family's: refscope_status (REFSCOPE_OK,
 * REFSCOPE_PENDING), refscope_hint (mutations: REFSCOPE_HINT_*), refscope_registration
 * (REFSCOPE_REGISTERED, REFSCOPE_REFUSED), refscope_removal (REFSCOPE_REMOVED,
 * REFSCOPE_NOT_REMOVED), refscope_state (REFSCOPE_STATE_*), or a count (>= 0). Negative
 * values are errors (REFSCOPE_E_*) in every family, and an error leaves the counter
 * unchanged. refscope_status_name and refscope_status_message describe a value of any
 * family. Values never change between releases.
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

#define REFSCOPE_ABI_VERSION 7u

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

/* Calls that succeed or fail; and every error, in every family. */
typedef int32_t refscope_status;
enum {
    REFSCOPE_OK = 0,
    /* Not finished (refscope_sink_close): the sink's waker is still running. Call again. */
    REFSCOPE_PENDING = 1,
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
    REFSCOPE_E_LIMIT_SINKS = -11,     /* the counter has REFSCOPE_SINKS_MAX sinks */
    REFSCOPE_E_LIMIT_THREAD = -12,    /* this thread has 128 sinks and counters it opened, open */
    REFSCOPE_E_LIMIT_COUNTERS = -13   /* the process has 1024 open counters */
};

/* What a successful mutation owes the calling sink, or an error. */
typedef int32_t refscope_hint;
enum {
    /* Nothing: every token it routed is announced by a wake. */
    REFSCOPE_HINT_NONE = 16,
    /* Tokens arrived for `caller` that no wake will announce: drain it. */
    REFSCOPE_HINT_DRAIN = 17,
    /* Sinks without a wake are owed wakes that the caller (a sink opened with
     * REFSCOPE_SINK_RELAYS) passes on: take them with refscope_relay_take. */
    REFSCOPE_HINT_RELAY = 18,
    /* Both REFSCOPE_HINT_DRAIN and REFSCOPE_HINT_RELAY. */
    REFSCOPE_HINT_DRAIN_RELAY = 19
};
/* A hint's bits, for `(hint & REFSCOPE_HINT_DRAIN_BIT)` once it is known not to be an error. */
#define REFSCOPE_HINT_DRAIN_BIT 1
#define REFSCOPE_HINT_RELAY_BIT 2

/* Registering a callback, or an error. */
typedef int32_t refscope_registration;
enum {
    REFSCOPE_REGISTERED = 32,
    /* It will never run: the object is deleted, or (out-of-scope callbacks) freed or out of scope. */
    REFSCOPE_REFUSED = 33
};

/* Removing a callback, or an error. */
typedef int32_t refscope_removal;
enum {
    REFSCOPE_REMOVED = 48,
    /* It already left the table (it will run, or ran), or never was registered. */
    REFSCOPE_NOT_REMOVED = 49
};

/* A counter's state (refscope_counter_state), or an error. */
typedef int32_t refscope_state;
enum { REFSCOPE_STATE_OPEN = 64, REFSCOPE_STATE_CLOSING = 65, REFSCOPE_STATE_CLOSED = 66 };

/* Participants (sinks) per counter. */
#define REFSCOPE_SINKS_MAX 64u
/* refscope_sink_open and refscope_counter_attach flags: the owner relays wakes to sinks
 * that have no wake function (REFSCOPE_HINT_RELAY). */
#define REFSCOPE_SINK_RELAYS 1u

/* Callback kinds, for the *_sink and off functions. */
enum { REFSCOPE_ON_OUT_OF_SCOPE = 0, REFSCOPE_ON_DELETED = 1 };

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
    uint64_t native_callbacks_run;    /* counted as each batch (up to 256) returns: a batch
                                         the dispatcher is running is in neither figure */
    uint64_t sink_tokens_pending;     /* waiting in sink outboxes */
    uint64_t wakes_sent;
    uint64_t sinks_open;
    uint64_t tokens_discarded;        /* dropped because their sink had closed */
    uint64_t memory_bytes;            /* allocated for entries, callbacks and past generations (capacity) */
    uint64_t wakers_blocked;          /* let go inside a wake that has not returned */
    uint64_t reserved[3];             /* room for new figures; zero */
} refscope_stats;

/* --- Library ------------------------------------------------------------------------ */

/* REFSCOPE_ABI_VERSION of the loaded library. Threads: any. Does not block. */
uint32_t refscope_abi_version(void);
/* The constant's name ("REFSCOPE_E_STALE_ID") and a sentence, for a value of any result
 * family ("REFSCOPE_E_UNKNOWN" and "unknown status" for no value); static strings, never
 * NULL. Threads: any. Does not block. */
const char *refscope_status_name(int32_t value);
const char *refscope_status_message(int32_t value);

/* --- Counter lifecycle -------------------------------------------------------------- */

/* Creates a counter and starts its dispatcher thread. *out_counter is NULL on error. The
 * library pins itself in memory first, so that a host that unloads it cannot pull code out
 * from under the thread. Threads: any. Blocks only for thread creation. */
refscope_status refscope_counter_open(refscope_counter **out_counter);

/* The key other threads pass to refscope_counter_attach: plain data (an integer-valued
 * double), never a pointer, so it can cross a postMessage; a stale or forged key finds
 * nothing. Threads: any. Does not block. */
refscope_status refscope_counter_key(refscope_counter *counter, double *out_key);

/* Attaches the calling thread to the open counter registered under `key`, opening a sink
 * for it (as refscope_sink_open). REFSCOPE_E_CLOSED when the key names no open counter.
 * Threads: the thread the sink is for (it is recorded as the sink's thread), not the
 * library's own. Does not block. */
refscope_status refscope_counter_attach(double key, refscope_wake_fn wake, void *wake_context, uint32_t flags,
                                        refscope_counter **out_counter, refscope_sink *out_sink);

/* If the calling thread exits before refscope_counter_destroy, the counter is closed and
 * destroyed for it (after that thread's sinks are closed). For a counter opened by a JS
 * Worker, whose end is the counter's end; a thread that never exits (the main thread) is
 * unaffected. Threads: the opener's thread; REFSCOPE_E_WRONG_THREAD on the library's own
 * threads (from a callback or a wake), whose exit is the counter's own doing. Does not
 * block. */
refscope_status refscope_counter_destroy_on_thread_exit(refscope_counter *counter);

/* Starts shutdown and returns at once: every live object is deleted as if its last
 * reference dropped (so every registered callback is delivered exactly once, shutdown
 * included), later mutations fail with REFSCOPE_E_CLOSED, and the dispatcher runs what is
 * queued, sends the wakes it owes, and exits; the state then becomes
 * REFSCOPE_STATE_CLOSED. Threads: any. Does not block (it takes the lock for a time
 * proportional to the table's size). */
refscope_hint refscope_counter_close(refscope_counter *counter, refscope_sink caller);

/* REFSCOPE_STATE_*. Threads: any. Does not block. */
refscope_state refscope_counter_state(refscope_counter *counter);

/* Closes if still open, waits for the dispatcher to run every queued native callback and
 * exit, and releases the opener's hold on the counter; the memory is freed once every sink
 * is closed (and its waker has exited) too. NULL is a no-op. Call once, from the opener.
 * Threads: any but the library's own (REFSCOPE_E_WRONG_THREAD from a callback: the
 * dispatcher cannot wait for itself). BLOCKS, for as long as the queued native callbacks
 * take. */
refscope_status refscope_counter_destroy(refscope_counter *counter);

/* The counter-wide figures. Threads: any. Does not block. */
refscope_status refscope_counter_stats(refscope_counter *counter, refscope_stats *out_stats);

/* Copies up to `capacity` records of live objects, from table slot `start_slot` on, and
 * sets *out_next_slot to where to continue; returns how many were written (0: done). One
 * call is consistent; several calls are not one atomic snapshot. Threads: any. Does not
 * block (it takes the lock for a time proportional to `capacity`). */
int32_t refscope_counter_snapshot(refscope_counter *counter, uint32_t start_slot, refscope_info *records,
                                  uint32_t capacity, uint32_t *out_next_slot);

/* --- Sinks -------------------------------------------------------------------------- */

/* Opens a sink for the calling thread (at most REFSCOPE_SINKS_MAX per counter,
 * REFSCOPE_E_LIMIT_SINKS beyond; a thread holds at most 128 sinks and counters it opened,
 * REFSCOPE_E_LIMIT_THREAD beyond). If the thread exits without closing it, it is closed
 * for the thread (see refscope_sink_close). With a wake, a waker thread calls it once per
 * batch; with NULL, the owner polls, or is woken by a relaying sink's owner (flags:
 * REFSCOPE_SINK_RELAYS, an owner that passes on the wakes owed to wake-less sinks when a
 * call returns REFSCOPE_HINT_RELAY, or when it is woken). The sink holds the counter until
 * it closes. Threads: the thread the sink is for, not the library's own. Blocks only to
 * start the sink's waker thread (with a wake). */
refscope_status refscope_sink_open(refscope_counter *counter, refscope_wake_fn wake, void *wake_context, uint32_t flags,
                                   refscope_sink *out_sink);

/* The sink's generation: it tells the slot's successive sinks apart. A lent reference
 * names its lender by sink and generation (refscope_object_borrow). Threads: any. Does not
 * block. */
refscope_status refscope_sink_generation(refscope_counter *counter, refscope_sink sink, uint32_t *out_generation);

/* Moves the sinks owed a relayed wake into out_sinks (capacity at least
 * REFSCOPE_SINKS_MAX; fewer is REFSCOPE_E_INVALID_ARGUMENT) and returns how many; the
 * caller wakes their owners by its own means. Called after REFSCOPE_HINT_RELAY, and by a
 * relaying sink's owner after each drain that finds its sink empty. Threads: any (meant
 * for a relaying sink's owner). Does not block. */
int32_t refscope_relay_take(refscope_counter *counter, refscope_sink *out_sinks, uint32_t capacity);

/* Releases every reference the sink holds, on its behalf (borrows, lent references,
 * lineage pins; for objects it owns, the owner's references), and hands over the callbacks
 * that deliver to this sink on the objects it owns (which lose their owner); native
 * callbacks stay until the object really goes out of scope. Objects that others still
 * reference stay live. What a sink's owner does when it leaves: drain afterwards, then
 * close. Threads: any (meant for the sink's owner). Does not block (it takes the lock for a
 * time proportional to the table's size). */
refscope_hint refscope_sink_release(refscope_counter *counter, refscope_sink sink);

/* Closes the sink: releases what it still holds (as refscope_sink_release), drops its
 * undelivered tokens, refuses it new ones, and stops its waker. While the waker is still
 * running (perhaps inside a wake to this very thread: a Deno wake waits for it) it returns
 * REFSCOPE_PENDING: never spin here without yielding to the event loop; call again later.
 * REFSCOPE_OK means the wake will never be called again (its callback may be freed) and
 * the sink's hold on the counter is dropped, which may free the counter: do not use it
 * afterwards unless another hold (the opener's, another sink) keeps it. Threads: any
 * (meant for the sink's owner). Does not block: it returns REFSCOPE_PENDING instead. */
refscope_status refscope_sink_close(refscope_counter *counter, refscope_sink sink);

/* Copies up to capacity tokens out of the sink, in delivery order, and returns how many.
 * Returning 0 means the sink is empty and re-arms its wake (cancelling one not yet sent).
 * Allowed in every state until the sink closes. Threads: any (meant for the sink's
 * owner). Does not block. */
int32_t refscope_sink_drain(refscope_counter *counter, refscope_sink sink, uint32_t *tokens,
                            uint32_t capacity);

/* Tokens waiting in the sink. Threads: any. Does not block. */
int32_t refscope_sink_pending(refscope_counter *counter, refscope_sink sink);

/* --- Event-loop wakes ------------------------------------------------------------------ */
/* For a runtime whose FFI makes no callback a foreign thread may call (Node's node:ffi),
 * but whose event loop a foreign thread can signal through `int send(void *handle)`
 * (libuv's uv_async_send). Pass refscope_async_wake as a sink's wake and a refscope_async
 * as its context: each wake calls send(handle), from the sink's waker thread. */
typedef int (*refscope_async_send_fn)(void *handle);
typedef struct refscope_async refscope_async;

/* Allocates a refscope_async with room for a handle of handle_size bytes (1 to 65536;
 * zeroed, 16-byte aligned), sets *out_handle to the handle for the caller to initialise on
 * its loop's thread (uv_async_init), and *out_async to the record. The memory is the
 * library's: it stays valid while a runtime tears its heap down at exit, with a wake in
 * progress. Threads: any. Does not block. */
refscope_status refscope_async_open(refscope_async_send_fn send, uint32_t handle_size, refscope_async **out_async,
                                    void **out_handle);

/* A refscope_wake_fn: calls the record's send with its handle. */
void refscope_async_wake(void *async);

/* Frees the record (NULL is a no-op), once no wake can run any more (refscope_sink_close
 * returned REFSCOPE_OK) and the loop has let go of the handle (uv_close's callback ran).
 * Threads: any. Does not block. */
void refscope_async_free(refscope_async *async);

/* --- Objects -------------------------------------------------------------------------- */
/* `caller` is the calling sink, or REFSCOPE_NO_SINK for native code acting for the owner.
 * A sink that is the caller receives REFSCOPE_HINT_DRAIN instead of a wake for tokens a
 * mutation sends to it. Every function of this section may be called from any thread,
 * including the library's own, and does not block: it takes the lock of the object's
 * table shard (or, for batches and graphs, the counter's) for a time proportional to its
 * arguments. */

/* Creates an object owned by `caller`, of size_bytes (an integer-valued double in
 * [0, 2^53)), holding one local reference. Threads: any. Does not block. */
refscope_status refscope_object_create(refscope_counter *counter, double size_bytes, refscope_sink caller,
                                       refscope_id *out_id);

/* As refscope_object_create, and: REFSCOPE_CREATE_RECONSTRUCTABLE (lineage references then
 * only delay deletion instead of keeping the object in scope); the objects it contains
 * (each stays in scope while this one is; repeats count once); the objects its lineage
 * depends on (each gets a lineage reference until this one is deleted). Referenced objects
 * must be in scope. Chains deeper than 1000 are REFSCOPE_E_LIMIT. Threads: any. Does not
 * block. */
refscope_status refscope_object_create_ex(refscope_counter *counter, double size_bytes, uint32_t flags,
                                          const refscope_id *contains, uint32_t contains_count,
                                          const refscope_id *lineage, uint32_t lineage_count,
                                          refscope_sink caller, refscope_id *out_id);

/* Adds one of the caller's local references (a borrower's, if the caller does not own it).
 * Threads: any. Does not block. */
refscope_status refscope_object_retain(refscope_counter *counter, refscope_id id, refscope_sink caller);

/* Drops one of the caller's local references; the last reference of all sends the object
 * out of scope. Threads: any. Does not block. */
refscope_hint refscope_object_release(refscope_counter *counter, refscope_id id, refscope_sink caller);

/* refscope_object_create, refscope_object_retain and refscope_object_release with every
 * argument a double, for an FFI that passes pointers or 32-bit integers slowly (Node's
 * node:ffi converts a pointer from a BigInt): `counter` is the counter's address (an
 * integer below 2^53, aligned as the counter is, else REFSCOPE_E_INVALID_ARGUMENT);
 * `caller` a sink (an integer below 2^32, else an unknown caller). create_n returns the new
 * object's id, or a negative status. Threads: any. Do not block. */
double refscope_object_create_n(double counter, double size_bytes, double caller);
refscope_status refscope_object_retain_n(double counter, refscope_id id, double caller);
refscope_hint refscope_object_release_n(double counter, refscope_id id, double caller);

/* Drops one of the caller's local references per id (ids may repeat). All or nothing.
 * Threads: any. Does not block. */
refscope_hint refscope_object_release_batch(refscope_counter *counter, const refscope_id *ids,
                                            uint32_t count, refscope_sink caller);

/* Adds/removes one of the caller's submitted-task references per id (a task took them as
 * arguments / finished). All or nothing. Threads: any. Do not block. */
refscope_status refscope_submitted_add(refscope_counter *counter, const refscope_id *ids, uint32_t count,
                                       refscope_sink caller);
refscope_hint refscope_submitted_remove(refscope_counter *counter, const refscope_id *ids,
                                        uint32_t count, refscope_sink caller);

/* Adds/removes one of the caller's lineage references per id (a retryable task may still
 * need them). Removal also works on objects out of scope but kept by lineage. All or
 * nothing. Threads: any. Do not block. */
refscope_status refscope_lineage_add(refscope_counter *counter, const refscope_id *ids, uint32_t count,
                                     refscope_sink caller);
refscope_hint refscope_lineage_remove(refscope_counter *counter, const refscope_id *ids, uint32_t count,
                                      refscope_sink caller);

/* Turns one of the caller's local references into a reference lent to whoever borrows it
 * next; the object stays in scope meanwhile. Pass (id, caller) to the borrower. Threads:
 * any. Does not block. */
refscope_status refscope_object_lend(refscope_counter *counter, refscope_id id, refscope_sink caller);

/* Claims a reference `lender` (in its `lender_generation`, see refscope_sink_generation;
 * ignored for REFSCOPE_NO_SINK) lent: it becomes one of the caller's local references (the
 * caller borrows the object unless it owns it). REFSCOPE_E_NO_REFERENCE when none is lent,
 * or when the lender's slot now holds another sink (the lender ended, and what it lent was
 * released with it). Threads: any. Does not block. */
refscope_status refscope_object_borrow(refscope_counter *counter, refscope_id id, refscope_sink lender,
                                       uint32_t lender_generation, refscope_sink caller);

/* Explicitly frees an owned object: its out-of-scope callbacks are handed over now (freeing
 * again is a no-op), later registrations are refused, and the entry stays until its
 * references drop. REFSCOPE_E_NOT_OWNED from a sink that does not own it. Threads: any.
 * Does not block. */
refscope_hint refscope_object_free(refscope_counter *counter, refscope_id id, refscope_sink caller);

/* Registers a native callback, for the owner: REFSCOPE_REGISTERED, or REFSCOPE_REFUSED (it
 * will never run) when the object has been deleted or, for out-of-scope callbacks, freed
 * or already out of scope. A NULL function is REFSCOPE_E_INVALID_ARGUMENT. Threads: any.
 * Do not block. */
refscope_registration refscope_object_on_out_of_scope(refscope_counter *counter, refscope_id id,
                                                      refscope_callback_fn function, void *context);
refscope_registration refscope_object_on_deleted(refscope_counter *counter, refscope_id id,
                                                 refscope_callback_fn function, void *context);

/* Removes the first native callback of `kind` (REFSCOPE_ON_*) equal to (function,
 * context): REFSCOPE_REMOVED, or REFSCOPE_NOT_REMOVED when it already left the table (it
 * will run, or ran) or never was registered. Threads: any. Does not block. */
refscope_removal refscope_object_off_native(refscope_counter *counter, refscope_id id, uint32_t kind,
                                            refscope_callback_fn function, void *context);

/* Registers, or removes, delivery of `token` to `sink` (which must be the caller's own
 * sink and own the object: REFSCOPE_E_NOT_OWNED otherwise; REFSCOPE_NO_SINK is no sink:
 * REFSCOPE_E_INVALID_ARGUMENT). Results as the native ones. Threads: any (meant for the
 * sink's owner). Do not block. */
refscope_registration refscope_object_on_sink(refscope_counter *counter, refscope_id id, refscope_sink sink,
                                              uint32_t kind, uint32_t token);
refscope_removal refscope_object_off_sink(refscope_counter *counter, refscope_id id, refscope_sink sink,
                                          uint32_t kind, uint32_t token);

/* Copies the tokens of `sink`'s callbacks of `kind` on the object, in registration order,
 * and returns how many there are (possibly more than capacity). `tokens` may be NULL when
 * capacity is 0, to ask for the count. Threads: any. Does not block. */
int32_t refscope_object_sink_tokens(refscope_counter *counter, refscope_id id, refscope_sink sink,
                                    uint32_t kind, uint32_t *tokens, uint32_t capacity);

/* The object's state. Objects out of scope but kept by lineage still have one. Threads:
 * any. Does not block. */
refscope_status refscope_object_info(refscope_counter *counter, refscope_id id, refscope_info *out_info);

/* Copies the holder records of the object (each sink with references recorded apart from
 * the owner's local and submitted counts: borrowers, lenders, lineage pins) and returns how
 * many there are (possibly more than capacity). `out_holdings` may be NULL when capacity is
 * 0, to ask for the count. Threads: any. Does not block. */
int32_t refscope_object_holdings(refscope_counter *counter, refscope_id id,
                                 refscope_holding *out_holdings, uint32_t capacity);

#ifdef __cplusplus
}
#endif

#endif /* REFSCOPE_H */
