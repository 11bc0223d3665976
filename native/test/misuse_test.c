/* The misuse catalogue at the C ABI: every mistaken or hostile argument a C caller can
 * pass with valid memory (NULL pointers, pointer/length mismatches, forged, stale and
 * reused ids, unknown sinks, out-of-domain kinds, flags and sizes, releases below zero of
 * every count kind, registrations on freed, deleted and non-owned objects, calls after
 * close) returns its documented status, and leaves the table exactly as it was: after
 * each case, the counter's stats, every live object's info and every object's holdings
 * are compared with a copy taken before it.
 *
 * Table-driven: each case is one call and the status it must return. What a C caller owns
 * and this test therefore never does: passing a pointer to freed memory (a counter after
 * refscope_counter_destroy, or after the refscope_sink_close that dropped its last hold),
 * or a buffer shorter than the capacity it claims. Those are undefined behaviour, as with
 * any C library; the ABI checks pointers for NULL only. Exits non-zero if any case fails. */
#include "refscope.h"
#include "check.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define NO REFSCOPE_NO_SINK
#define OOS REFSCOPE_ON_OUT_OF_SCOPE
#define DEL REFSCOPE_ON_DELETED
#define INVALID_ARGUMENT REFSCOPE_E_INVALID_ARGUMENT
#define INVALID_ID REFSCOPE_E_INVALID_ID
#define STALE_ID REFSCOPE_E_STALE_ID
#define NO_REFERENCE REFSCOPE_E_NO_REFERENCE
#define NOT_OWNED REFSCOPE_E_NOT_OWNED
#define CLOSED REFSCOPE_E_CLOSED
#define LIMIT REFSCOPE_E_LIMIT

/* An id's parts (see IdParts in native/src/table.zig): generation << 24 | slot. */
static const double slot_span = 16777216.0; /* 2^24 */
static uint32_t slot_of(refscope_id id) { return (uint32_t)((uint64_t)id & 0xffffffu); }
static uint32_t generation_of(refscope_id id) { return (uint32_t)((uint64_t)id >> 24); }
static refscope_id id_from(uint32_t slot, uint32_t generation) {
    return (double)(((uint64_t)generation << 24) | slot);
}

static void ignore(refscope_id id, void *context) {
    (void)id;
    (void)context;
}

/* The objects and sinks every case is played against. */
struct fixture {
    refscope_counter *counter;
    double key;
    refscope_sink a, b;       /* two sinks (participants); neither has a wake */
    refscope_sink unopened;   /* a sink index below the maximum that is not open */
    refscope_id live;         /* native-owned: one local reference, one native callback */
    refscope_id owned_a;      /* owned by sink a: one local reference, one sink callback */
    refscope_id borrowed;     /* native-owned: one local reference; sink b borrows one */
    refscope_id freed;        /* native-owned, freed, still referenced */
    refscope_id freed_a;      /* owned by sink a, freed, still referenced */
    refscope_id pinned;       /* reconstructable, out of scope, kept by one lineage reference */
    refscope_id submitted;    /* in scope by one submitted reference only: no local one left */
    refscope_id stale;        /* deleted; its slot was reused by `reused` */
    refscope_id reused;       /* the next generation of stale's slot */
    refscope_id future;       /* live's slot, a generation not issued yet */
    refscope_id unused_slot;  /* generation 1 of a slot the table never used */
    /* Scratch outputs. */
    refscope_id out_id;
    refscope_counter *out_counter;
    refscope_sink out_sink;
    refscope_info info;
    refscope_stats stats;
    refscope_info records[4];
    refscope_holding holdings[4];
    uint32_t tokens[4];
    refscope_sink relayed[REFSCOPE_SINKS_MAX];
    uint32_t generation_a;
    uint32_t next;
};

/* Everything a misuse must leave as it was. */
enum { records_max = 1100 };
struct table_state {
    refscope_stats stats;
    int32_t count;
    refscope_info records[records_max];
    int32_t holding_counts[records_max];
    refscope_holding holdings[records_max][8];
};
/* Before and after each case (static: too large for a stack frame). */
static struct table_state before, after;

static void capture(refscope_counter *counter, struct table_state *state) {
    memset(state, 0, sizeof *state);
    CHECK(refscope_counter_stats(counter, &state->stats) == REFSCOPE_OK);
    /* Capacity, not contents: a refused call may leave a pool node reserved for reuse. */
    state->stats.memory_bytes = 0;
    uint32_t next = 0;
    state->count = refscope_counter_snapshot(counter, 0, state->records, records_max, &next);
    CHECK(state->count >= 0 && state->count < records_max);
    for (int32_t i = 0; i < state->count; i++) {
        state->holding_counts[i] = refscope_object_holdings(counter, state->records[i].id, state->holdings[i], 8);
        CHECK(state->holding_counts[i] >= 0 && state->holding_counts[i] <= 8);
    }
}

static int failures = 0;
static int cases_run = 0;

/* Runs one case: the status, then the table. */
static void expect(refscope_counter *counter, const char *name, int32_t (*call)(struct fixture *),
                   struct fixture *f, int32_t expected) {
    capture(counter, &before);
    int32_t status = call(f);
    capture(counter, &after);
    cases_run++;
    if (status != expected) {
        failures++;
        fprintf(stderr, "misuse_test: %s: returned %d (%s), expected %d (%s)\n", name, status,
                refscope_status_name(status), expected, refscope_status_name(expected));
    }
    if (memcmp(&before, &after, sizeof before) != 0) {
        failures++;
        fprintf(stderr, "misuse_test: %s: the table changed\n", name);
    }
}

/* --- The catalogue: (name, expected status, call) ----------------------------------- */

/* A counter as the `_n` calls take it: its address, as a double. */
#define ADDRESS(counter) ((double)(uintptr_t)(counter))

