/* Checks native/include/refscope.h against the built library from C: the declarations
 * compile with -Wall -Werror, the status values and struct layouts agree, and a native
 * consumer can use the whole lifecycle. Exits non-zero on the first failed check. */
#include "refscope.h"
#include "check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


struct fired {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int count;
    refscope_id last_id;
};

static void on_out_of_scope(refscope_id id, void *context) {
    struct fired *fired = context;
    pthread_mutex_lock(&fired->mutex);
    fired->count += 1;
    fired->last_id = id;
    pthread_cond_broadcast(&fired->cond);
    pthread_mutex_unlock(&fired->mutex);
}

/* Waits, at most ten seconds, until count reaches target. */
static int wait_for(struct fired *fired, int target) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&fired->mutex);
    while (fired->count < target) {
        if (pthread_cond_timedwait(&fired->cond, &fired->mutex, &deadline) != 0) break;
    }
    int count = fired->count;
    pthread_mutex_unlock(&fired->mutex);
    return count;
}

struct release_args {
    refscope_counter *counter;
    refscope_id id;
    int32_t status;
};

static void *release_on_thread(void *argument) {
    struct release_args *args = argument;
    args->status = refscope_object_release(args->counter, args->id, REFSCOPE_NO_SINK);
    return NULL;
}

