/**
 * The misuse catalogue's one runner, and the world its cases run in.
 *
 * A misuse is a call that must throw a RefscopeError with its documented code, the native
 * status of that code and a message naming what was attempted, and must leave the table
 * exactly as it was. A refusal is a call that returns a value instead of throwing, and
 * changes nothing either. errors.test.ts, ray.test.ts and every misuse-*.test.ts file state
 * their cases as `Misuse`s and `Refusal`s and run them here, so each case is checked the
 * same way wherever it lives.
 *
 * The catalogue proper (hostile and mistaken input, through the public API) is split by
 * subject: forged, stale and reused ids and targets that are not Refs (misuse-ids), releases
 * below zero of every kind, new references to objects kept only by lineage and malformed
 * LentRefs (misuse-references), registrations on freed, deleted and non-owned objects and
 * non-function handlers (misuse-handlers), malformed batches, sizes and create options
 * (misuse-arguments), and calls after a close and with handles of a terminated Worker
 * (misuse-lifecycle). "Unchanged" there means every object's info and holdings, the stats,
 * and the Refs' and leases' own state, compared before and after (`observer`).
 *
 * ```ts
 * await catalogue(t, [
 *   { what: "free of a forged id", call: () => counter.free(12345), code: "INVALID_ID", message: "free object 12345" },
 * ], observer([counter], [ref]));
 * ```
 */
import { Counter, type ErrorCode, type LentRef, type ObjectId, RefscopeError, Status } from "../mod.ts";
import { type IAssert, until } from "./_harness.ts";

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

/** A handler that does nothing: the cases are about where a handler may go, not what it does. */
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

/** A release after the counter closed: `release` (default: the handle's own) of a held `handle`. */
export interface QuietRelease {
  what: string;
  handle: Handle & { release(): void };
  release?: () => void;
}

/**
 * Runs each case: a release after close returns without an error, as disposal does (the
 * close released every reference already), marks its handle released and changes nothing
 * else; releasing the handle again is still `NO_REFERENCE`.
 */
