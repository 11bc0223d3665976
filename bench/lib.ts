/**
 * What every benchmark shares: the figures it reports (printed as a table, or as one JSON
 * object with `--json`), native jobs from librefscope_testkit, and the baselines that are
 * measured in the same run: a pure-TS Map counter and one thread-safe callback per event.
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import { run } from "mitata";
import { backend, type Pointer } from "../lib/ffi/mod.ts";
import { nativeCounter, testkit } from "../tests/_testkit.ts";
import type { Counter } from "../mod.ts";

export const runtime: "deno" | "bun" | "node" = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";
export const json = process.argv.includes("--json");
/** `--quick`: fewer objects and samples, for a smoke run (CI type-checks, not times). */
export const quick = process.argv.includes("--quick");

/** One reported figure, with the baseline it is compared with, measured in the same run. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** The target, as text (e.g. "≥ 10000000"), and whether this run met it. */
  target?: { text: string; met: boolean };
}

export const figures: Figure[] = [];

export function record(figure: Figure): void {
  figures.push(figure);
}

/** Runs the mitata benchmarks declared so far (tables unless `--json`), returning avg ns by name. */
export async function measure(): Promise<Map<string, number>> {
  const result = await run({ format: json ? "quiet" : "mitata", colors: !json && process.stdout.isTTY === true });
  const averages = new Map<string, number>();
  for (const trial of result.benchmarks) {
    for (const runResult of trial.runs) {
      if (runResult.stats) averages.set(runResult.name, runResult.stats.avg);
    }
  }
  return averages;
}

export function log(line: string): void {
  if (!json) console.log(line);
}

function version(): string {
  const global = globalThis as { Deno?: { version: { deno: string } }; Bun?: { version: string } };
  return runtime === "deno"
    ? global.Deno!.version.deno
    : runtime === "bun"
    ? global.Bun!.version
    : process.versions.node;
}

