/**
 * The misuse catalogue's one runner.
 *
 * A misuse is a call that must throw a RefscopeError with its documented code, the native
 * status of that code and a message naming what was attempted, and must leave the table
 * exactly as it was. A refusal is a call that returns a value instead of throwing, and
 * changes nothing either. errors.test.ts, ray.test.ts and misuse.test.ts state
 * their cases as `Misuse`s and `Refusal`s and run them here, so each case is checked the
 * same way wherever it lives.
 *
 * ```ts
 * await catalogue(t, [
 *   { what: "free of a forged id", call: () => counter.free(12345), code: "INVALID_ID", message: "free object 12345" },
 * ], observer([counter], [ref]));
 * ```
 */
import { type Counter, type ErrorCode, RefscopeError, Status } from "../mod.ts";
import type { IAssert } from "./_harness.ts";

/** What a case passes where the API forbids it: the point of most cases. */
// deno-lint-ignore no-explicit-any
export type Loose = any;

/** A call that must throw `code`, with a message containing `message`. */
export interface Misuse {
  what: string;
  call: () => unknown;
  code: ErrorCode;
  message: string;
}

/** A call that is refused without an error: it returns `result` and changes nothing. */
export interface Refusal {
  what: string;
  call: () => unknown;
  result: unknown;
}

/** Anything whose own state a misuse must not change: a Ref or a lease. */
export type Handle = { readonly released: boolean };

export const noop = () => {};

/**
 * Runs each case: a RefscopeError with its code, that code's native status and a message
 * containing `message`, and `observe()` the same after the call as before it.
 */
export async function catalogue(t: IAssert, cases: Misuse[], observe: () => string): Promise<void> {
  for (const { what, call, code, message } of cases) {
    const before = observe();
    let caught: unknown;
    try {
      // Awaited, so that a call returning a rejected promise is caught like one that throws.
      await call();
    } catch (error) {
      caught = error;
    }
    const ok = caught instanceof RefscopeError && caught.code === code;
    t.ok(ok, `${what}: RefscopeError ${code}${ok ? "" : `, got ${String(caught)}`}`);
    if (caught instanceof RefscopeError) {
      t.eq(caught.status, Status[code as keyof typeof Status], `${what}: status ${caught.status}`);
      t.ok(caught.message.includes(message), `${what}: the message names it ("${caught.message}")`);
    }
    t.eq(observe(), before, `${what}: the table is unchanged`);
  }
}

/** Runs each case: it returns `result` (not an error), and `observe()` is unchanged. */
export async function refusals(t: IAssert, cases: Refusal[], observe: () => string): Promise<void> {
  for (const { what, call, result } of cases) {
    const before = observe();
    let returned: unknown;
    try {
      returned = await call();
    } catch (error) {
      returned = error;
    }
    const shown = Array.isArray(result)
      ? JSON.stringify(result)
      : typeof result === "object"
      ? "as expected"
      : String(result);
    t.eq(returned, result, `${what}: returns ${shown}, not an error`);
    t.eq(observe(), before, `${what}: the table is unchanged`);
  }
}

/** One case per value: `call` with it must throw `code`, the message naming the operation. */
export function each<T>(
  values: T[],
  name: (value: T) => string,
  call: (value: T) => unknown,
  code: ErrorCode,
  message: string | ((value: T) => string),
): Misuse[] {
  return values.map((value) => ({
    what: name(value),
    call: () => call(value),
    code,
    message: typeof message === "string" ? message : message(value),
  }));
}

/**
 * Everything a misuse must leave as it was, seen from each counter: every live object with
 * its info and holdings, the stats (but `nativeBytes`, which is capacity: a refused call
 * may leave a pool node reserved for reuse), and the handles' own state.
 */
export function observer(counters: Counter[], handles: Handle[]): () => string {
  return () =>
    JSON.stringify({
      views: counters.map((counter) => {
        const { nativeBytes: _, ...stats } = counter.stats();
        return { stats, objects: counter.closed ? [] : counter.snapshot().objects };
      }),
      released: handles.map((handle) => handle.released),
    });
}
