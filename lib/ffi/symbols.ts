/**
 * The librefscope symbol table, written once for both runtimes (see
 * `native/include/refscope.h` for each function's contract).
 *
 * Types use Deno's names; the Bun backend translates them. Ids and byte sizes are `f64`
 * because a double is on both runtimes' fast FFI path, while a 64-bit integer costs a
 * BigInt (slow on Bun) or a slow number conversion (on Deno).
 *
 * @module
 */

/** A parameter or result type, in Deno's spelling. */
export type NativeType = "u32" | "i32" | "f64" | "pointer" | "buffer" | "void";

/** One foreign function. */
export interface SymbolSpec {
  readonly parameters: readonly NativeType[];
  readonly result: NativeType;
}

/** librefscope's exported functions. */
export const refscopeSymbols = {
  /** uint32_t refscope_abi_version(void) */
  refscope_abi_version: { parameters: [], result: "u32" },
  /** const char *refscope_status_name(int32_t status) */
  refscope_status_name: { parameters: ["i32"], result: "pointer" },
  /** int32_t refscope_counter_open(refscope_counter **out_counter) */
  refscope_counter_open: { parameters: ["buffer"], result: "i32" },
  /** int32_t refscope_counter_key(refscope_counter *, double *out_key) */
  refscope_counter_key: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int32_t refscope_counter_attach(double key, refscope_wake_fn wake, void *wake_context, uint32_t flags, refscope_counter **out_counter, refscope_sink *out_sink) */
  refscope_counter_attach: { parameters: ["f64", "pointer", "pointer", "u32", "buffer", "buffer"], result: "i32" },
  /** int32_t refscope_counter_destroy_on_thread_exit(refscope_counter *) */
  refscope_counter_destroy_on_thread_exit: { parameters: ["pointer"], result: "i32" },
  /** int32_t refscope_counter_close(refscope_counter *, refscope_sink caller) */
  refscope_counter_close: { parameters: ["pointer", "u32"], result: "i32" },
  /** int32_t refscope_counter_state(refscope_counter *) */
  refscope_counter_state: { parameters: ["pointer"], result: "i32" },
  /** int32_t refscope_counter_destroy(refscope_counter *) */
  refscope_counter_destroy: { parameters: ["pointer"], result: "i32" },
  /** int32_t refscope_counter_stats(refscope_counter *, refscope_stats *out_stats) */
  refscope_counter_stats: { parameters: ["pointer", "buffer"], result: "i32" },
  /** int32_t refscope_counter_snapshot(refscope_counter *, uint32_t start_slot, refscope_info *records, uint32_t capacity, uint32_t *out_next_slot) */
  refscope_counter_snapshot: { parameters: ["pointer", "u32", "buffer", "u32", "buffer"], result: "i32" },
  /** int32_t refscope_sink_open(refscope_counter *, refscope_wake_fn wake, void *wake_context, uint32_t flags, refscope_sink *out_sink) */
  refscope_sink_open: { parameters: ["pointer", "pointer", "pointer", "u32", "buffer"], result: "i32" },
  /** int32_t refscope_sink_generation(refscope_counter *, refscope_sink sink, uint32_t *out_generation) */
  refscope_sink_generation: { parameters: ["pointer", "u32", "buffer"], result: "i32" },
  /** int32_t refscope_relay_take(refscope_counter *, refscope_sink *out_sinks, uint32_t capacity) */
  refscope_relay_take: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  /** int32_t refscope_sink_release(refscope_counter *, refscope_sink sink) */
  refscope_sink_release: { parameters: ["pointer", "u32"], result: "i32" },
  /** int32_t refscope_sink_close(refscope_counter *, refscope_sink sink) */
  refscope_sink_close: { parameters: ["pointer", "u32"], result: "i32" },
  /** int32_t refscope_sink_drain(refscope_counter *, refscope_sink sink, uint32_t *tokens, uint32_t capacity) */
  refscope_sink_drain: { parameters: ["pointer", "u32", "buffer", "u32"], result: "i32" },
  /** int32_t refscope_sink_pending(refscope_counter *, refscope_sink sink) */
  refscope_sink_pending: { parameters: ["pointer", "u32"], result: "i32" },
  /** int32_t refscope_object_create(refscope_counter *, double size_bytes, refscope_sink caller, refscope_id *out_id) */
  refscope_object_create: { parameters: ["pointer", "f64", "u32", "buffer"], result: "i32" },
  /**
   * int32_t refscope_object_create_ex(refscope_counter *, double size_bytes, uint32_t flags,
   *   const refscope_id *contains, uint32_t contains_count, const refscope_id *lineage,
   *   uint32_t lineage_count, refscope_sink caller, refscope_id *out_id)
   */
  refscope_object_create_ex: {
    parameters: ["pointer", "f64", "u32", "buffer", "u32", "buffer", "u32", "u32", "buffer"],
    result: "i32",
  },
  /** int32_t refscope_object_retain(refscope_counter *, refscope_id id, refscope_sink caller) */
  refscope_object_retain: { parameters: ["pointer", "f64", "u32"], result: "i32" },
  /** int32_t refscope_object_release(refscope_counter *, refscope_id id, refscope_sink caller) */
  refscope_object_release: { parameters: ["pointer", "f64", "u32"], result: "i32" },
  /** int32_t refscope_object_release_batch(refscope_counter *, const refscope_id *ids, uint32_t count, refscope_sink caller) */
  refscope_object_release_batch: { parameters: ["pointer", "buffer", "u32", "u32"], result: "i32" },
  /** int32_t refscope_submitted_add(refscope_counter *, const refscope_id *ids, uint32_t count, refscope_sink caller) */
  refscope_submitted_add: { parameters: ["pointer", "buffer", "u32", "u32"], result: "i32" },
  /** int32_t refscope_submitted_remove(refscope_counter *, const refscope_id *ids, uint32_t count, refscope_sink caller) */
  refscope_submitted_remove: { parameters: ["pointer", "buffer", "u32", "u32"], result: "i32" },
  /** int32_t refscope_lineage_add(refscope_counter *, const refscope_id *ids, uint32_t count, refscope_sink caller) */
  refscope_lineage_add: { parameters: ["pointer", "buffer", "u32", "u32"], result: "i32" },
  /** int32_t refscope_lineage_remove(refscope_counter *, const refscope_id *ids, uint32_t count, refscope_sink caller) */
  refscope_lineage_remove: { parameters: ["pointer", "buffer", "u32", "u32"], result: "i32" },
  /** int32_t refscope_object_lend(refscope_counter *, refscope_id id, refscope_sink caller) */
  refscope_object_lend: { parameters: ["pointer", "f64", "u32"], result: "i32" },
  /** int32_t refscope_object_borrow(refscope_counter *, refscope_id id, refscope_sink lender, uint32_t lender_generation, refscope_sink caller) */
  refscope_object_borrow: { parameters: ["pointer", "f64", "u32", "u32", "u32"], result: "i32" },
  /** int32_t refscope_object_free(refscope_counter *, refscope_id id, refscope_sink caller) */
  refscope_object_free: { parameters: ["pointer", "f64", "u32"], result: "i32" },
  /** int32_t refscope_object_on_sink(refscope_counter *, refscope_id id, refscope_sink sink, uint32_t kind, uint32_t token) */
  refscope_object_on_sink: { parameters: ["pointer", "f64", "u32", "u32", "u32"], result: "i32" },
  /** int32_t refscope_object_off_sink(refscope_counter *, refscope_id id, refscope_sink sink, uint32_t kind, uint32_t token) */
  refscope_object_off_sink: { parameters: ["pointer", "f64", "u32", "u32", "u32"], result: "i32" },
  /** int32_t refscope_object_sink_tokens(refscope_counter *, refscope_id id, refscope_sink sink, uint32_t kind, uint32_t *tokens, uint32_t capacity) */
  refscope_object_sink_tokens: { parameters: ["pointer", "f64", "u32", "u32", "buffer", "u32"], result: "i32" },
  /** int32_t refscope_object_info(refscope_counter *, refscope_id id, refscope_info *out_info) */
  refscope_object_info: { parameters: ["pointer", "f64", "buffer"], result: "i32" },
  /** int32_t refscope_object_holdings(refscope_counter *, refscope_id id, refscope_holding *out_holdings, uint32_t capacity) */
  refscope_object_holdings: { parameters: ["pointer", "f64", "buffer", "u32"], result: "i32" },
} as const satisfies Record<string, SymbolSpec>;