int main(void) {
    CHECK(refscope_abi_version() == REFSCOPE_ABI_VERSION);
    CHECK(strcmp(refscope_status_name(REFSCOPE_E_STALE_ID), "REFSCOPE_E_STALE_ID") == 0);
    CHECK(strcmp(refscope_status_name(12345), "REFSCOPE_E_UNKNOWN") == 0);
    /* Each result family has its own values: none of them is another family's. */
    CHECK(strcmp(refscope_status_name(REFSCOPE_REGISTERED), "REFSCOPE_REGISTERED") == 0);
    CHECK(strcmp(refscope_status_name(REFSCOPE_HINT_DRAIN), "REFSCOPE_HINT_DRAIN") == 0);
    CHECK(strcmp(refscope_status_name(REFSCOPE_STATE_CLOSED), "REFSCOPE_STATE_CLOSED") == 0);
    CHECK(REFSCOPE_OK != REFSCOPE_REFUSED && REFSCOPE_HINT_DRAIN != REFSCOPE_REGISTERED);
    CHECK((REFSCOPE_HINT_DRAIN_RELAY & REFSCOPE_HINT_DRAIN_BIT) && (REFSCOPE_HINT_DRAIN_RELAY & REFSCOPE_HINT_RELAY_BIT));
    CHECK(sizeof(refscope_stats) == 16 * sizeof(uint64_t));
    CHECK(strlen(refscope_status_message(REFSCOPE_E_CLOSED)) > 0);
    CHECK(refscope_counter_open(NULL) == REFSCOPE_E_INVALID_ARGUMENT);
    CHECK(refscope_counter_destroy(NULL) == REFSCOPE_OK);

    refscope_counter *counter = NULL;
    CHECK(refscope_counter_open(&counter) == REFSCOPE_OK && counter != NULL);
    CHECK(refscope_counter_state(counter) == REFSCOPE_STATE_OPEN);

    struct fired fired = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    refscope_id id = 0;
    CHECK(refscope_object_create(counter, 4096, REFSCOPE_NO_SINK, &id) == REFSCOPE_OK);
    CHECK(refscope_object_create(counter, -1, REFSCOPE_NO_SINK, &id) == REFSCOPE_E_INVALID_ARGUMENT);
    CHECK(refscope_object_create(counter, 0.5, REFSCOPE_NO_SINK, &id) == REFSCOPE_E_INVALID_ARGUMENT);
    CHECK(refscope_object_on_out_of_scope(counter, id, NULL, NULL) == REFSCOPE_E_INVALID_ARGUMENT);
    CHECK(refscope_object_on_out_of_scope(counter, id, on_out_of_scope, &fired) == REFSCOPE_REGISTERED);
    CHECK(refscope_object_retain(counter, id, REFSCOPE_NO_SINK) == REFSCOPE_OK);
    CHECK(refscope_submitted_add(counter, &id, 1, REFSCOPE_NO_SINK) == REFSCOPE_OK);
    CHECK(refscope_submitted_add(counter, NULL, 1, REFSCOPE_NO_SINK) == REFSCOPE_E_INVALID_ARGUMENT);

    refscope_info info;
    memset(&info, 0xff, sizeof info);
    CHECK(refscope_object_info(counter, id, &info) == REFSCOPE_OK);
    CHECK(info.id == id && info.refs_local == 2 && info.refs_submitted == 1 && info.callbacks_pending == 1);
    CHECK(info.owner == REFSCOPE_NO_SINK && info.flags == 0 && info.size_bytes == 4096);
    CHECK(refscope_object_info(counter, 12345, &info) == REFSCOPE_E_INVALID_ID);

    CHECK(refscope_object_release(counter, id, REFSCOPE_NO_SINK) == REFSCOPE_HINT_NONE);
    CHECK(refscope_submitted_remove(counter, &id, 1, REFSCOPE_NO_SINK) == REFSCOPE_HINT_NONE);

    /* The same calls with every argument a double (what Node's node:ffi passes fast). */
    const double address = (double)(uintptr_t)counter;
    const double sink_none = REFSCOPE_NO_SINK;
    const refscope_id other = refscope_object_create_n(address, 16, sink_none);
    CHECK(other > 0 && refscope_object_info(counter, other, &info) == REFSCOPE_OK && info.size_bytes == 16);
    CHECK(refscope_object_retain_n(address, other, sink_none) == REFSCOPE_OK);
    CHECK(refscope_object_info(counter, other, &info) == REFSCOPE_OK && info.refs_local == 2);
    CHECK(refscope_object_release_n(address, other, sink_none) == REFSCOPE_HINT_NONE);
    CHECK(refscope_object_release_n(address, other, sink_none) == REFSCOPE_HINT_NONE);
    CHECK(refscope_object_info(counter, other, &info) == REFSCOPE_E_STALE_ID);
    CHECK(refscope_object_release_n(address, other, sink_none) == REFSCOPE_E_STALE_ID);
    CHECK(refscope_object_create_n(address, -1, sink_none) == REFSCOPE_E_INVALID_ARGUMENT);
    CHECK(refscope_submitted_remove(counter, &id, 1, REFSCOPE_NO_SINK) == REFSCOPE_E_NO_REFERENCE);

    /* The last reference drops on another thread; the callback runs on the dispatcher. */
    struct release_args args = {counter, id, 99};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, release_on_thread, &args) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(args.status == REFSCOPE_HINT_NONE);
    CHECK(wait_for(&fired, 1) == 1);
    CHECK(fired.last_id == id);
    CHECK(refscope_object_release(counter, id, REFSCOPE_NO_SINK) == REFSCOPE_E_STALE_ID);
    CHECK(refscope_object_on_out_of_scope(counter, id, on_out_of_scope, &fired) == REFSCOPE_REFUSED);

    /* Free hands the callback over at once; the entry stays until its reference drops. */
    refscope_id freed = 0;
    CHECK(refscope_object_create(counter, 1, REFSCOPE_NO_SINK, &freed) == REFSCOPE_OK);
    CHECK(refscope_object_on_out_of_scope(counter, freed, on_out_of_scope, &fired) == REFSCOPE_REGISTERED);
    CHECK(refscope_object_free(counter, freed, REFSCOPE_NO_SINK) == REFSCOPE_HINT_NONE);
    CHECK(wait_for(&fired, 2) == 2);
    CHECK(refscope_object_on_out_of_scope(counter, freed, on_out_of_scope, &fired) == REFSCOPE_REFUSED);
    CHECK(refscope_object_info(counter, freed, &info) == REFSCOPE_OK);
    CHECK(info.flags == REFSCOPE_OBJECT_FREED && info.callbacks_pending == 0);
    CHECK(refscope_object_release(counter, freed, REFSCOPE_NO_SINK) == REFSCOPE_HINT_NONE);

    /* A sink borrows a lent reference; the object stays in scope until the borrower lets
     * go, and its reference-deleted callback runs once the entry is erased. */
    refscope_sink sink = 0;
    CHECK(refscope_sink_open(counter, NULL, NULL, 0, &sink) == REFSCOPE_OK);
    refscope_id lent = 0;
    CHECK(refscope_object_create(counter, 8, REFSCOPE_NO_SINK, &lent) == REFSCOPE_OK);
    CHECK(refscope_object_on_deleted(counter, lent, on_out_of_scope, &fired) == REFSCOPE_REGISTERED);
    CHECK(refscope_object_lend(counter, lent, REFSCOPE_NO_SINK) == REFSCOPE_OK);
    CHECK(refscope_object_borrow(counter, lent, REFSCOPE_NO_SINK, 0, sink) == REFSCOPE_OK);
    CHECK(refscope_object_borrow(counter, lent, REFSCOPE_NO_SINK, 0, sink) == REFSCOPE_E_NO_REFERENCE);
    CHECK(refscope_object_info(counter, lent, &info) == REFSCOPE_OK);
    CHECK(info.refs_local == 0 && info.refs_borrowed == 1 && info.borrowers == 1);
    refscope_holding holding;
    CHECK(refscope_object_holdings(counter, lent, &holding, 1) == 1);
    CHECK(holding.sink == sink && holding.refs_local == 1);
    CHECK(refscope_object_free(counter, lent, sink) == REFSCOPE_E_NOT_OWNED);
    CHECK(refscope_object_release(counter, lent, sink) == REFSCOPE_HINT_NONE);
    CHECK(wait_for(&fired, 3) == 3);
    CHECK(refscope_sink_close(counter, sink) == REFSCOPE_OK);

    /* More holder records than any internal page: the native owner's own (one reference
     * still lent) and one per sink borrower, all copied out. */
    {
        enum { sinks = 64 };
        refscope_sink borrowers[sinks];
        refscope_id shared = 0;
        CHECK(refscope_object_create(counter, 0, REFSCOPE_NO_SINK, &shared) == REFSCOPE_OK);
        for (int i = 0; i < sinks; i++) {
            CHECK(refscope_sink_open(counter, NULL, NULL, 0, &borrowers[i]) == REFSCOPE_OK);
            CHECK(refscope_object_retain(counter, shared, REFSCOPE_NO_SINK) == REFSCOPE_OK);
            CHECK(refscope_object_lend(counter, shared, REFSCOPE_NO_SINK) == REFSCOPE_OK);
            CHECK(refscope_object_borrow(counter, shared, REFSCOPE_NO_SINK, 0, borrowers[i]) == REFSCOPE_OK);
        }
        CHECK(refscope_object_lend(counter, shared, REFSCOPE_NO_SINK) == REFSCOPE_OK);
        refscope_holding holdings[sinks + 8];
        memset(holdings, 0xaa, sizeof holdings);
        CHECK(refscope_object_holdings(counter, shared, holdings, sinks + 8) == sinks + 1);
        int owner_records = 0;
        for (int i = 0; i < sinks + 1; i++) {
            if (holdings[i].sink == REFSCOPE_NO_SINK) {
                owner_records++;
                CHECK(holdings[i].refs_lent == 1);
            } else {
                CHECK(holdings[i].sink < sinks && holdings[i].refs_local == 1);
            }
        }
        CHECK(owner_records == 1);
        CHECK(holdings[sinks + 1].sink == 0xaaaaaaaau); /* nothing written past the count */
        CHECK(refscope_object_borrow(counter, shared, REFSCOPE_NO_SINK, 0, REFSCOPE_NO_SINK) == REFSCOPE_OK);
        CHECK(refscope_object_release(counter, shared, REFSCOPE_NO_SINK) == REFSCOPE_HINT_NONE);
        for (int i = 0; i < sinks; i++) CHECK(refscope_sink_close(counter, borrowers[i]) == REFSCOPE_OK);
        CHECK(refscope_object_info(counter, shared, &info) == REFSCOPE_E_STALE_ID);
    }

    /* A live object at close is deleted, and its callback still runs exactly once. */
    refscope_id live = 0;
    CHECK(refscope_object_create(counter, 1, REFSCOPE_NO_SINK, &live) == REFSCOPE_OK);
    CHECK(refscope_object_on_out_of_scope(counter, live, on_out_of_scope, &fired) == REFSCOPE_REGISTERED);

    refscope_stats stats;
    CHECK(refscope_counter_stats(counter, &stats) == REFSCOPE_OK);
    CHECK(stats.objects_live == 1 && stats.objects_created == 6 && stats.callbacks_registered == 4);

    CHECK(refscope_counter_close(counter, REFSCOPE_NO_SINK) == REFSCOPE_HINT_NONE);
    CHECK(refscope_object_retain(counter, live, REFSCOPE_NO_SINK) == REFSCOPE_E_CLOSED);
    CHECK(refscope_counter_destroy(counter) == REFSCOPE_OK);
    CHECK(fired.count == 4);

    printf("abi_test: ok\n");
    return 0;
}