#define MISUSE_CASES(X)                                                                                  \
    /* A NULL counter: every function but destroy (a documented no-op) refuses it. */                    \
    X(null_counter_key, INVALID_ARGUMENT, refscope_counter_key(NULL, &f->key))                           \
    X(null_counter_destroy_on_thread_exit, INVALID_ARGUMENT, refscope_counter_destroy_on_thread_exit(NULL)) \
    X(null_counter_close, INVALID_ARGUMENT, refscope_counter_close(NULL, NO))                            \
    X(null_counter_state, INVALID_ARGUMENT, refscope_counter_state(NULL))                                \
    X(null_counter_destroy_is_a_no_op, REFSCOPE_OK, refscope_counter_destroy(NULL))                      \
    X(null_counter_stats, INVALID_ARGUMENT, refscope_counter_stats(NULL, &f->stats))                     \
    X(null_counter_snapshot, INVALID_ARGUMENT, refscope_counter_snapshot(NULL, 0, f->records, 4, &f->next)) \
    X(null_counter_sink_open, INVALID_ARGUMENT, refscope_sink_open(NULL, NULL, NULL, 0, &f->out_sink))      \
    X(null_counter_sink_release, INVALID_ARGUMENT, refscope_sink_release(NULL, f->a))                    \
    X(null_counter_sink_generation, INVALID_ARGUMENT, refscope_sink_generation(NULL, f->a, &f->out_sink)) \
    X(null_counter_relay_take, INVALID_ARGUMENT, refscope_relay_take(NULL, f->relayed, REFSCOPE_SINKS_MAX)) \
    X(null_out_sink_generation, INVALID_ARGUMENT, refscope_sink_generation(f->counter, f->a, NULL))      \
    X(null_out_relay_take, INVALID_ARGUMENT, refscope_relay_take(f->counter, NULL, REFSCOPE_SINKS_MAX))  \
    X(short_out_relay_take, INVALID_ARGUMENT, refscope_relay_take(f->counter, f->relayed, REFSCOPE_SINKS_MAX - 1)) \
    X(unopened_sink_generation, INVALID_ARGUMENT, refscope_sink_generation(f->counter, f->unopened, &f->out_sink)) \
    X(no_sink_generation, INVALID_ARGUMENT, refscope_sink_generation(f->counter, NO, &f->out_sink))      \
    X(unknown_flag_sink_open, INVALID_ARGUMENT, refscope_sink_open(f->counter, NULL, NULL, 2, &f->out_sink)) \
    X(unknown_flag_attach, INVALID_ARGUMENT,                                                             \
      refscope_counter_attach(f->key, NULL, NULL, 0x80000000u, &f->out_counter, &f->out_sink))           \
    X(stale_lender_generation_borrow, NO_REFERENCE,                                                      \
      refscope_object_borrow(f->counter, f->borrowed, f->a, f->generation_a + 1, f->b))                  \
    X(null_counter_sink_close, INVALID_ARGUMENT, refscope_sink_close(NULL, f->a))                        \
    X(null_counter_sink_drain, INVALID_ARGUMENT, refscope_sink_drain(NULL, f->a, f->tokens, 4))          \
    X(null_counter_sink_pending, INVALID_ARGUMENT, refscope_sink_pending(NULL, f->a))                    \
    X(null_counter_create, INVALID_ARGUMENT, refscope_object_create(NULL, 0, NO, &f->out_id))            \
    X(null_counter_create_ex, INVALID_ARGUMENT,                                                          \
      refscope_object_create_ex(NULL, 0, 0, NULL, 0, NULL, 0, NO, &f->out_id))                           \
    X(null_counter_retain, INVALID_ARGUMENT, refscope_object_retain(NULL, f->live, NO))                  \
    X(zero_counter_create_n, INVALID_ARGUMENT, (int32_t)refscope_object_create_n(0, 0, NO))                \
    X(nan_counter_create_n, INVALID_ARGUMENT, (int32_t)refscope_object_create_n(NAN, 0, NO))               \
    X(unaligned_counter_create_n, INVALID_ARGUMENT, (int32_t)refscope_object_create_n(ADDRESS(f->counter) + 1, 0, NO)) \
    X(fractional_counter_create_n, INVALID_ARGUMENT, (int32_t)refscope_object_create_n(ADDRESS(f->counter) + 0.5, 0, NO)) \
    X(negative_counter_create_n, INVALID_ARGUMENT, (int32_t)refscope_object_create_n(-ADDRESS(f->counter), 0, NO)) \
    X(counter_2_53_create_n, INVALID_ARGUMENT, (int32_t)refscope_object_create_n(9007199254740992.0, 0, NO)) \
    X(infinite_counter_retain_n, INVALID_ARGUMENT, refscope_object_retain_n(INFINITY, f->live, NO))        \
    X(zero_counter_retain_n, INVALID_ARGUMENT, refscope_object_retain_n(0, f->live, NO))                   \
    X(zero_counter_release_n, INVALID_ARGUMENT, refscope_object_release_n(0, f->live, NO))                 \
    X(unaligned_counter_release_n, INVALID_ARGUMENT, refscope_object_release_n(ADDRESS(f->counter) + 4, f->live, NO)) \
    X(nan_size_create_n, INVALID_ARGUMENT, (int32_t)refscope_object_create_n(ADDRESS(f->counter), NAN, NO)) \
    X(nan_caller_create_n, INVALID_ARGUMENT, (int32_t)refscope_object_create_n(ADDRESS(f->counter), 0, NAN)) \
    X(negative_caller_retain_n, INVALID_ARGUMENT, refscope_object_retain_n(ADDRESS(f->counter), f->live, -1)) \
    X(fractional_caller_retain_n, INVALID_ARGUMENT, refscope_object_retain_n(ADDRESS(f->counter), f->live, 0.5)) \
    X(caller_2_32_release_n, INVALID_ARGUMENT, refscope_object_release_n(ADDRESS(f->counter), f->live, 4294967296.0)) \
    X(unopened_caller_release_n, INVALID_ARGUMENT, refscope_object_release_n(ADDRESS(f->counter), f->live, f->unopened)) \
    X(owner_gone_caller_create_n, INVALID_ARGUMENT,                                                      \
      (int32_t)refscope_object_create_n(ADDRESS(f->counter), 0, REFSCOPE_OWNER_GONE))                      \
    X(null_counter_release, INVALID_ARGUMENT, refscope_object_release(NULL, f->live, NO))                \
    X(null_counter_release_batch, INVALID_ARGUMENT, refscope_object_release_batch(NULL, &f->live, 1, NO)) \
    X(null_counter_submitted_add, INVALID_ARGUMENT, refscope_submitted_add(NULL, &f->live, 1, NO))       \
    X(null_counter_submitted_remove, INVALID_ARGUMENT, refscope_submitted_remove(NULL, &f->live, 1, NO)) \
    X(null_counter_lineage_add, INVALID_ARGUMENT, refscope_lineage_add(NULL, &f->live, 1, NO))           \
    X(null_counter_lineage_remove, INVALID_ARGUMENT, refscope_lineage_remove(NULL, &f->live, 1, NO))     \
    X(null_counter_lend, INVALID_ARGUMENT, refscope_object_lend(NULL, f->live, NO))                      \
    X(null_counter_borrow, INVALID_ARGUMENT, refscope_object_borrow(NULL, f->live, NO, 0, f->b))            \
    X(null_counter_free, INVALID_ARGUMENT, refscope_object_free(NULL, f->live, NO))                      \
    X(null_counter_on_out_of_scope, INVALID_ARGUMENT, refscope_object_on_out_of_scope(NULL, f->live, ignore, NULL)) \
    X(null_counter_on_deleted, INVALID_ARGUMENT, refscope_object_on_deleted(NULL, f->live, ignore, NULL)) \
    X(null_counter_off_native, INVALID_ARGUMENT, refscope_object_off_native(NULL, f->live, OOS, ignore, NULL)) \
    X(null_counter_on_sink, INVALID_ARGUMENT, refscope_object_on_sink(NULL, f->owned_a, f->a, OOS, 1))   \
    X(null_counter_off_sink, INVALID_ARGUMENT, refscope_object_off_sink(NULL, f->owned_a, f->a, OOS, 1)) \
    X(null_counter_sink_tokens, INVALID_ARGUMENT,                                                        \
      refscope_object_sink_tokens(NULL, f->owned_a, f->a, OOS, f->tokens, 4))                            \
    X(null_counter_info, INVALID_ARGUMENT, refscope_object_info(NULL, f->live, &f->info))                \
    X(null_counter_holdings, INVALID_ARGUMENT, refscope_object_holdings(NULL, f->live, f->holdings, 4))  \
    /* NULL out-pointers. */                                                                             \
    X(null_out_counter_open, INVALID_ARGUMENT, refscope_counter_open(NULL))                              \
    X(null_out_key, INVALID_ARGUMENT, refscope_counter_key(f->counter, NULL))                            \
    X(null_out_counter_attach, INVALID_ARGUMENT, refscope_counter_attach(f->key, NULL, NULL, 0, NULL, &f->out_sink)) \
    X(null_out_sink_attach, INVALID_ARGUMENT, refscope_counter_attach(f->key, NULL, NULL, 0, &f->out_counter, NULL)) \
    X(null_out_stats, INVALID_ARGUMENT, refscope_counter_stats(f->counter, NULL))                        \
    X(null_records_snapshot, INVALID_ARGUMENT, refscope_counter_snapshot(f->counter, 0, NULL, 4, &f->next)) \
    X(null_records_snapshot_capacity_0, INVALID_ARGUMENT,                                                \
      refscope_counter_snapshot(f->counter, 0, NULL, 0, &f->next))                                       \
    X(null_next_snapshot, INVALID_ARGUMENT, refscope_counter_snapshot(f->counter, 0, f->records, 4, NULL)) \
    X(null_out_sink_open, INVALID_ARGUMENT, refscope_sink_open(f->counter, NULL, NULL, 0, NULL))            \
    X(null_tokens_sink_drain, INVALID_ARGUMENT, refscope_sink_drain(f->counter, f->a, NULL, 4))          \
    X(null_tokens_sink_drain_capacity_0, INVALID_ARGUMENT, refscope_sink_drain(f->counter, f->a, NULL, 0)) \
    X(null_out_create, INVALID_ARGUMENT, refscope_object_create(f->counter, 0, NO, NULL))                \
    X(null_out_create_ex, INVALID_ARGUMENT,                                                              \
      refscope_object_create_ex(f->counter, 0, 0, NULL, 0, NULL, 0, NO, NULL))                           \
    X(null_out_info, INVALID_ARGUMENT, refscope_object_info(f->counter, f->live, NULL))                  \
    /* A NULL C function pointer. */                                                                     \
    X(null_function_on_out_of_scope, INVALID_ARGUMENT, refscope_object_on_out_of_scope(f->counter, f->live, NULL, f)) \
    X(null_function_on_deleted, INVALID_ARGUMENT, refscope_object_on_deleted(f->counter, f->live, NULL, f)) \
    X(null_function_off_native, INVALID_ARGUMENT, refscope_object_off_native(f->counter, f->live, OOS, NULL, f)) \
    /* Pointer/length mismatches: NULL with a count; NULL with a zero count is empty. */                 \
    X(null_ids_release_batch, INVALID_ARGUMENT, refscope_object_release_batch(f->counter, NULL, 1, NO))  \
    X(null_ids_submitted_add, INVALID_ARGUMENT, refscope_submitted_add(f->counter, NULL, 2, NO))         \
    X(null_ids_submitted_remove, INVALID_ARGUMENT, refscope_submitted_remove(f->counter, NULL, 1, NO))   \
    X(null_ids_lineage_add, INVALID_ARGUMENT, refscope_lineage_add(f->counter, NULL, 1, NO))             \
    X(null_ids_lineage_remove, INVALID_ARGUMENT, refscope_lineage_remove(f->counter, NULL, 1, NO))       \
    X(null_ids_lineage_remove_max_count, INVALID_ARGUMENT, refscope_lineage_remove(f->counter, NULL, UINT32_MAX, NO)) \
    X(null_contains_create_ex, INVALID_ARGUMENT,                                                         \
      refscope_object_create_ex(f->counter, 0, 0, NULL, 1, NULL, 0, NO, &f->out_id))                     \
    X(null_lineage_create_ex, INVALID_ARGUMENT,                                                          \
      refscope_object_create_ex(f->counter, 0, 0, &f->live, 1, NULL, 3, NO, &f->out_id))                 \
    X(null_tokens_sink_tokens, INVALID_ARGUMENT, refscope_object_sink_tokens(f->counter, f->owned_a, f->a, OOS, NULL, 1)) \
    X(null_holdings_holdings, INVALID_ARGUMENT, refscope_object_holdings(f->counter, f->borrowed, NULL, 1)) \
    X(null_ids_count_0_release_batch_is_empty, REFSCOPE_HINT_NONE, refscope_object_release_batch(f->counter, NULL, 0, NO)) \
    X(null_ids_count_0_submitted_add_is_empty, REFSCOPE_OK, refscope_submitted_add(f->counter, NULL, 0, NO)) \
    X(null_ids_count_0_lineage_remove_is_empty, REFSCOPE_HINT_NONE, refscope_lineage_remove(f->counter, NULL, 0, f->a)) \
    X(null_tokens_capacity_0_sink_tokens_counts, 1, refscope_object_sink_tokens(f->counter, f->owned_a, f->a, OOS, NULL, 0)) \
    X(null_holdings_capacity_0_holdings_counts, 1, refscope_object_holdings(f->counter, f->borrowed, NULL, 0)) \
    /* Out-of-domain kinds, flags, sinks, sizes; forged keys. */                                         \
    X(kind_2_on_sink, INVALID_ARGUMENT, refscope_object_on_sink(f->counter, f->owned_a, f->a, 2, 1))     \
    X(kind_2_off_sink, INVALID_ARGUMENT, refscope_object_off_sink(f->counter, f->owned_a, f->a, 2, 5))   \
    X(kind_max_off_native, INVALID_ARGUMENT, refscope_object_off_native(f->counter, f->live, UINT32_MAX, ignore, NULL)) \
    X(kind_2_sink_tokens, INVALID_ARGUMENT, refscope_object_sink_tokens(f->counter, f->owned_a, f->a, 2, f->tokens, 4)) \
    X(unknown_create_flag, INVALID_ARGUMENT,                                                             \
      refscope_object_create_ex(f->counter, 0, 2, NULL, 0, NULL, 0, NO, &f->out_id))                     \
    X(unopened_caller_create, INVALID_ARGUMENT, refscope_object_create(f->counter, 0, f->unopened, &f->out_id)) \
    X(sink_64_caller_create, INVALID_ARGUMENT, refscope_object_create(f->counter, 0, 64, &f->out_id))    \
    X(owner_gone_caller_create, INVALID_ARGUMENT,                                                        \
      refscope_object_create(f->counter, 0, REFSCOPE_OWNER_GONE, &f->out_id))                            \
    X(unopened_caller_retain, INVALID_ARGUMENT, refscope_object_retain(f->counter, f->live, f->unopened)) \
    X(unopened_caller_release, INVALID_ARGUMENT, refscope_object_release(f->counter, f->live, f->unopened)) \
    X(unopened_caller_release_batch, INVALID_ARGUMENT,                                                   \
      refscope_object_release_batch(f->counter, &f->live, 1, f->unopened))                               \
    X(unopened_caller_submitted_add, INVALID_ARGUMENT, refscope_submitted_add(f->counter, &f->live, 1, f->unopened)) \
    X(sink_1000_caller_lineage_add, INVALID_ARGUMENT, refscope_lineage_add(f->counter, &f->live, 1, 1000)) \
    X(unopened_caller_lend, INVALID_ARGUMENT, refscope_object_lend(f->counter, f->live, f->unopened))    \
    X(unopened_caller_borrow, INVALID_ARGUMENT, refscope_object_borrow(f->counter, f->borrowed, NO, 0, f->unopened)) \
    X(unopened_caller_free, INVALID_ARGUMENT, refscope_object_free(f->counter, f->owned_a, f->unopened)) \
    X(unopened_sink_on_sink, INVALID_ARGUMENT, refscope_object_on_sink(f->counter, f->owned_a, f->unopened, OOS, 1)) \
    X(no_sink_on_sink, INVALID_ARGUMENT, refscope_object_on_sink(f->counter, f->live, NO, OOS, 1))       \
    X(no_sink_off_sink, INVALID_ARGUMENT, refscope_object_off_sink(f->counter, f->live, NO, OOS, 1))     \
    X(owner_gone_on_sink, INVALID_ARGUMENT,                                                              \
      refscope_object_on_sink(f->counter, f->live, REFSCOPE_OWNER_GONE, DEL, 1))                         \
    X(lender_64_borrow, INVALID_ARGUMENT, refscope_object_borrow(f->counter, f->borrowed, 64, 0, f->b))     \
    X(lender_owner_gone_borrow, INVALID_ARGUMENT,                                                        \
      refscope_object_borrow(f->counter, f->borrowed, REFSCOPE_OWNER_GONE, 0, f->b))                        \
    X(unopened_sink_release, INVALID_ARGUMENT, refscope_sink_release(f->counter, f->unopened))           \
    X(unopened_sink_close, INVALID_ARGUMENT, refscope_sink_close(f->counter, f->unopened))               \
    X(no_sink_close, INVALID_ARGUMENT, refscope_sink_close(f->counter, NO))                              \
    X(unopened_sink_drain, INVALID_ARGUMENT, refscope_sink_drain(f->counter, f->unopened, f->tokens, 4)) \
    X(sink_64_pending, INVALID_ARGUMENT, refscope_sink_pending(f->counter, 64))                          \
    X(unopened_caller_close, INVALID_ARGUMENT, refscope_counter_close(f->counter, f->unopened))          \
    X(size_negative, INVALID_ARGUMENT, refscope_object_create(f->counter, -1, NO, &f->out_id))           \
    X(size_fractional, INVALID_ARGUMENT, refscope_object_create(f->counter, 0.5, NO, &f->out_id))        \
    X(size_nan, INVALID_ARGUMENT, refscope_object_create(f->counter, NAN, NO, &f->out_id))               \
    X(size_infinity, INVALID_ARGUMENT, refscope_object_create(f->counter, INFINITY, NO, &f->out_id))     \
    X(size_minus_infinity, INVALID_ARGUMENT, refscope_object_create(f->counter, -INFINITY, NO, &f->out_id)) \
    X(size_2_53, INVALID_ARGUMENT, refscope_object_create(f->counter, 9007199254740992.0, NO, &f->out_id)) \
    X(size_2_64, INVALID_ARGUMENT, refscope_object_create(f->counter, 18446744073709551616.0, NO, &f->out_id)) \
    X(size_dbl_max, INVALID_ARGUMENT, refscope_object_create(f->counter, DBL_MAX, NO, &f->out_id))       \
    X(size_2_53_ex, INVALID_ARGUMENT,                                                                    \
      refscope_object_create_ex(f->counter, 9007199254740994.0, 0, &f->live, 1, NULL, 0, NO, &f->out_id)) \
    X(forged_key_attach, CLOSED, refscope_counter_attach(f->key + 1, NULL, NULL, 0, &f->out_counter, &f->out_sink)) \
    X(nan_key_attach, CLOSED, refscope_counter_attach(NAN, NULL, NULL, 0, &f->out_counter, &f->out_sink))   \
    X(zero_key_attach, CLOSED, refscope_counter_attach(0, NULL, NULL, 0, &f->out_counter, &f->out_sink))    \
    /* Releases below zero, of every count kind (the table's undo is checked too). */                    \
    X(release_local_below_zero, NO_REFERENCE, refscope_object_release(f->counter, f->submitted, NO))     \
    X(release_batch_twice_one_local, NO_REFERENCE,                                                       \
      refscope_object_release_batch(f->counter, (refscope_id[]){f->live, f->live}, 2, NO))               \
    X(release_batch_good_then_stale, STALE_ID,                                                           \
      refscope_object_release_batch(f->counter, (refscope_id[]){f->live, f->stale}, 2, NO))              \
    X(release_batch_good_then_forged, INVALID_ID,                                                        \
      refscope_object_release_batch(f->counter, (refscope_id[]){f->borrowed, f->future}, 2, NO))         \
    X(release_submitted_below_zero, NO_REFERENCE, refscope_submitted_remove(f->counter, &f->live, 1, NO)) \
    X(release_submitted_twice_one_held, NO_REFERENCE,                                                    \
      refscope_submitted_remove(f->counter, (refscope_id[]){f->submitted, f->submitted}, 2, NO))         \
    X(release_lineage_below_zero, NO_REFERENCE, refscope_lineage_remove(f->counter, &f->live, 1, NO))    \
    X(release_lineage_twice_one_held, NO_REFERENCE,                                                      \
      refscope_lineage_remove(f->counter, (refscope_id[]){f->pinned, f->pinned}, 2, NO))                 \
    X(release_lineage_of_another_sink, NO_REFERENCE, refscope_lineage_remove(f->counter, &f->pinned, 1, f->a)) \
    X(release_borrowed_not_held, NO_REFERENCE, refscope_object_release(f->counter, f->borrowed, f->a))   \
    X(release_borrowed_never_held, NO_REFERENCE, refscope_object_release(f->counter, f->live, f->b))     \
    X(release_borrowed_submitted_below_zero, NO_REFERENCE,                                               \
      refscope_submitted_remove(f->counter, &f->borrowed, 1, f->b))                                      \
    X(borrow_nothing_lent, NO_REFERENCE, refscope_object_borrow(f->counter, f->live, NO, 0, f->b))          \
    X(borrow_from_a_sink_that_lent_nothing, NO_REFERENCE, refscope_object_borrow(f->counter, f->borrowed, f->a, 0, f->b)) \
    X(borrow_from_an_unopened_sink, NO_REFERENCE, refscope_object_borrow(f->counter, f->borrowed, f->unopened, 0, f->b)) \
    X(lend_without_a_local_reference, NO_REFERENCE, refscope_object_lend(f->counter, f->submitted, NO))  \
    X(lend_by_a_sink_without_one, NO_REFERENCE, refscope_object_lend(f->counter, f->owned_a, f->b))      \
    /* Out of scope and kept only by lineage: no new references. */                                      \
    X(retain_out_of_scope, STALE_ID, refscope_object_retain(f->counter, f->pinned, NO))                  \
    X(release_out_of_scope, STALE_ID, refscope_object_release(f->counter, f->pinned, NO))                \
    X(submitted_add_out_of_scope, STALE_ID, refscope_submitted_add(f->counter, (refscope_id[]){f->live, f->pinned}, 2, NO)) \
    X(lineage_add_out_of_scope, STALE_ID, refscope_lineage_add(f->counter, (refscope_id[]){f->live, f->pinned}, 2, NO)) \
    X(lend_out_of_scope, STALE_ID, refscope_object_lend(f->counter, f->pinned, NO))                      \
    X(contains_out_of_scope, STALE_ID,                                                                   \
      refscope_object_create_ex(f->counter, 0, 0, (refscope_id[]){f->live, f->pinned}, 2, NULL, 0, NO, &f->out_id)) \
    X(lineage_out_of_scope, STALE_ID,                                                                    \
      refscope_object_create_ex(f->counter, 0, 0, NULL, 0, &f->pinned, 1, NO, &f->out_id))               \
    X(contains_stale, STALE_ID, refscope_object_create_ex(f->counter, 0, 0, &f->stale, 1, NULL, 0, NO, &f->out_id)) \
    X(contains_forged, INVALID_ID, refscope_object_create_ex(f->counter, 0, 0, &f->unused_slot, 1, NULL, 0, NO, &f->out_id)) \
    X(free_out_of_scope_is_a_no_op, REFSCOPE_HINT_NONE, refscope_object_free(f->counter, f->pinned, NO))        \
    /* Registration on freed, deleted, out-of-scope and non-owned objects. */                            \
    X(on_out_of_scope_freed_refused, REFSCOPE_REFUSED, refscope_object_on_out_of_scope(f->counter, f->freed, ignore, f)) \
    X(on_sink_freed_refused, REFSCOPE_REFUSED, refscope_object_on_sink(f->counter, f->freed_a, f->a, OOS, 9)) \
    X(on_out_of_scope_deleted_refused, REFSCOPE_REFUSED, refscope_object_on_out_of_scope(f->counter, f->stale, ignore, f)) \
    X(on_deleted_deleted_refused, REFSCOPE_REFUSED, refscope_object_on_deleted(f->counter, f->stale, ignore, f)) \
    X(on_sink_deleted_refused, REFSCOPE_REFUSED, refscope_object_on_sink(f->counter, f->stale, f->a, DEL, 9)) \
    X(on_out_of_scope_out_of_scope_refused, REFSCOPE_REFUSED,                                            \
      refscope_object_on_out_of_scope(f->counter, f->pinned, ignore, f))                                 \
    X(on_sink_not_owned, NOT_OWNED, refscope_object_on_sink(f->counter, f->owned_a, f->b, OOS, 9))       \
    X(on_sink_native_owned, NOT_OWNED, refscope_object_on_sink(f->counter, f->live, f->a, DEL, 9))       \
    X(on_sink_borrower, NOT_OWNED, refscope_object_on_sink(f->counter, f->borrowed, f->b, OOS, 9))       \
    X(off_sink_not_owned, NOT_OWNED, refscope_object_off_sink(f->counter, f->owned_a, f->b, OOS, 5))     \
    X(free_not_owned, NOT_OWNED, refscope_object_free(f->counter, f->owned_a, f->b))                     \
    X(free_by_borrower, NOT_OWNED, refscope_object_free(f->counter, f->borrowed, f->b))                  \
    X(off_native_never_registered, REFSCOPE_NOT_REMOVED, refscope_object_off_native(f->counter, f->live, OOS, ignore, NULL)) \
    X(off_native_wrong_kind, REFSCOPE_NOT_REMOVED, refscope_object_off_native(f->counter, f->live, DEL, ignore, f)) \
    X(off_sink_wrong_token, REFSCOPE_NOT_REMOVED, refscope_object_off_sink(f->counter, f->owned_a, f->a, OOS, 6)) \
    /* The stale id's slot now holds `reused`: the stale id never reaches it. */                         \
    X(stale_retain_not_the_reused_object, STALE_ID, refscope_object_retain(f->counter, f->stale, NO))    \
    X(stale_release_not_the_reused_object, STALE_ID, refscope_object_release(f->counter, f->stale, NO))  \
    X(stale_free_not_the_reused_object, STALE_ID, refscope_object_free(f->counter, f->stale, NO))        \
    X(stale_info_not_the_reused_object, STALE_ID, refscope_object_info(f->counter, f->stale, &f->info))