/** librefscope_testkit's exported functions (tests and benchmarks only). */
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
  /** int32_t refscope_testkit_stall_dispatcher(refscope_counter *, uint32_t ms) */
  refscope_testkit_stall_dispatcher: { parameters: ["pointer", "u32"], result: "i32" },
} as const satisfies Record<string, SymbolSpec>;

declare const pointerBrand: unique symbol;
/** A native pointer, opaque to everything outside the backends. */
export type Pointer = { readonly [pointerBrand]: true };

type JsParameter<T extends NativeType> = T extends "pointer" ? Pointer | null
  : T extends "buffer" ? ArrayBufferView
  : number;
type JsResult<T extends NativeType> = T extends "void" ? void
  : T extends "pointer" ? Pointer | null
  : number;
type JsParameters<P extends readonly NativeType[]> = { -readonly [K in keyof P]: JsParameter<P[K]> };

/** The callable functions a backend produces for a symbol table. */
export type Bound<S extends Record<string, SymbolSpec>> = {
  readonly [K in keyof S]: (...args: JsParameters<S[K]["parameters"]>) => JsResult<S[K]["result"]>;
};

/** A wake callback that native code may call from any thread. */
export interface Wake {
  /** The C function pointer to hand to `refscope_sink_open`. */
  readonly pointer: Pointer;
  /** Frees the callback; only once no native thread can call it any more. */
  close(): void;
}