export async function quietReleases(t: IAssert, cases: QuietRelease[], observe: () => string): Promise<void> {
  for (const { what, handle, release = () => handle.release() } of cases) {
    const before = observe();
    t.eq(handle.released, false, `${what}: the handle was held`);
    let caught: unknown;
    try {
      await release();
    } catch (error) {
      caught = error;
    }
    t.eq(caught, undefined, `${what}: returns quietly, as disposal does`);
    t.eq(handle.released, true, `${what}: the handle counts as released`);
    t.eq(observe(), before, `${what}: the table is unchanged`);
    let again: unknown;
    try {
      handle.release();
    } catch (error) {
      again = error;
    }
    t.ok(again instanceof RefscopeError && again.code === "NO_REFERENCE", `${what}: a second release is NO_REFERENCE`);
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
 * its info and holdings, the stats (but `memoryBytes`, which is capacity: a refused call
 * may leave a pool node reserved for reuse), and the handles' own state.
 */
export function observer(counters: Counter[], handles: Handle[]): () => string {
  return () =>
    JSON.stringify({
      views: counters.map((counter) => {
        const { memoryBytes: _, ...stats } = counter.stats();
        return { stats, objects: counter.closed ? [] : counter.snapshot().objects };
      }),
      released: handles.map((handle) => handle.released),
    });
}

/** An id's table slot and generation (`IdParts` in native/src/table.zig). */
export const slotOf = (id: ObjectId) => id % 2 ** 24;
export const generationOf = (id: ObjectId) => Math.floor(id / 2 ** 24);

/**
 * Opens the world the misuse-*.test.ts files run their cases in: a counter whose table holds
 * an object in every state a misuse can meet (live, freed, out of scope and kept by lineage,
 * deleted with its slot reused, borrowed, lent and unclaimed, owned by another participant),
 * released handles of every kind, and another counter. Every file builds it the same way, so
 * a case sees the same table, and the same ids, whichever file it is in.
 */
export async function openWorld() {
  const counter = new Counter();
  const other = new Counter();
  // A second participant on this thread: what a Worker is, without the Worker.
  const peer = Counter.attach(counter.key);

  const live = counter.create({ sizeBytes: 7 });
  live.onOutOfScope(noop);
  const spare = counter.create({ sizeBytes: 1 });
  const spare2 = counter.create({ sizeBytes: 2 });

  // A stale id whose slot is reused: same slot, the next generation.
  const stale = counter.create();
  const staleId = stale.id;
  stale.release();
  const reused = counter.create({ sizeBytes: 3 });

  let freedFired = 0;
  const freed = counter.create();
  freed.onOutOfScope(() => void freedFired++);
  counter.free(freed);
  await until(() => freedFired === 1, "the freed object's handler");

  // Out of scope, kept only by a lineage reference.
  const pinned = counter.create({ reconstructable: true });
  const pin = counter.addLineageRefs([pinned]);
  pinned.release();

  const twice = live.retain();
  twice.release();
  const submitted = counter.addSubmittedRefs([live]);
  const submittedDone = counter.addSubmittedRefs([live]);
  submittedDone.release();
  const lineageDone = counter.addLineageRefs([live]);
  lineageDone.release();

  // Borrowed by the peer; and a reference lent and not claimed (a forged lender must not
  // reach it).
  const shared = counter.create();
  const borrowed = peer.borrow(shared.retain().lend());
  const borrowedDone = borrowed.retain();
  borrowedDone.release();
  const unclaimed = shared.retain().lend();
  // Claimed already. (On another object than `unclaimed`: a LentRef is plain data, so two
  // lent by one participant on one object are interchangeable.)
  const handed = counter.create();
  const claimedLent = handed.retain().lend();
  const claimed = counter.borrow(claimedLent);
  const peerOwned = peer.create();
  peerOwned.onOutOfScope(noop);

  // Another counter's id, of a generation this counter has not reached in that slot.
  for (let index = 0; index < 9; index++) other.create().release();
  const foreign = other.create();

  const handles: Handle[] = [
    live,
    spare,
    spare2,
    stale,
    reused,
    freed,
    pinned,
    pin,
    twice,
    submitted,
    submittedDone,
    lineageDone,
    shared,
    borrowed,
    borrowedDone,
    handed,
    claimed,
    peerOwned,
    foreign,
  ];
  const observe = observer([counter, peer, other], handles);
  /** A LentRef of `id` from `lender`, as if lent by this counter: forged unless really lent. */
  const lent = (id: unknown, lender: unknown = counter.sink): LentRef =>
    ({ key: counter.key, id, lender, generation: unclaimed.generation }) as LentRef;

  return {
    counter,
    other,
    peer,
    live,
    spare,
    spare2,
    stale,
    staleId,
    reused,
    freed,
    pinned,
    pin,
    twice,
    submitted,
    submittedDone,
    lineageDone,
    shared,
    borrowed,
    borrowedDone,
    unclaimed,
    handed,
    claimedLent,
    claimed,
    peerOwned,
    foreign,
    observe,
    lent,
  };
}

/** The fixtures of `openWorld`, by name. */
export type World = Awaited<ReturnType<typeof openWorld>>;

/** Checks that the world is what the cases assume. */
export function checkWorld(t: IAssert, world: World): void {
  const { counter, peer, staleId, reused, pinned, freed, shared, peerOwned, foreign } = world;
  t.eq(slotOf(reused.id), slotOf(staleId), "the stale id's slot was reused");
  t.eq(generationOf(reused.id), generationOf(staleId) + 1, "by the next generation");
  t.eq(counter.info(pinned)?.outOfScope, true, "pinned is out of scope, kept by lineage");
  t.eq(counter.info(freed)?.freed, true, "freed is freed, and still has its entry");
  t.eq(counter.info(shared)?.lentRefs, 1, "one reference of shared is lent and unclaimed");
  t.eq(counter.info(peerOwned.id)?.owner, peer.sink, "the peer owns its object");
  t.ok(generationOf(foreign.id) >= 10, "the other counter's id has generation 10 or more");
}

/** Releases every reference the world holds, checks that nothing is left live, and closes it. */
export async function closeWorld(t: IAssert, world: World): Promise<void> {
  const { counter, other, peer } = world;
  // misuse-references.test.ts claims `unclaimed` to show that it still can; in the other
  // files it is still lent, and would keep `shared` live.
  if (counter.info(world.shared)?.lentRefs === 1) counter.borrow(world.unclaimed).release();
  world.submitted.release();
  world.pin.release();
  world.claimed.release();
  world.handed.release();
  world.borrowed.release();
  world.shared.release();
  world.spare.release();
  world.spare2.release();
  world.reused.release();
  world.freed.release();
  world.live.release();
  world.peerOwned.release();
  world.foreign.release();
  await peer.close();
  t.eq(counter.liveObjects, 0, "nothing is left live");
  await counter.close();
  await other.close();
}