#define DEFINE_CASE(name, expected, call) \
    static int32_t case_##name(struct fixture *f) { \
        (void)f;                                      \
        return (call);                                \
    }
MISUSE_CASES(DEFINE_CASE)

struct misuse_case {
    const char *name;
    int32_t (*call)(struct fixture *);
    int32_t expected;
};

#define CASE_ENTRY(name, expected, call) {#name, case_##name, expected},
static const struct misuse_case misuse_cases[] = {MISUSE_CASES(CASE_ENTRY)};

/* --- Every id operation, against every forged id and every stale one ------------------ */

struct id_operation {
    const char *name;
    int32_t (*call)(struct fixture *, refscope_id);
    int32_t if_forged; /* the status for an id this counter never issued */
    int32_t if_stale;  /* the status for the id of a deleted object */
};

#define ID_OPERATIONS(X)                                                                                   \
    X(info, INVALID_ID, STALE_ID, refscope_object_info(f->counter, id, &f->info))                          \
    X(holdings, INVALID_ID, STALE_ID, refscope_object_holdings(f->counter, id, f->holdings, 4))            \
    X(retain, INVALID_ID, STALE_ID, refscope_object_retain(f->counter, id, NO))                            \
    X(retain_by_sink, INVALID_ID, STALE_ID, refscope_object_retain(f->counter, id, f->b))                  \
    X(release, INVALID_ID, STALE_ID, refscope_object_release(f->counter, id, NO))                          \
    X(retain_n, INVALID_ID, STALE_ID, refscope_object_retain_n(ADDRESS(f->counter), id, NO))               \
    X(release_n, INVALID_ID, STALE_ID, refscope_object_release_n(ADDRESS(f->counter), id, NO))             \
    X(release_batch, INVALID_ID, STALE_ID, refscope_object_release_batch(f->counter, (refscope_id[]){f->live, id}, 2, NO)) \
    X(submitted_add, INVALID_ID, STALE_ID, refscope_submitted_add(f->counter, (refscope_id[]){f->live, id}, 2, NO)) \
    X(submitted_remove, INVALID_ID, STALE_ID, refscope_submitted_remove(f->counter, (refscope_id[]){f->submitted, id}, 2, NO)) \
    X(lineage_add, INVALID_ID, STALE_ID, refscope_lineage_add(f->counter, (refscope_id[]){f->live, id}, 2, f->a)) \
    X(lineage_remove, INVALID_ID, STALE_ID, refscope_lineage_remove(f->counter, (refscope_id[]){f->pinned, id}, 2, NO)) \
    X(lend, INVALID_ID, STALE_ID, refscope_object_lend(f->counter, id, NO))                                \
    X(borrow, INVALID_ID, STALE_ID, refscope_object_borrow(f->counter, id, NO, 0, f->b))                      \
    X(free, INVALID_ID, STALE_ID, refscope_object_free(f->counter, id, NO))                                \
    X(create_contains, INVALID_ID, STALE_ID, refscope_object_create_ex(f->counter, 0, 0, &id, 1, NULL, 0, NO, &f->out_id)) \
    X(create_lineage, INVALID_ID, STALE_ID, refscope_object_create_ex(f->counter, 0, 0, &f->live, 1, &id, 1, NO, &f->out_id)) \
    X(on_out_of_scope, INVALID_ID, REFSCOPE_REFUSED, refscope_object_on_out_of_scope(f->counter, id, ignore, f)) \
    X(on_deleted, INVALID_ID, REFSCOPE_REFUSED, refscope_object_on_deleted(f->counter, id, ignore, f))     \
    X(off_native, INVALID_ID, REFSCOPE_NOT_REMOVED, refscope_object_off_native(f->counter, id, OOS, ignore, f)) \
    X(on_sink, INVALID_ID, REFSCOPE_REFUSED, refscope_object_on_sink(f->counter, id, f->a, OOS, 3))        \
    X(off_sink, INVALID_ID, REFSCOPE_NOT_REMOVED, refscope_object_off_sink(f->counter, id, f->a, OOS, 3))  \
    X(sink_tokens, INVALID_ID, 0, refscope_object_sink_tokens(f->counter, id, f->a, OOS, f->tokens, 4))

