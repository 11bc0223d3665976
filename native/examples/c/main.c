/* A native program using librefscope directly: a cache of buffers whose memory is given
 * back, exactly once, when the last reference to a buffer goes.
 *
 * A dataset object contains eight block objects, each backed by a malloc'd buffer. The
 * program drops its own references to the blocks (the dataset keeps them in scope), a
 * worker thread holds a submitted-task reference on one block while it reads it, and then
 * the program drops the dataset: the seven idle blocks go out of scope, then the dataset;
 * the busy block goes only when the worker is done with it. Each out-of-scope callback
 * frees its buffer.
 *
 * The callbacks run on the counter's dispatcher thread, never inside the call that dropped
 * the reference, so the main thread waits for them: they signal a condition variable, and
 * the main thread waits on it with a deadline, so a lost callback fails the program
 * instead of hanging it. Exits non-zero on the first unexpected result. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_condattr_setclock under -std=c11 */

#include "refscope.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    BLOCKS = 8,
    BLOCK_BYTES = 64 * 1024,
    BUSY = 3,             /* the block the worker holds */
    DATASET = BLOCKS,     /* its entry comes after the blocks' */
    WAIT_SECONDS = 10
};

/* One object the program tracks: a block (with its buffer) or the dataset (none). */
struct entry {
    struct cache *cache;
    int index;
    refscope_id id;
    unsigned char *buffer;
    size_t bytes;
    int fired; /* out-of-scope callbacks run for it: must end at exactly 1 */
};

/* What the callbacks change, guarded by `mutex`; `changed` is signalled after each. */
struct cache {
    pthread_mutex_t mutex;
    pthread_cond_t changed;
    struct entry entries[BLOCKS + 1];
    int order[BLOCKS + 1]; /* entry indexes, in the order their callbacks ran */
    int callbacks;
    int wrong_id;        /* callbacks whose id was not their entry's */
    int on_main_thread;  /* callbacks that ran on the main thread: must stay 0 */
    size_t bytes_live;   /* buffer bytes not yet freed */
    int worker_may_finish;
    pthread_t main_thread;
};

/* stdout is flushed first, so that a log of both streams keeps the order of events. */
static void fail(const char *what) {
    fflush(stdout);
    fprintf(stderr, "c example: FAILED: %s\n", what);
    exit(1);
}

#define EXPECT(condition)                      \
    do {                                       \
        if (!(condition)) fail(#condition);    \
    } while (0)

/* A refscope call that must succeed; reports the library's own name for the status. */
static int32_t must(int32_t status, const char *call) {
    if (status < 0) {
        fflush(stdout);
        fprintf(stderr, "c example: FAILED: %s: %s (%s)\n", call, refscope_status_name(status),
                refscope_status_message(status));
        exit(1);
    }
    return status;
}
#define MUST(call) must((call), #call)

/* Runs on the dispatcher thread, with no refscope lock held. Nobody references the object
 * any more, so nobody can use its buffer: free it. It must not block for long (the next
 * callbacks wait for it), so it only takes the cache's mutex for a few stores, and frees
 * outside it. */
static void on_out_of_scope(refscope_id id, void *context) {
    struct entry *entry = context;
    struct cache *cache = entry->cache;
    pthread_mutex_lock(&cache->mutex);
    unsigned char *buffer = entry->buffer;
    entry->buffer = NULL; /* a second call, if there ever were one, frees nothing */
    entry->fired += 1;
    if (entry->fired == 1) cache->bytes_live -= entry->bytes;
    if (id != entry->id) cache->wrong_id += 1;
    if (pthread_equal(pthread_self(), cache->main_thread)) cache->on_main_thread += 1;
    if (cache->callbacks < BLOCKS + 1) cache->order[cache->callbacks] = entry->index;
    cache->callbacks += 1;
    pthread_cond_broadcast(&cache->changed);
    pthread_mutex_unlock(&cache->mutex);
    free(buffer);
}

/* Waits until `target` callbacks have run or WAIT_SECONDS have passed; returns how many
 * ran. The condition variable uses CLOCK_MONOTONIC, so a change of the wall clock cannot
 * stretch or cut the deadline. */
static int wait_for_callbacks(struct cache *cache, int target) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    pthread_mutex_lock(&cache->mutex);
    while (cache->callbacks < target) {
        if (pthread_cond_timedwait(&cache->changed, &cache->mutex, &deadline) == ETIMEDOUT) break;
    }
    int callbacks = cache->callbacks;
    pthread_mutex_unlock(&cache->mutex);
    return callbacks;
}

