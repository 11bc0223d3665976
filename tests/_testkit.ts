/**
 * librefscope_testkit, the native helpers that only tests and benchmarks load (threads that
 * release while JS is busy, a stalled dispatcher), and the native counter behind a
 * `Counter`, which they act on. None of this is in `lib/`: the shipped module carries no
 * test-only surface.
 */
import { type Counter, nativeLibrary } from "../mod.ts";
import { backend, libraryFile, native, type Pointer, type SymbolSpec } from "../lib/ffi/mod.ts";

/** librefscope_testkit's exported functions (native/testkit/testkit.zig). */
export const testkitSymbols = {
  /** int32_t refscope_testkit_release_start(refscope_counter *, const double *ids, uint32_t count, uint32_t batch, job **out_job) */
  refscope_testkit_release_start: { parameters: ["pointer", "buffer", "u32", "u32", "buffer"], result: "i32" },
  /** int32_t refscope_testkit_call_each_start(void (*function)(double id), const double *ids, uint32_t count, job **out_job) */
  refscope_testkit_call_each_start: { parameters: ["pointer", "buffer", "u32", "buffer"], result: "i32" },
  /** int32_t refscope_testkit_lifetimes_start(refscope_counter *, uint32_t count, job **out_job) */
  refscope_testkit_lifetimes_start: { parameters: ["pointer", "u32", "buffer"], result: "i32" },
  /** int32_t refscope_testkit_noop_start(uint32_t count, job **out_job) */
  refscope_testkit_noop_start: { parameters: ["u32", "buffer"], result: "i32" },
  /** int32_t refscope_testkit_job_histogram(job *, double (*out_buckets)[64]) */
  refscope_testkit_job_histogram: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int32_t refscope_testkit_job_done(job *) */
  refscope_testkit_job_done: { parameters: ["pointer"], result: "i32" },
  /** int32_t refscope_testkit_job_join(job *, double *out_call_ns_max, int32_t *out_first_error) */
  refscope_testkit_job_join: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  /** int32_t refscope_testkit_job_join_timed(job *, double *out_call_ns_max, double *out_elapsed_ns, int32_t *out_first_error) */
  refscope_testkit_job_join_timed: { parameters: ["pointer", "buffer", "buffer", "buffer"], result: "i32" },
  /** int32_t refscope_testkit_locked_counts(uint32_t on): sets or removes REFSCOPE_LOCKED_COUNTS */
  refscope_testkit_locked_counts: { parameters: ["u32"], result: "i32" },
  /** int32_t refscope_testkit_stall_dispatcher(refscope_counter *, uint32_t ms) */
  refscope_testkit_stall_dispatcher: { parameters: ["pointer", "u32"], result: "i32" },
} as const satisfies Record<string, SymbolSpec>;

/** librefscope_testkit, loaded from beside the librefscope this process uses. */
export const testkit = backend.open(
  nativeLibrary().path.replace(/[^/\\]*$/, "") + libraryFile("refscope_testkit").file,
  testkitSymbols,
);

const pointers = new WeakMap<Counter, Pointer>();

/**
 * The native counter behind `counter`, found as a C caller would find it: by attaching to
 * its key (`refscope_counter_attach`), then closing the sink that opened at once. The
 * pointer stays valid while the counter is open: the opener's hold keeps it.
 */
export function nativeCounter(counter: Counter): Pointer {
  const known = pointers.get(counter);
  if (known !== undefined) return known;
  const symbols = native().symbols;
  const counterCell = new BigUint64Array(1);
  const sinkCell = new Uint32Array(1);
  const status = symbols.refscope_counter_attach(counter.key, null, null, 0, counterCell, sinkCell);
  if (status !== 0) throw new Error(`testkit: attaching to counter ${counter.key} failed (${status})`);
  const pointer = backend.pointerFromCell(counterCell);
  const closed = symbols.refscope_sink_close(pointer, sinkCell[0]);
  if (closed !== 0) throw new Error(`testkit: closing the attached sink failed (${closed})`);
  pointers.set(counter, pointer);
  return pointer;
}