#define DEFINE_ID_OPERATION(name, forged, stale, call)   \
    static int32_t id_##name(struct fixture *f, refscope_id id) { \
        return (call);                                              \
    }
ID_OPERATIONS(DEFINE_ID_OPERATION)

#define ID_OPERATION_ENTRY(name, forged, stale, call) {#name, id_##name, forged, stale},
static const struct id_operation id_operations[] = {ID_OPERATIONS(ID_OPERATION_ENTRY)};

/* expect() for an id operation: the id travels in the fixture. */
static const struct id_operation *current_operation;
static refscope_id current_id;
static int32_t call_current(struct fixture *f) { return current_operation->call(f, current_id); }

/* --- Phases --------------------------------------------------------------------------- */

static void setup(struct fixture *f) {
    memset(f, 0, sizeof *f);
    CHECK(refscope_counter_open(&f->counter) == REFSCOPE_OK);
    refscope_counter *c = f->counter;
    CHECK(refscope_counter_key(c, &f->key) == REFSCOPE_OK);
    CHECK(refscope_sink_open(c, NULL, NULL, 0, &f->a) == REFSCOPE_OK);
    CHECK(refscope_sink_generation(c, f->a, &f->generation_a) == REFSCOPE_OK);
    CHECK(refscope_sink_open(c, NULL, NULL, 0, &f->b) == REFSCOPE_OK);
    f->unopened = 40;
    CHECK(f->unopened != f->a && f->unopened != f->b);

    CHECK(refscope_object_create(c, 7, NO, &f->live) == REFSCOPE_OK);
    CHECK(refscope_object_on_out_of_scope(c, f->live, ignore, f) == REFSCOPE_REGISTERED);

    CHECK(refscope_object_create(c, 1, f->a, &f->owned_a) == REFSCOPE_OK);
    CHECK(refscope_object_on_sink(c, f->owned_a, f->a, OOS, 5) == REFSCOPE_REGISTERED);

    CHECK(refscope_object_create(c, 2, NO, &f->borrowed) == REFSCOPE_OK);
    CHECK(refscope_object_retain(c, f->borrowed, NO) == REFSCOPE_OK);
    CHECK(refscope_object_lend(c, f->borrowed, NO) == REFSCOPE_OK);
    CHECK(refscope_object_borrow(c, f->borrowed, NO, 0, f->b) == REFSCOPE_OK);

    CHECK(refscope_object_create(c, 3, NO, &f->freed) == REFSCOPE_OK);
    CHECK(refscope_object_free(c, f->freed, NO) == REFSCOPE_HINT_NONE);
    CHECK(refscope_object_create(c, 3, f->a, &f->freed_a) == REFSCOPE_OK);
    CHECK(refscope_object_on_sink(c, f->freed_a, f->a, OOS, 6) == REFSCOPE_REGISTERED);
    CHECK(refscope_object_free(c, f->freed_a, f->a) == REFSCOPE_HINT_DRAIN);
    CHECK(refscope_sink_drain(c, f->a, f->tokens, 4) == 1 && f->tokens[0] == 6);
    CHECK(refscope_sink_drain(c, f->a, f->tokens, 4) == 0);

    CHECK(refscope_object_create_ex(c, 4, REFSCOPE_CREATE_RECONSTRUCTABLE, NULL, 0, NULL, 0, NO, &f->pinned) == REFSCOPE_OK);
    CHECK(refscope_lineage_add(c, &f->pinned, 1, NO) == REFSCOPE_OK);
    CHECK(refscope_object_release(c, f->pinned, NO) == REFSCOPE_HINT_NONE);
    CHECK(refscope_object_info(c, f->pinned, &f->info) == REFSCOPE_OK);
    CHECK(f->info.flags == (REFSCOPE_OBJECT_OUT_OF_SCOPE | REFSCOPE_OBJECT_RECONSTRUCTABLE) && f->info.refs_lineage == 1);

    /* A double release: the owner's one local reference is released once here, then again
     * by release_local_below_zero. A submitted reference keeps the object in scope. */
    CHECK(refscope_object_create(c, 5, NO, &f->submitted) == REFSCOPE_OK);
    CHECK(refscope_submitted_add(c, &f->submitted, 1, NO) == REFSCOPE_OK);
    CHECK(refscope_object_release(c, f->submitted, NO) == REFSCOPE_HINT_NONE);

    /* A stale id whose slot is reused: same slot, the next generation. */
    CHECK(refscope_object_create(c, 0, NO, &f->stale) == REFSCOPE_OK);
    CHECK(refscope_object_release(c, f->stale, NO) == REFSCOPE_HINT_NONE);
    CHECK(refscope_object_create(c, 6, NO, &f->reused) == REFSCOPE_OK);
    CHECK(slot_of(f->reused) == slot_of(f->stale));
    CHECK(generation_of(f->reused) == generation_of(f->stale) + 1);

    f->future = id_from(slot_of(f->live), generation_of(f->live) + 1000);
    f->unused_slot = id_from(0xffffffu, 1);
    CHECK(refscope_object_info(c, f->future, &f->info) == INVALID_ID);
}