/** What a runtime backend provides: everything in `lib/` that differs between runtimes. */
export interface Backend {
  readonly runtime: "deno" | "bun";
  /**
   * The operating system in Node's vocabulary (`process.platform`: "linux", "darwin",
   * "win32", ...), which decides library file names and the platform package.
   */
  readonly platform: string;
  /** The CPU architecture in Node's vocabulary (`process.arch`: "x64", "arm64", ...). */
  readonly arch: string;
  /** Whether `path` may be read without asking anyone (Deno prompts on a terminal). */
  mayRead(path: string): boolean;
  /** Whether environment variable `name` may be read without asking anyone (Deno prompts). */
  mayReadEnv(name: string): boolean;
  /** Reads an environment variable, or undefined when unset or not permitted. */
  env(name: string): string | undefined;
  /** Opens a shared library; throws the runtime's error when it cannot. */
  open<S extends Record<string, SymbolSpec>>(path: string, symbols: S): Bound<S>;
  /** Reads the pointer a native call wrote into an out-parameter cell. */
  pointerFromCell(cell: BigUint64Array): Pointer;
  /** Reads a NUL-terminated string. */
  cString(pointer: Pointer): string;
  /**
   * Makes a `void (*)(void *)` callable from any native thread. The callback must not
   * keep the process alive by itself: liveness is the caller's decision. Only for a
   * thread whose end is the process's end (see `isMainThread`): a runtime frees a
   * Worker's callbacks when the Worker ends, with no event that native code could see.
   */
  wake(callback: () => void): Wake;
  /**
   * Whether this is the runtime's main thread, whose end is the process's end, rather
   * than a Worker.
   */
  isMainThread(): boolean;
  /**
   * A `BroadcastChannel` that does not keep the event loop alive (an idle counter never
   * does), optionally listening.
   */
  channel(name: string, onMessage?: (data: unknown) => void): Channel;
}

/** A `BroadcastChannel` between the JS threads of this process, unreferenced. */
export interface Channel {
  post(data: unknown): void;
  close(): void;
}