struct worker {
    refscope_counter *counter;
    struct cache *cache;
    unsigned long checksum;
    int32_t status;
};

/* A task that took the busy block as an argument: the submitted-task reference (taken by
 * the submitter, before the task started) keeps the buffer alive while it reads it. It
 * finishes when the main thread says so, then drops the reference, from this thread. */
static void *worker_main(void *argument) {
    struct worker *worker = argument;
    struct cache *cache = worker->cache;
    struct entry *block = &cache->entries[BUSY];
    for (size_t i = 0; i < block->bytes; i++) worker->checksum += block->buffer[i];
    pthread_mutex_lock(&cache->mutex);
    while (!cache->worker_may_finish) pthread_cond_wait(&cache->changed, &cache->mutex);
    pthread_mutex_unlock(&cache->mutex);
    worker->status = refscope_submitted_remove(worker->counter, &block->id, 1, REFSCOPE_NO_SINK);
    return NULL;
}

static int callbacks_so_far(struct cache *cache) {
    pthread_mutex_lock(&cache->mutex);
    int callbacks = cache->callbacks;
    pthread_mutex_unlock(&cache->mutex);
    return callbacks;
}

int main(void) {
    /* The header this program was compiled with must match the library it loaded. */
    EXPECT(refscope_abi_version() == REFSCOPE_ABI_VERSION);
    printf("librefscope ABI %u\n", refscope_abi_version());

    static struct cache cache; /* zeroed; the callbacks point into it */
    pthread_condattr_t attributes;
    EXPECT(pthread_condattr_init(&attributes) == 0);
    EXPECT(pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC) == 0);
    EXPECT(pthread_cond_init(&cache.changed, &attributes) == 0);
    EXPECT(pthread_condattr_destroy(&attributes) == 0);
    EXPECT(pthread_mutex_init(&cache.mutex, NULL) == 0);
    cache.main_thread = pthread_self();

    refscope_counter *counter = NULL;
    MUST(refscope_counter_open(&counter));

    /* Every call below passes REFSCOPE_NO_SINK: native code acting for the owner. */
    refscope_id block_ids[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        struct entry *block = &cache.entries[i];
        *block = (struct entry){.cache = &cache, .index = i, .bytes = BLOCK_BYTES};
        block->buffer = malloc(block->bytes);
        EXPECT(block->buffer != NULL);
        memset(block->buffer, i + 1, block->bytes);
        cache.bytes_live += block->bytes;
        MUST(refscope_object_create(counter, (double)block->bytes, REFSCOPE_NO_SINK, &block->id));
        EXPECT(MUST(refscope_object_on_out_of_scope(counter, block->id, on_out_of_scope, block)) ==
               REFSCOPE_REGISTERED);
        block_ids[i] = block->id;
    }
    struct entry *dataset = &cache.entries[DATASET];
    *dataset = (struct entry){.cache = &cache, .index = DATASET};
    MUST(refscope_object_create_ex(counter, 0, 0, block_ids, BLOCKS, NULL, 0, REFSCOPE_NO_SINK,
                                   &dataset->id));
    EXPECT(MUST(refscope_object_on_out_of_scope(counter, dataset->id, on_out_of_scope, dataset)) ==
           REFSCOPE_REGISTERED);
    printf("created a dataset of %d blocks of %d KiB (%zu KiB live)\n", BLOCKS, BLOCK_BYTES / 1024,
           cache.bytes_live / 1024);

    /* The blocks' own references go; the dataset contains them, so they stay in scope and
     * no callback can have been queued: this check is deterministic. */
    MUST(refscope_object_release_batch(counter, block_ids, BLOCKS, REFSCOPE_NO_SINK));
    refscope_info info;
    MUST(refscope_object_info(counter, block_ids[0], &info));
    EXPECT(info.refs_local == 0 && info.contained_in_owned == 1 && info.callbacks_pending == 1);
    EXPECT(callbacks_so_far(&cache) == 0);
    printf("released the blocks' own references: no callback (the dataset keeps them in scope)\n");

    /* Submitting a task takes its references before the task starts, so it cannot lose a
     * race with the release below. */
    struct worker worker = {.counter = counter, .cache = &cache, .status = 1};
    MUST(refscope_submitted_add(counter, &block_ids[BUSY], 1, REFSCOPE_NO_SINK));
    pthread_t worker_thread;
    EXPECT(pthread_create(&worker_thread, NULL, worker_main, &worker) == 0);

    /* The last reference to the dataset: the idle blocks go out of scope first, then the
     * dataset. The calls return before any callback runs; the main thread waits. */
    MUST(refscope_object_release(counter, dataset->id, REFSCOPE_NO_SINK));
    EXPECT(wait_for_callbacks(&cache, BLOCKS) == BLOCKS);
    pthread_mutex_lock(&cache.mutex);
    EXPECT(cache.entries[BUSY].fired == 0 && cache.entries[BUSY].buffer != NULL);
    EXPECT(cache.order[BLOCKS - 1] == DATASET); /* contained objects go before their container */
    EXPECT(cache.bytes_live == BLOCK_BYTES);
    cache.worker_may_finish = 1;
    pthread_cond_broadcast(&cache.changed);
    pthread_mutex_unlock(&cache.mutex);
    printf("released the dataset: %d idle blocks, then the dataset, went out of scope; block %d is busy\n",
           BLOCKS - 1, BUSY);

    EXPECT(pthread_join(worker_thread, NULL) == 0);
    MUST(worker.status);
    EXPECT(worker.checksum == (unsigned long)(BUSY + 1) * BLOCK_BYTES);
    EXPECT(wait_for_callbacks(&cache, BLOCKS + 1) == BLOCKS + 1);
    printf("the worker finished with block %d: it went out of scope too\n", BUSY);

    /* Deleted objects refuse new callbacks and references, with a status, not a crash. */
    EXPECT(refscope_object_on_out_of_scope(counter, dataset->id, on_out_of_scope, dataset) ==
           REFSCOPE_REFUSED);
    EXPECT(refscope_object_release(counter, dataset->id, REFSCOPE_NO_SINK) == REFSCOPE_E_STALE_ID);
    refscope_stats stats;
    MUST(refscope_counter_stats(counter, &stats));
    EXPECT(stats.objects_live == 0 && stats.bytes_live == 0);
    EXPECT(stats.objects_created == BLOCKS + 1 && stats.callbacks_registered == BLOCKS + 1);

    /* Close, then destroy: destroy waits until the dispatcher has run everything queued and
     * exited, so after it no callback can run any more and the counts below are final. */
    MUST(refscope_counter_close(counter, REFSCOPE_NO_SINK));
    MUST(refscope_counter_destroy(counter));
    counter = NULL;

    for (int i = 0; i <= BLOCKS; i++) {
        EXPECT(cache.entries[i].fired == 1);
        EXPECT(cache.entries[i].buffer == NULL);
    }
    EXPECT(cache.callbacks == BLOCKS + 1 && cache.wrong_id == 0);
    EXPECT(cache.on_main_thread == 0);
    EXPECT(cache.bytes_live == 0);
    printf("every callback ran exactly once, on the dispatcher thread; %zu bytes live\n",
           cache.bytes_live);

    pthread_cond_destroy(&cache.changed);
    pthread_mutex_destroy(&cache.mutex);
    printf("c example: ok\n");
    return 0;
}