/* The byte total, the nesting depth and the number of sinks, filled to their limits. */
static void limits_phase(void) {
    refscope_counter *c = NULL;
    CHECK(refscope_counter_open(&c) == REFSCOPE_OK);
    refscope_stats stats;

    /* Byte total: each shard's total is a u64, and an object may be 2^53 - 1 bytes: 2048
     * fit in a shard, and a create moves on to the next shard when its own is full. */
    const double size_max = 9007199254740991.0;
    uint32_t created = 0;
    refscope_id id = 0;
    while (created < 100000 && refscope_object_create(c, size_max, NO, &id) == REFSCOPE_OK) created++;
    CHECK(created == 8 * 2048);
    CHECK(refscope_counter_stats(c, &before.stats) == REFSCOPE_OK);
    cases_run++;
    if (refscope_object_create(c, size_max, NO, &id) != LIMIT) {
        failures++;
        fprintf(stderr, "misuse_test: byte_total_overflow: not REFSCOPE_E_LIMIT\n");
    }
    CHECK(refscope_counter_stats(c, &after.stats) == REFSCOPE_OK);
    if (memcmp(&before.stats, &after.stats, sizeof before.stats) != 0) {
        failures++;
        fprintf(stderr, "misuse_test: byte_total_overflow: the table changed\n");
    }
    CHECK(before.stats.objects_live == 8 * 2048 && before.stats.bytes_live == UINT64_MAX); /* saturated */
    refscope_id small = 0;
    CHECK(refscope_object_create(c, 0, NO, &small) == REFSCOPE_OK); /* a size of 0 still fits */
    CHECK(refscope_counter_close(c, NO) == REFSCOPE_HINT_NONE);
    CHECK(refscope_counter_destroy(c) == REFSCOPE_OK);

    /* Nesting depth: a chain of containers is limited to a depth of 1000. */
    CHECK(refscope_counter_open(&c) == REFSCOPE_OK);
    refscope_id deepest = 0;
    CHECK(refscope_object_create(c, 0, NO, &deepest) == REFSCOPE_OK);
    uint32_t depth = 0;
    while (depth < 5000) {
        refscope_id next = 0;
        int32_t status = refscope_object_create_ex(c, 0, 0, &deepest, 1, NULL, 0, NO, &next);
        if (status != REFSCOPE_OK) break;
        CHECK(refscope_object_release(c, deepest, NO) == REFSCOPE_HINT_NONE); /* kept by its container */
        deepest = next;
        depth++;
    }
    CHECK(depth == 1000);
    struct { const char *name; uint32_t contains, lineage; } deep[] = {
        {"nesting_depth_contains", 1, 0},
        {"nesting_depth_lineage", 0, 1},
    };
    for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
        capture(c, &before);
        refscope_id next = 0;
        int32_t status = refscope_object_create_ex(c, 0, 0, deep[i].contains ? &deepest : NULL, deep[i].contains,
                                                   deep[i].lineage ? &deepest : NULL, deep[i].lineage, NO, &next);
        capture(c, &after);
        cases_run++;
        if (status != LIMIT || memcmp(&before, &after, sizeof before) != 0) {
            failures++;
            fprintf(stderr, "misuse_test: %s: returned %d, or the table changed\n", deep[i].name, status);
        }
    }

    /* Sinks: at most 64 per counter, by sink_open or attach. */
    refscope_sink sinks[64];
    for (int i = 0; i < 64; i++) CHECK(refscope_sink_open(c, NULL, NULL, 0, &sinks[i]) == REFSCOPE_OK);
    double key = 0;
    CHECK(refscope_counter_key(c, &key) == REFSCOPE_OK);
    refscope_sink extra = 0;
    refscope_counter *attached = NULL;
    struct { const char *name; int attach; } full[] = {{"sink_open_beyond_64", 0}, {"attach_beyond_64", 1}};
    for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) {
        capture(c, &before);
        int32_t status = full[i].attach ? refscope_counter_attach(key, NULL, NULL, 0, &attached, &extra)
                                        : refscope_sink_open(c, NULL, NULL, 0, &extra);
        capture(c, &after);
        cases_run++;
        if (status != REFSCOPE_E_LIMIT_SINKS || memcmp(&before, &after, sizeof before) != 0) {
            failures++;
            fprintf(stderr, "misuse_test: %s: returned %d, or the table changed\n", full[i].name, status);
        }
    }
    CHECK(attached == NULL);
    for (int i = 0; i < 64; i++) CHECK(refscope_sink_close(c, sinks[i]) == REFSCOPE_OK);
    CHECK(refscope_counter_stats(c, &stats) == REFSCOPE_OK && stats.sinks_open == 0);
    CHECK(refscope_counter_destroy(c) == REFSCOPE_OK);
}