function cpu(): string {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8").split("\n").find((l) => l.startsWith("model name"));
    return line?.split(":")[1].trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** Prints every figure: a table, or the one JSON object of `--json`. */
export function report(): void {
  if (json) {
    const cores = readFileSync("/proc/cpuinfo", "utf8").split("\n").filter((l) => l.startsWith("processor")).length;
    console.log(JSON.stringify({
      runtime,
      version: version(),
      date: new Date().toISOString(),
      machine: { cpu: cpu(), cores, os: process.platform, arch: process.arch },
      figures,
    }));
    return;
  }
  console.log(`\nrefscope figures on ${runtime} ${version()}`);
  for (const f of figures) {
    const baseline = f.baseline ? `  (${f.baseline.name}: ${format(f.baseline.value)})` : "";
    const target = f.target ? `  target ${f.target.text}: ${f.target.met ? "met" : "MISSED"}` : "";
    console.log(`  ${f.name}: ${format(f.value)} ${f.unit}${baseline}${target}`);
  }
}

function format(value: number): string {
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

// --- Native jobs --------------------------------------------------------------------------

export const kit = testkit;

/** A native thread from librefscope_testkit: releasing ids, or calling a callback per id. */
export class Job {
  #job: Pointer;

  private constructor(job: Pointer) {
    this.#job = job;
  }

  /** Releases `ids` from a new native thread, `batch` per call (1: one call per id). */
  static release(counter: Counter, ids: Float64Array, batch = 1): Job {
    const cell = new BigUint64Array(1);
    const status = kit.refscope_testkit_release_start(nativeCounter(counter), ids, ids.length, batch, cell);
    if (status !== 0) throw new Error(`testkit: release thread (${status})`);
    return new Job(backend.pointerFromCell(cell));
  }

  /** Creates and releases `count` objects, one after the other, on a new native thread. */
  static lifetimes(counter: Counter, count: number): Job {
    const cell = new BigUint64Array(1);
    const status = kit.refscope_testkit_lifetimes_start(nativeCounter(counter), count, cell);
    if (status !== 0) throw new Error(`testkit: lifetimes thread (${status})`);
    return new Job(backend.pointerFromCell(cell));
  }

  /** Makes `count` trivial library calls from a new native thread: the timing noise floor. */
  static noop(count: number): Job {
    const cell = new BigUint64Array(1);
    const status = kit.refscope_testkit_noop_start(count, cell);
    if (status !== 0) throw new Error(`testkit: noop thread (${status})`);
    return new Job(backend.pointerFromCell(cell));
  }

  /** The call durations, in ns, at percentile `p` (an upper bound: buckets are powers of 2). */
  percentile(p: number): number {
    const buckets = new Float64Array(64);
    if (kit.refscope_testkit_job_histogram(this.#job, buckets) !== 0) throw new Error("testkit: histogram");
    const total = buckets.reduce((sum, count) => sum + count, 0);
    let seen = 0;
    for (let bucket = 0; bucket < 64; bucket++) {
      seen += buckets[bucket];
      if (seen >= p * total) return 2 ** (bucket + 1);
    }
    return Infinity;
  }

  /** Calls `callback` once per id from a new native thread (the per-event baseline). */
  static callEach(callback: Pointer, ids: Float64Array): Job {
    const cell = new BigUint64Array(1);
    const status = kit.refscope_testkit_call_each_start(callback, ids, ids.length, cell);
    if (status !== 0) throw new Error(`testkit: call thread (${status})`);
    return new Job(backend.pointerFromCell(cell));
  }

  get done(): boolean {
    return kit.refscope_testkit_job_done(this.#job) === 1;
  }

  /** Joins (only once done for a callEach job): the longest call and the whole run, in ns. */
  join(): { callNsMax: number; elapsedNs: number } {
    const callNsMax = new Float64Array(1);
    const elapsedNs = new Float64Array(1);
    const status = kit.refscope_testkit_job_join_timed(this.#job, callNsMax, elapsedNs, new Int32Array(1));
    if (status !== 0) throw new Error(`testkit: join (${status})`);
    return { callNsMax: callNsMax[0], elapsedNs: elapsedNs[0] };
  }
}

/**
 * A `void (*)(double)` that native threads may call: the thread-safe callback each runtime
 * offers (Deno `UnsafeCallback.threadSafe`, Bun `JSCallback` with `threadsafe`), one call
 * per event: the alternative refscope's batching replaces. Undefined on Node: `node:ffi`
 * has no callback that another thread may call, so that alternative does not exist there.
 */
export function threadSafeCallback(fn: (id: number) => void): { pointer: Pointer; close(): void } | undefined {
  if (runtime === "node") return undefined;
  if (runtime === "deno") {
    const deno = (globalThis as unknown as {
      Deno: {
        UnsafeCallback: {
          threadSafe(
            definition: { parameters: ["f64"]; result: "void" },
            fn: (id: number) => void,
          ): { pointer: Pointer; unref(): void; close(): void };
        };
      };
    }).Deno;
    const callback = deno.UnsafeCallback.threadSafe({ parameters: ["f64"], result: "void" }, fn);
    return { pointer: callback.pointer, close: () => callback.close() };
  }
  const require = (import.meta as unknown as { require(id: string): Record<string, unknown> }).require;
  const JSCallback = require("bun:ffi").JSCallback as new (
    fn: (id: number) => void,
    definition: { args: ["f64"]; returns: "void"; threadsafe: true },
  ) => { ptr: number; close(): void };
  const callback = new JSCallback(fn, { args: ["f64"], returns: "void", threadsafe: true });
  return { pointer: callback.ptr as unknown as Pointer, close: () => callback.close() };
}

/** Forces a full garbage collection where the runtime allows (Deno needs --expose-gc). */
export function gc(): boolean {
  const global = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  if (global.Bun) {
    global.Bun.gc(true);
    return true;
  }
  if (global.gc) {
    global.gc();
    return true;
  }
  return false;
}

export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * (sorted.length - 1)))];
}

export function residentBytes(): number {
  return process.memoryUsage().rss;
}

// --- The pure-TS baseline -----------------------------------------------------------------

type Handler = (id: number) => void;

/**
 * What a program would write without native code: a Map from id to count and handlers,
 * delivering with `queueMicrotask`. Fast, but no other thread can release, and handlers
 * run in a microtask of the releasing code.
 */
export class MapCounter {
  #next = 1;
  #objects = new Map<number, { refs: number; handlers: Handler[] }>();

  create(): number {
    const id = this.#next++;
    this.#objects.set(id, { refs: 1, handlers: [] });
    return id;
  }

  retain(id: number): void {
    this.#objects.get(id)!.refs++;
  }

  release(id: number): void {
    const object = this.#objects.get(id)!;
    if (--object.refs > 0) return;
    this.#objects.delete(id);
    for (const handler of object.handlers) queueMicrotask(() => handler(id));
  }

  onOutOfScope(id: number, handler: Handler): boolean {
    const object = this.#objects.get(id);
    if (object === undefined) return false;
    object.handlers.push(handler);
    return true;
  }

  get size(): number {
    return this.#objects.size;
  }
}
