// Lending that cleans up after itself: a lender takes back what nobody claimed with
// `counter.reclaim(lent)`, or has it done by `lend({ reclaimAfterMs })`, and exactly one of a
// borrow and a reclaim racing for the same reference gets it.
import process from "node:process";
import { Counter, type ObjectId, RefscopeError } from "../mod.ts";
import { busy, suite, until } from "./_harness.ts";
import { catalogue, type Loose, observer } from "./_misuse.ts";
import { Peer, RemoteError } from "./_workers.ts";

/** Rounds of the borrow-or-reclaim race (REFSCOPE_RACE_ROUNDS scales it, as for the Worker races). */
const raceRounds = Number(process.env.REFSCOPE_RACE_ROUNDS ?? 200);

suite("lending: reclaim, reclaimAfterMs, and the race of a borrow with a reclaim", async (t) => {
  await t.test("reclaim takes back an unclaimed lend: true once, then false; the handler fires", async (t) => {
    await using counter = new Counter();
    const ref = counter.create({ sizeBytes: 64 });
    let fired = 0;
    ref.onOutOfScope(() => void fired++);
    const lent = ref.lend();
    t.eq(counter.info(lent.id)?.lentRefs, 1, "lent and unclaimed");
    t.eq(counter.reclaim(lent), true, "reclaimed");
    t.eq(counter.reclaim(lent), false, "a second reclaim finds nothing");
    await until(() => fired === 1, "the handler of the reclaimed object");
    t.eq(counter.info(lent.id), undefined, "its last reference was the lend: the object is gone");
    t.throws(() => counter.borrow(lent), RefscopeError, "a borrow after the reclaim is refused");
  });

  await t.test("reclaim after a borrow is false, and the borrower's reference stays", async (t) => {
    await using counter = new Counter();
    const other = Counter.attach(counter.key);
    const ref = counter.create();
    const lent = ref.retain().lend();
    const borrowed = other.borrow(lent);
    t.eq(counter.reclaim(lent), false, "borrowed already: nothing to reclaim");
    t.eq(counter.info(ref)?.borrowedRefs, 1, "the borrower still holds its reference");
    borrowed.release();
    ref.release();
    await other.close();
  });

  await t.test("a pool of Workers, some ending before they borrow: every lend comes back", async (t) => {
    await using counter = new Counter();
    const shared = counter.create({ sizeBytes: 1 << 20 });
    let gone = 0;
    shared.onOutOfScope(() => void gone++);
    const peers = Array.from({ length: 4 }, () => new Peer());
    await Promise.all(peers.map((peer) => peer.call("attach", counter.key)));
    // Every Worker gets a lend; the first two end before they borrow.
    const lends = peers.map(() => shared.retain().lend());
    shared.release();
    for (const peer of peers.slice(0, 2)) peer.terminate();
    await Promise.all(peers.slice(2).map((peer, index) => peer.call("borrow", lends[index + 2])));
    await until(() => counter.stats().openSinks === 3, "the ended Workers' participation to end", 15_000);
    t.eq(counter.info(shared.id)?.lentRefs, 2, "the ended Workers' lends are still charged to the lender");
    t.eq(lends.map((lent) => counter.reclaim(lent)), [true, true, false, false], "the unclaimed two come back");
    await Promise.all(peers.slice(2).map((peer) => peer.call("release", shared.id)));
    await until(() => gone === 1, "the shared object's handler once every Worker let go");
    for (const peer of peers.slice(2)) peer.terminate();
  });

  await t.test("lend({ reclaimAfterMs }): an unclaimed lend comes back by itself; a claimed one stays", async (t) => {
    await using counter = new Counter();
    const other = Counter.attach(counter.key);
    const ref = counter.create();
    let fired = 0;
    ref.onOutOfScope(() => void fired++);
    const claimed = ref.retain().lend({ reclaimAfterMs: 5 });
    const unclaimed = ref.lend({ reclaimAfterMs: 5 });
    const borrowed = other.borrow(claimed);
    await until(() => counter.info(ref.id)?.lentRefs === 0, "the unclaimed lend to be reclaimed");
    t.throws(() => other.borrow(unclaimed), RefscopeError, "a borrow after the expiry is refused");
    t.eq(counter.info(ref.id)?.borrowedRefs, 1, "the claimed lend is the borrower's still");
    t.eq(fired, 0, "the borrower keeps the object in scope");
    borrowed.release();
    await until(() => fired === 1, "the handler once the borrower let go");
    await other.close();
  });

  await t.test(`a Worker's borrow races the lender's reclaim: exactly one gets it (${raceRounds} rounds)`, async (t) => {
    await using counter = new Counter();
    const peer = new Peer();
    await peer.call("attach", counter.key);
    const ref = counter.create();
    const outcomes = { borrowed: 0, reclaimed: 0 };
    const wrong: string[] = [];
    for (let round = 0; round < raceRounds; round++) {
      const lent = ref.retain().lend();
      const borrowing = peer.call<ObjectId>("borrow", lent).then(() => true, (error) => {
        if (error instanceof RemoteError && error.code === "NO_REFERENCE") return false;
        throw error;
      });
      busy(Math.random() * 0.2); // The borrow is on its way: reclaim at a random offset.
      const reclaimed = counter.reclaim(lent);
      const borrowed = await borrowing;
      if (borrowed === reclaimed) wrong.push(`round ${round}: borrowed ${borrowed}, reclaimed ${reclaimed}`);
      if (borrowed) {
        outcomes.borrowed++;
        await peer.call("release", ref.id);
      }
      if (reclaimed) outcomes.reclaimed++;
      const info = counter.info(ref)!;
      if (info.lentRefs !== 0 || info.borrowedRefs !== 0 || info.localRefs !== 1) {
        wrong.push(`round ${round}: left ${JSON.stringify(info)}`);
      }
    }
    t.eq(wrong, [], `exactly one each round (borrowed ${outcomes.borrowed}, reclaimed ${outcomes.reclaimed})`);
    ref.release();
    peer.terminate();
  });

  await t.test("misuse: reclaim of what is not this thread's lend, lend options out of range", async (t) => {
    await using counter = new Counter();
    const other = Counter.attach(counter.key);
    const ref = counter.create();
    const theirs = other.create().lend();
    const mine = ref.retain().lend();
    const observe = observer([counter, other], [ref]);
    const loose = (value: unknown) => value as Loose;
    await catalogue(t, [
      {
        what: "reclaim of another thread's lend",
        call: () => counter.reclaim(theirs),
        code: "INVALID_ARGUMENT",
        message:
          `reclaim: object ${theirs.id} was lent by sink ${other.sink}, not by this thread (sink ${counter.sink})`,
      },
      {
        what: "reclaim of a lend of another counter",
        call: () => counter.reclaim({ ...mine, key: mine.key + 1 }),
        code: "INVALID_ARGUMENT",
        message: "reclaim: the reference was lent by another counter",
      },
      {
        what: "reclaim of something that is not a LentRef",
        call: () => counter.reclaim(loose({ id: mine.id })),
        code: "INVALID_ARGUMENT",
        message: "reclaim: expected a LentRef from Ref.lend()",
      },
      {
        what: "reclaim of a forged id",
        call: () => counter.reclaim({ ...mine, id: 12345 }),
        code: "INVALID_ID",
        message: "reclaim object 12345",
      },
      ...[-1, 0.5, 2 ** 31, NaN, "5"].map((reclaimAfterMs) => ({
        what: `lend({ reclaimAfterMs: ${String(reclaimAfterMs)} })`,
        call: () => ref.lend(loose({ reclaimAfterMs })),
        code: "INVALID_ARGUMENT" as const,
        message: "lend: reclaimAfterMs must be an integer in [0, 2^31)",
      })),
      {
        what: "lend with options that are not an object",
        call: () => ref.lend(loose(5)),
        code: "INVALID_ARGUMENT",
        message: "lend: options must be an object, not number",
      },
    ], observe);
    t.eq(ref.released, false, "a refused lend leaves the Ref held");
    t.eq(counter.reclaim(mine), true, "the lend the cases named is still there to reclaim");
    const late = ref.lend();
    await counter.close();
    t.eq(counter.reclaim(late), false, "after close, reclaim is false: the close released every lend");
    await other.close();
  });
});