/* refscope_counter_destroy from a callback (the dispatcher thread) would join itself. */
struct destroy_attempt {
    refscope_counter *counter;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int done;
    int32_t status;
};

static void destroy_from_callback(refscope_id id, void *context) {
    (void)id;
    struct destroy_attempt *attempt = context;
    int32_t status = refscope_counter_destroy(attempt->counter);
    pthread_mutex_lock(&attempt->mutex);
    attempt->status = status;
    attempt->done = 1;
    pthread_cond_broadcast(&attempt->cond);
    pthread_mutex_unlock(&attempt->mutex);
}

static void wrong_thread_phase(void) {
    struct destroy_attempt attempt = {NULL, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    CHECK(refscope_counter_open(&attempt.counter) == REFSCOPE_OK);
    refscope_id id = 0;
    CHECK(refscope_object_create(attempt.counter, 0, NO, &id) == REFSCOPE_OK);
    CHECK(refscope_object_on_out_of_scope(attempt.counter, id, destroy_from_callback, &attempt) == REFSCOPE_REGISTERED);
    CHECK(refscope_object_release(attempt.counter, id, NO) == REFSCOPE_HINT_NONE);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&attempt.mutex);
    while (!attempt.done) {
        if (pthread_cond_timedwait(&attempt.cond, &attempt.mutex, &deadline) != 0) break;
    }
    pthread_mutex_unlock(&attempt.mutex);
    cases_run++;
    if (!attempt.done || attempt.status != REFSCOPE_E_WRONG_THREAD) {
        failures++;
        fprintf(stderr, "misuse_test: destroy_from_a_callback: %s %d\n", attempt.done ? "returned" : "never ran",
                attempt.status);
    }
    /* The counter is untouched by the refused destroy: still open, and still usable. */
    CHECK(refscope_counter_state(attempt.counter) == REFSCOPE_STATE_OPEN);
    CHECK(refscope_object_create(attempt.counter, 0, NO, &id) == REFSCOPE_OK);
    CHECK(refscope_counter_destroy(attempt.counter) == REFSCOPE_OK);
}

