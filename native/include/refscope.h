/*
 * refscope: reference counting with out-of-scope notifications.
 *
 * A counter owns a table of objects. Each object has a local reference count and a
 * submitted-task reference count; when every count is zero the object is out of scope: its
 * entry is deleted and its callbacks run, in registration order, exactly once. An explicit
 * free runs them at once and keeps the entry until its references drop.
 *
 * Callbacks never run inside the call that caused them. Native callbacks run on the
 * counter's dispatcher thread, with no lock held, so they may call back into the counter.
 * Sink callbacks deliver a token to a sink: an outbox that one event loop (a JavaScript
 * runtime instance) drains in batches after a coalesced wake.
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

#define REFSCOPE_ABI_VERSION 1u

typedef double refscope_id;
typedef struct refscope_counter refscope_counter;
/* A sink index, or REFSCOPE_NO_SINK. */
typedef uint32_t refscope_sink;
#define REFSCOPE_NO_SINK UINT32_MAX

/* Runs on the dispatcher thread once the object is out of scope or freed. It must not
 * block for long: later callbacks and wakes wait for it. */
typedef void (*refscope_callback_fn)(refscope_id id, void *context);
/* Runs on the dispatcher thread, with no lock held, when a sink has tokens to drain. One
 * wake covers every token that arrives until a drain finds the sink empty. */
typedef void (*refscope_wake_fn)(void *context);

enum {
    REFSCOPE_OK = 0,
    /* Success, and tokens arrived for caller_sink that no wake will announce: drain it. */
    REFSCOPE_DRAIN = 1,
    REFSCOPE_E_INVALID_ARGUMENT = -1, /* a NULL pointer, or an argument outside its domain */
    REFSCOPE_E_INVALID_ID = -2,       /* not an id this counter issued */
    REFSCOPE_E_STALE_ID = -3,         /* the object has been deleted */
    REFSCOPE_E_NO_REFERENCE = -4,     /* releasing a count that is already zero */
    REFSCOPE_E_LIMIT = -5,            /* a count, the table or the byte total would overflow */
    REFSCOPE_E_OUT_OF_MEMORY = -6,
    REFSCOPE_E_CLOSED = -7,           /* the counter is closing or closed */
    REFSCOPE_E_WRONG_THREAD = -8,     /* the call would deadlock on this thread */
    REFSCOPE_E_SYSTEM_RESOURCES = -9  /* the OS refused a resource (the dispatcher thread) */
};

/* Registration results. */
enum { REFSCOPE_REFUSED = 0, REFSCOPE_REGISTERED = 1 };

/* Counter states, from refscope_counter_state. */
enum { REFSCOPE_STATE_OPEN = 0, REFSCOPE_STATE_CLOSING = 1, REFSCOPE_STATE_CLOSED = 2 };

#define REFSCOPE_OBJECT_OWNED 1u
#define REFSCOPE_OBJECT_FREED 2u

typedef struct refscope_info {
    uint32_t refs_local;
    uint32_t refs_submitted;
    uint32_t callbacks_pending; /* registered and not yet handed over */
    uint32_t flags;             /* REFSCOPE_OBJECT_OWNED | REFSCOPE_OBJECT_FREED */
    uint64_t size_bytes;
} refscope_info;

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
} refscope_stats;

/* --- Library ------------------------------------------------------------------------ */

/* REFSCOPE_ABI_VERSION of the loaded library. Any thread; does not block. */
uint32_t refscope_abi_version(void);
/* The constant's name ("REFSCOPE_E_STALE_ID") and a sentence; static strings, never NULL.
 * Any thread; does not block. */
const char *refscope_status_name(int32_t status);
const char *refscope_status_message(int32_t status);

/* --- Counter lifecycle -------------------------------------------------------------- */

/* Creates a counter and starts its dispatcher thread. Any thread; does not block beyond
 * thread creation. *out_counter is NULL on error. */
int32_t refscope_counter_open(refscope_counter **out_counter);

/* Starts shutdown and returns at once: every live object is deleted as if its last
 * reference dropped (so every registered callback is delivered exactly once, shutdown
 * included), later mutations fail with REFSCOPE_E_CLOSED, and the dispatcher runs what is
 * queued, sends the wakes it owes, and exits; the state then becomes
 * REFSCOPE_STATE_CLOSED. caller_sink as for refscope_object_release. Any thread; does not
 * block. */
int32_t refscope_counter_close(refscope_counter *counter, refscope_sink caller_sink);

