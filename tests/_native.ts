/**
 * Test helpers for native threads (librefscope_testkit) and process figures: a native
 * thread releasing ids, the number of this process's threads, and its resident memory.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Counter, ObjectId } from "../mod.ts";
import { backend, type Pointer } from "../lib/ffi/mod.ts";
import { nativeCounter, testkit } from "./_testkit.ts";

const kit = testkit;

/** A native thread releasing `ids` (references the test hands it), `batch` ids per call. */
export class ReleaseJob {
  #job: Pointer | undefined;

  constructor(counter: Counter, ids: readonly ObjectId[] | Float64Array, batch = 1) {
    const cell = new BigUint64Array(1);
    const list = ids instanceof Float64Array ? ids : new Float64Array(ids);
    const status = kit.refscope_testkit_release_start(nativeCounter(counter), list, list.length, batch, cell);
    if (status !== 0) throw new Error(`testkit: starting a release thread failed (${status})`);
    this.#job = backend.pointerFromCell(cell);
  }

  /** True once the thread has made every call. */
  get done(): boolean {
    if (this.#job === undefined) return true;
    return kit.refscope_testkit_job_done(this.#job) === 1;
  }

  /**
   * Joins the thread (it never calls into JS, so this cannot deadlock): the first error
   * status of its calls (0 if none) and its longest call. Must happen before the counter is
   * destroyed.
   */
  join(): { firstError: number; callNsMax: number } {
    if (this.#job === undefined) throw new Error("testkit: job joined twice");
    const callNsMax = new Float64Array(1);
    const firstError = new Int32Array(1);
    kit.refscope_testkit_job_join(this.#job, callNsMax, firstError);
    this.#job = undefined;
    return { firstError: firstError[0], callNsMax: callNsMax[0] };
  }
}

/** The number of threads of this process (entries of /proc/self/task). */
export function threadCount(): number {
  return readdirSync("/proc/self/task").length;
}

/** This process's resident set size in bytes (VmRSS in /proc/self/status). */
export function residentBytes(): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
  if (match === null) throw new Error("no VmRSS line in /proc/self/status");
  return Number(match[1]) * 1024;
}

/** Forces a full garbage collection where the runtime allows it (Bun; Deno and Node only with --expose-gc). */
export function collectGarbage(): void {
  const global = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  if (global.Bun) global.Bun.gc(true);
  else global.gc?.();
}

export const MiB = 2 ** 20;