/* After refscope_counter_close: every call that reads or changes the table is CLOSED;
 * state, stats, key and the sinks' own drain, pending and close still answer. The counter
 * pointer stays valid until refscope_counter_destroy (and the last sink close). */
#define CLOSED_CASES(X)                                                                                   \
    X(close_again, CLOSED, refscope_counter_close(f->counter, NO))                                        \
    X(closed_create, CLOSED, refscope_object_create(f->counter, 0, NO, &f->out_id))                       \
    X(closed_create_ex, CLOSED, refscope_object_create_ex(f->counter, 0, 0, NULL, 0, NULL, 0, f->a, &f->out_id)) \
    X(closed_retain, CLOSED, refscope_object_retain(f->counter, f->live, NO))                             \
    X(closed_release, CLOSED, refscope_object_release(f->counter, f->live, NO))                           \
    X(closed_release_batch, CLOSED, refscope_object_release_batch(f->counter, &f->live, 1, NO))           \
    X(closed_submitted_add, CLOSED, refscope_submitted_add(f->counter, &f->live, 1, NO))                  \
    X(closed_submitted_remove, CLOSED, refscope_submitted_remove(f->counter, &f->submitted, 1, NO))       \
    X(closed_lineage_add, CLOSED, refscope_lineage_add(f->counter, &f->live, 1, NO))                      \
    X(closed_lineage_remove, CLOSED, refscope_lineage_remove(f->counter, &f->pinned, 1, NO))              \
    X(closed_lend, CLOSED, refscope_object_lend(f->counter, f->live, NO))                                 \
    X(closed_borrow, CLOSED, refscope_object_borrow(f->counter, f->borrowed, NO, 0, f->b))                   \
    X(closed_free, CLOSED, refscope_object_free(f->counter, f->live, NO))                                 \
    X(closed_on_out_of_scope, CLOSED, refscope_object_on_out_of_scope(f->counter, f->live, ignore, f))    \
    X(closed_on_deleted, CLOSED, refscope_object_on_deleted(f->counter, f->live, ignore, f))              \
    X(closed_off_native, CLOSED, refscope_object_off_native(f->counter, f->live, OOS, ignore, f))         \
    X(closed_on_sink, CLOSED, refscope_object_on_sink(f->counter, f->owned_a, f->a, OOS, 1))              \
    X(closed_off_sink, CLOSED, refscope_object_off_sink(f->counter, f->owned_a, f->a, OOS, 5))            \
    X(closed_sink_tokens, CLOSED, refscope_object_sink_tokens(f->counter, f->owned_a, f->a, OOS, f->tokens, 4)) \
    X(closed_info, CLOSED, refscope_object_info(f->counter, f->live, &f->info))                           \
    X(closed_holdings, CLOSED, refscope_object_holdings(f->counter, f->borrowed, f->holdings, 4))         \
    X(closed_snapshot, CLOSED, refscope_counter_snapshot(f->counter, 0, f->records, 4, &f->next))         \
    X(closed_sink_open, CLOSED, refscope_sink_open(f->counter, NULL, NULL, 0, &f->out_sink))                 \
    X(closed_attach, CLOSED, refscope_counter_attach(f->key, NULL, NULL, 0, &f->out_counter, &f->out_sink))  \
    X(closed_state_answers, REFSCOPE_STATE_CLOSED, refscope_counter_state(f->counter))                    \
    X(closed_key_answers, REFSCOPE_OK, refscope_counter_key(f->counter, &f->key))                         \
    X(closed_stats_answer, REFSCOPE_OK, refscope_counter_stats(f->counter, &f->stats))                    \
    X(closed_sink_pending_answers, 0, refscope_sink_pending(f->counter, f->b))                            \
    X(closed_sink_drain_answers, 0, refscope_sink_drain(f->counter, f->b, f->tokens, 4))