/* REFSCOPE_STATE_*. Any thread; does not block. */
int32_t refscope_counter_state(refscope_counter *counter);

/* Closes if still open, waits for the dispatcher to run every queued native callback and
 * exit, and frees the counter; tokens still in sink outboxes are discarded, so drain them
 * first. NULL is a no-op. BLOCKS. Not from a callback (REFSCOPE_E_WRONG_THREAD). Not from
 * a thread that services a sink's wake until refscope_counter_state reports
 * REFSCOPE_STATE_CLOSED: the dispatcher may be blocked in that wake (a Deno thread-safe
 * callback waits for its JS thread), and the join would never return. No other thread may
 * use the counter once this is called. */
int32_t refscope_counter_destroy(refscope_counter *counter);

/* Any thread; does not block. */
int32_t refscope_counter_stats(refscope_counter *counter, refscope_stats *out_stats);

/* --- Sinks -------------------------------------------------------------------------- */

/* Opens a sink (at most 64 per counter, REFSCOPE_E_LIMIT beyond). wake may be NULL for an
 * owner that polls. Any thread; does not block. */
int32_t refscope_sink_open(refscope_counter *counter, refscope_wake_fn wake, void *wake_context,
                           refscope_sink *out_sink);

/* Copies up to capacity tokens out of the sink, in delivery order, and returns how many.
 * Returning 0 means the sink is empty and re-arms its wake. Allowed in every state until
 * destroy. Meant for the sink's owner; any thread; does not block. */
int32_t refscope_sink_drain(refscope_counter *counter, refscope_sink sink, uint32_t *tokens,
                            uint32_t capacity);

/* Tokens waiting in the sink. Any thread; does not block. */
int32_t refscope_sink_pending(refscope_counter *counter, refscope_sink sink);

/* --- Objects -------------------------------------------------------------------------- */

/* Creates an owned object of size_bytes (an integer-valued double in [0, 2^53)) holding one
 * local reference. Any thread; does not block. */
int32_t refscope_object_create(refscope_counter *counter, double size_bytes, refscope_id *out_id);

/* Adds a local reference. Any thread; does not block. */
int32_t refscope_object_retain(refscope_counter *counter, refscope_id id);

/* Drops a local reference; the last reference sends the object out of scope. caller_sink is
 * REFSCOPE_NO_SINK, or the sink whose owner is calling: tokens for that sink then get no
 * wake, and the call returns REFSCOPE_DRAIN instead, telling the owner to drain. Any thread;
 * does not block. */
int32_t refscope_object_release(refscope_counter *counter, refscope_id id, refscope_sink caller_sink);

/* Drops one local reference per id (ids may repeat). All or nothing. Any thread; does not
 * block. */
int32_t refscope_object_release_batch(refscope_counter *counter, const refscope_id *ids,
                                      uint32_t count, refscope_sink caller_sink);

/* Adds one submitted-task reference per id (a task took them as arguments). All or
 * nothing. Any thread; does not block. */
int32_t refscope_submitted_add(refscope_counter *counter, const refscope_id *ids, uint32_t count);

/* Removes one submitted-task reference per id (the task finished). All or nothing. Any
 * thread; does not block. */
int32_t refscope_submitted_remove(refscope_counter *counter, const refscope_id *ids,
                                  uint32_t count, refscope_sink caller_sink);

/* Explicitly frees an owned object: its callbacks are handed over now (freeing again is a
 * no-op), later registrations are refused, and the entry stays until its references drop.
 * Any thread; does not block. */
int32_t refscope_object_free(refscope_counter *counter, refscope_id id, refscope_sink caller_sink);

/* Registers a native callback. REFSCOPE_REGISTERED, or REFSCOPE_REFUSED (the callback will
 * never run) when the object has been deleted or freed. A NULL function is
 * REFSCOPE_E_INVALID_ARGUMENT. Any thread; does not block. */
int32_t refscope_object_on_out_of_scope(refscope_counter *counter, refscope_id id,
                                        refscope_callback_fn function, void *context);

/* Registers delivery of token to sink; results as refscope_object_on_out_of_scope. Any
 * thread; does not block. */
int32_t refscope_object_on_out_of_scope_sink(refscope_counter *counter, refscope_id id,
                                             refscope_sink sink, uint32_t token);

/* Any thread; does not block. */
int32_t refscope_object_info(refscope_counter *counter, refscope_id id, refscope_info *out_info);

#ifdef __cplusplus
}
#endif

#endif /* REFSCOPE_H */
