/**
 * Web Workers on every runtime under test. Deno and Bun have them; on Node, whose Workers
 * are `worker_threads` ones, the same shape is made from them: a parent's `startWorker`,
 * and a Worker's own `workerScope` (`postMessage`, `onmessage`, `close`).
 */
import process from "node:process";
import * as threads from "node:worker_threads";

/** What the tests use of a Web Worker, seen from its parent. */
export interface WebWorker {
  // Untyped, as the DOM's own `MessageEvent<any>` is: each caller knows its Worker's replies.
  // deno-lint-ignore no-explicit-any
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: { message: string }) => void) | null;
  postMessage(data: unknown): void;
  terminate(): void;
}

/** What the tests use of a Worker's global scope, seen from inside it. */
export interface WorkerScope<T> {
  onmessage: ((event: { data: T }) => void) | null;
  postMessage(data: unknown): void;
  /** Ends this Worker (`self.close()`; on Node, `process.exit()`, which ends only the Worker). */
  close(): void;
}

const onNode = !("Deno" in globalThis) && !("Bun" in globalThis);

/** Starts the module at `url` as a Worker. */
export function startWorker(url: URL): WebWorker {
  if (!onNode) return new Worker(url.href, { type: "module" }) as unknown as WebWorker;
  const worker = new threads.Worker(url);
  const web: WebWorker = {
    onmessage: null,
    onerror: null,
    postMessage: (data) => worker.postMessage(data),
    terminate: () => void worker.terminate(),
  };
  worker.on("message", (data) => web.onmessage?.({ data }));
  // As on Deno: an error no one listens for is this thread's error too.
  worker.on("error", (error: Error) => {
    if (web.onerror === null) throw error;
    web.onerror({ message: error.message });
  });
  return web;
}

/** This Worker's scope. */
export function workerScope<T>(): WorkerScope<T> {
  if (!onNode) return globalThis as unknown as WorkerScope<T>;
  const port = threads.parentPort!;
  const scope: WorkerScope<T> = {
    onmessage: null,
    postMessage: (data) => port.postMessage(data),
    close: () => process.exit(0),
  };
  port.on("message", (data: T) => scope.onmessage?.({ data }));
  return scope;
}