#define DEFINE_CLOSED_CASE(name, expected, call)  \
    static int32_t closed_##name(struct fixture *f) { \
        return (call);                                  \
    }
CLOSED_CASES(DEFINE_CLOSED_CASE)
#define CLOSED_ENTRY(name, expected, call) {#name, closed_##name, expected},
static const struct misuse_case closed_cases[] = {CLOSED_CASES(CLOSED_ENTRY)};

static void closed_phase(struct fixture *f) {
    CHECK(refscope_counter_close(f->counter, NO) == REFSCOPE_HINT_NONE);
    struct timespec pause = {0, 1000000};
    for (int i = 0; i < 10000 && refscope_counter_state(f->counter) != REFSCOPE_STATE_CLOSED; i++) nanosleep(&pause, NULL);
    CHECK(refscope_counter_state(f->counter) == REFSCOPE_STATE_CLOSED);
    /* Sink a was sent the token of owned_a's callback by the close: drain it. */
    CHECK(refscope_sink_drain(f->counter, f->a, f->tokens, 4) == 1 && f->tokens[0] == 5);
    for (size_t i = 0; i < sizeof closed_cases / sizeof closed_cases[0]; i++) {
        refscope_stats before, after;
        CHECK(refscope_counter_stats(f->counter, &before) == REFSCOPE_OK);
        int32_t status = closed_cases[i].call(f);
        CHECK(refscope_counter_stats(f->counter, &after) == REFSCOPE_OK);
        cases_run++;
        if (status != closed_cases[i].expected) {
            failures++;
            fprintf(stderr, "misuse_test: %s: returned %d (%s), expected %d\n", closed_cases[i].name, status,
                    refscope_status_name(status), closed_cases[i].expected);
        }
        if (memcmp(&before, &after, sizeof before) != 0) {
            failures++;
            fprintf(stderr, "misuse_test: %s: the counter changed\n", closed_cases[i].name);
        }
    }
    /* The documented end: close the sinks, then destroy. The pointer is not used after. */
    CHECK(refscope_sink_close(f->counter, f->a) == REFSCOPE_OK);
    CHECK(refscope_sink_close(f->counter, f->b) == REFSCOPE_OK);
    CHECK(refscope_counter_destroy(f->counter) == REFSCOPE_OK);
    f->counter = NULL;
    /* A destroyed counter's key is plain data: it finds nothing. */
    cases_run++;
    if (refscope_counter_attach(f->key, NULL, NULL, 0, &f->out_counter, &f->out_sink) != CLOSED || f->out_counter != NULL) {
        failures++;
        fprintf(stderr, "misuse_test: attach_destroyed_key: not REFSCOPE_E_CLOSED\n");
    }
}

/* Event-loop wakes: no counter involved. Each refusal sets the out-parameters to NULL. */
static int async_sends = 0;
static void *async_sent_handle = NULL;
static int async_send(void *handle) {
    async_sends++;
    async_sent_handle = handle;
    return 0;
}

static void async_phase(void) {
    struct {
        const char *name;
        refscope_async_send_fn send;
        uint32_t size;
        int null_async, null_handle;
    } refused[] = {
        {"async_open with a NULL send", NULL, 128, 0, 0},
        {"async_open with a zero-byte handle", async_send, 0, 0, 0},
        {"async_open with a handle over 64 KiB", async_send, 65537, 0, 0},
        {"async_open with NULL out_async", async_send, 128, 1, 0},
        {"async_open with NULL out_handle", async_send, 128, 0, 1},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        refscope_async *record = (refscope_async *)&refused[i];
        void *handle = &refused[i];
        int32_t status = refscope_async_open(refused[i].send, refused[i].size, refused[i].null_async ? NULL : &record,
                                             refused[i].null_handle ? NULL : &handle);
        cases_run++;
        int outs_cleared = (refused[i].null_async || record == NULL) && (refused[i].null_handle || handle == NULL);
        if (status != INVALID_ARGUMENT || !outs_cleared) {
            failures++;
            fprintf(stderr, "misuse_test: %s: returned %d (%s), outs %s\n", refused[i].name, status,
                    refscope_status_name(status), outs_cleared ? "cleared" : "NOT cleared");
        }
    }
    refscope_async *record = NULL;
    void *handle = NULL;
    CHECK(refscope_async_open(async_send, 65536, &record, &handle) == REFSCOPE_OK);
    CHECK(record != NULL && handle != NULL && ((uintptr_t)handle % 16) == 0);
    refscope_async_wake(NULL); /* no record: nothing to signal */
    refscope_async_wake(record);
    CHECK(async_sends == 1 && async_sent_handle == handle);
    refscope_async_free(record);
    refscope_async_free(NULL);
    cases_run += 2;
}

int main(void) {
    /* First, while this thread has no sink open: a thread tracks at most 64 open sinks. */
    limits_phase();

    struct fixture fixture;
    struct fixture *f = &fixture;
    setup(f);

    for (size_t i = 0; i < sizeof misuse_cases / sizeof misuse_cases[0]; i++) {
        expect(f->counter, misuse_cases[i].name, misuse_cases[i].call, f, misuse_cases[i].expected);
    }

    const refscope_id forged[] = {
        0, -0.0, -1, 1, 12345, 0.5, NAN, INFINITY, -INFINITY, DBL_MAX, DBL_MIN, -slot_span,
        slot_span - 1,              /* generation 0 */
        9007199254740992.0,         /* 2^53 */
        18446744073709551616.0,     /* 2^64 */
        fixture.live + 0.5,         /* fractional */
        fixture.future,             /* a generation not issued yet */
        fixture.unused_slot,        /* a slot never used */
    };
    const refscope_id stale[] = {fixture.stale};
    for (size_t op = 0; op < sizeof id_operations / sizeof id_operations[0]; op++) {
        current_operation = &id_operations[op];
        char name[96];
        for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
            current_id = forged[i];
            snprintf(name, sizeof name, "%s with forged id #%zu (%g)", current_operation->name, i, forged[i]);
            expect(f->counter, name, call_current, f, current_operation->if_forged);
        }
        for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
            current_id = stale[i];
            snprintf(name, sizeof name, "%s with a stale id whose slot was reused", current_operation->name);
            expect(f->counter, name, call_current, f, current_operation->if_stale);
        }
    }

    wrong_thread_phase();
    closed_phase(f);
    async_phase();

    if (failures > 0) {
        fprintf(stderr, "misuse_test: %d of %d cases failed\n", failures, cases_run);
        return 1;
    }
    printf("misuse_test: ok (%d cases)\n", cases_run);
    return 0;
}
