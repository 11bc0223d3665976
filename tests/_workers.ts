/**
 * Drives a participant Worker (fixtures/participant.ts): remote calls with bounded waits,
 * and the events its handlers report.
 */
import { within } from "./_harness.ts";
import { startWorker, type WebWorker } from "./_thread.ts";

export class RemoteError extends Error {
  readonly code: string | undefined;

  constructor(code: string | undefined, message: string) {
    super(message);
    this.code = code;
  }
}

export class Peer {
  readonly worker: WebWorker;
  readonly events: { event: string; id: number }[] = [];
  /** The Worker's participant number, once attached. */
  sink: number | undefined;
  #seq = 0;
  #pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  #listeners: (() => void)[] = [];

  constructor() {
    this.worker = startWorker(new URL("./fixtures/participant.ts", import.meta.url));
    this.worker.onmessage = (event) => {
      const data = event.data;
      if ("event" in data) {
        this.events.push(data);
        for (const listener of this.#listeners) listener();
        return;
      }
      const pending = this.#pending.get(data.seq)!;
      this.#pending.delete(data.seq);
      if ("error" in data) pending.reject(new RemoteError(data.error.code, data.error.message));
      else pending.resolve(data.result);
    };
  }

  /** Calls `method` in the worker; rejects with a RemoteError, or after 10 s. */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    const seq = this.#seq++;
    const reply = new Promise<T>((resolve, reject) => {
      this.#pending.set(seq, { resolve: resolve as (value: unknown) => void, reject });
    });
    this.worker.postMessage({ seq, method, args });
    return within(reply, 10_000, `the worker's reply to ${method}`);
  }

  /** Waits, at most 10 s, for an event from the worker's handlers. */
  event(event: string, id: number): Promise<void> {
    const seen = () => this.events.some((e) => e.event === event && e.id === id);
    if (seen()) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => {
        const listener = () => {
          if (!seen()) return;
          this.#listeners = this.#listeners.filter((other) => other !== listener);
          resolve();
        };
        this.#listeners.push(listener);
      }),
      10_000,
      `the worker's ${event} event for object ${id}`,
    );
  }

  terminate(): void {
    this.worker.terminate();
  }
}
