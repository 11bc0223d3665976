// The memory budget: bytes charged by owner and given back exactly once by refscope's own
// handlers; FIFO reservations with cancellation; owners isolated; no figure ever negative,
// also when a native thread releases objects while they are being charged.
import {
  type BudgetFigures,
  type BudgetRelease,
  Counter,
  MemoryBudget,
  RefscopeError,
  type Reservation,
} from "../mod.ts";
import { suite, until, within } from "./_harness.ts";
import { ReleaseJob } from "./_native.ts";

// deno-lint-ignore no-explicit-any
type Loose = any;

/** Every figure of the budget and of each owner is >= 0, and the owners add up to the total. */
function consistent(budget: MemoryBudget): string | undefined {
  const stats = budget.stats();
  const figures: (keyof BudgetFigures)[] = ["usedBytes", "reservedBytes", "objects", "waiting", "waits", "waitedMs"];
  for (const entry of [stats, ...stats.owners]) {
    for (const figure of figures) if (entry[figure] < 0) return `${figure} is ${entry[figure]}`;
  }
  for (const figure of ["usedBytes", "reservedBytes", "objects", "waiting"] as const) {
    const sum = stats.owners.reduce((total, owner) => total + owner[figure], 0);
    if (sum !== stats[figure]) return `owners' ${figure} add up to ${sum}, the budget says ${stats[figure]}`;
  }
  return undefined;
}

/** Whether `promise` has settled, after the microtasks queued so far ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => (done = true), () => (done = true));
  await new Promise((resolve) => setTimeout(resolve, 0));
  return done;
}

suite("memory budget", async (t) => {
  await t.test("bytes are charged on create and given back once when the object goes out of scope", async (t) => {
    await using counter = new Counter();
    const releases: BudgetRelease[] = [];
    const budget = new MemoryBudget(counter, { limitBytes: 1000, onRelease: (release) => void releases.push(release) });
    const stage = budget.owner("stage", { limitBytes: 600 });

    const reservation = await stage.reserve(400);
    t.eq([stage.stats().reservedBytes, stage.stats().usedBytes], [400, 0], "reserved, not used yet");
    const block = reservation.create({ sizeBytes: 300 }); // 100 bytes unused: given back at once
    t.eq(block.info()?.sizeBytes, 300, "the object has the size charged");
    t.eq(
      [stage.stats().usedBytes, stage.stats().reservedBytes, stage.stats().objects, budget.stats().usedBytes],
      [300, 0, 1, 300],
      "charged to the owner and the budget",
    );
    const second = block.retain();
    block.release();
    await new Promise((resolve) => setTimeout(resolve, 0));
    t.eq(stage.stats().usedBytes, 300, "still charged while a reference is left");
    second.release();
    await until(() => releases.length === 1, "the charge to be given back");
    t.eq(releases, [{ id: block.id, owner: "stage", bytes: 300 }], "onRelease names the object, owner and bytes");
    t.eq([stage.stats().usedBytes, stage.stats().objects, budget.stats().usedBytes], [0, 0, 0], "given back");
    t.eq(stage.stats().peakBytes, 400, "the peak counts what was reserved");

    const freed = (await stage.reserve(200)).create();
    freed.free();
    await until(() => releases.length === 2, "the freed object's charge to be given back");
    t.eq(stage.stats().usedBytes, 0, "free gives the bytes back at once, while the Ref still holds the object");
    freed.release();
    await new Promise((resolve) => setTimeout(resolve, 0));
    t.eq([releases.length, consistent(budget)], [2, undefined], "and only once");
  });

  await t.test("reservations are granted in FIFO order: a small one does not overtake a large one", async (t) => {
    await using counter = new Counter();
    const budget = new MemoryBudget(counter);
    const stage = budget.owner("stage", { limitBytes: 100 });
    const first = (await stage.reserve(60)).create();
    const order: string[] = [];
    const large = stage.reserve(50).then((reservation) => (order.push("large"), reservation));
    const small = stage.reserve(10).then((reservation) => (order.push("small"), reservation));
    t.eq(await settled(small), false, "10 bytes would fit, but a larger reservation is ahead");
    t.eq(stage.tryReserve(10), undefined, "tryReserve does not overtake either");
    t.eq(stage.waiting, 2, "two waiting");
    first.release();
    const [a, b] = await within(Promise.all([large, small]), 5000, "both reservations");
    t.eq(order, ["large", "small"], "granted in the order asked");
    t.eq(stage.stats().reservedBytes, 60, "both reserved");
    t.ok(stage.stats().waits === 2 && stage.stats().waitedMs > 0, "their waits are counted, with the time");
    a.release();
    b.release();
    a.release(); // A second release does nothing.
    t.eq([stage.stats().reservedBytes, consistent(budget)], [0, undefined], "released");
  });

  await t.test("a waiting reservation can be cancelled with an AbortSignal; the next one then goes", async (t) => {
    await using counter = new Counter();
    const budget = new MemoryBudget(counter, { limitBytes: 100 });
    const stage = budget.owner("stage");
    const held = await stage.reserve(90);
    const controller = new AbortController();
    const cancelled = stage.reserve(50, { signal: controller.signal });
    const next = stage.reserve(10);
    t.eq(await settled(next), false, "the next waits behind the large one");
    controller.abort(new Error("no longer needed"));
    const reason = await cancelled.catch((error) => error);
    t.eq((reason as Error).message, "no longer needed", "rejected with the signal's reason");
    const granted = await within(next, 5000, "the reservation behind the cancelled one");
    t.eq(granted.bytes, 10, "granted as soon as the one ahead was cancelled");
    t.eq([stage.waiting, stage.stats().reservedBytes], [0, 100], "nothing left of the cancelled one");

    const aborted = AbortSignal.abort();
    const refused = await stage.reserve(1, { signal: aborted }).catch((error) => error);
    t.eq((refused as DOMException).name, "AbortError", "an already aborted signal rejects at once");
    t.eq(stage.waiting, 0, "and queues nothing");
    held.release();
    granted.release();
    t.eq(consistent(budget), undefined, "figures consistent");
  });

  await t.test("a reservation larger than a limit fails at once with LIMIT", async (t) => {
    await using counter = new Counter();
    const budget = new MemoryBudget(counter, { limitBytes: 1000 });
    const stage = budget.owner("stage", { limitBytes: 100 });
    const wide = budget.owner("wide");
    for (
      const [what, call] of [
        ["over the owner's limit", () => stage.reserve(101)],
        ["over the global limit", () => wide.reserve(1001)],
      ] as const
    ) {
      const error = await call().catch((error) => error);
      t.ok(error instanceof RefscopeError && error.code === "LIMIT", `${what}: LIMIT`);
      t.ok(/could never be granted/.test((error as Error).message), `${what}: the message says why`);
    }
    t.throws(() => stage.tryReserve(101), RefscopeError, "tryReserve: LIMIT too");
    t.eq(budget.stats().waiting + budget.stats().reservedBytes, 0, "nothing queued or reserved");
  });

  await t.test("owners are isolated: one at its limit holds back only its own reservations", async (t) => {
    await using counter = new Counter();
    const budget = new MemoryBudget(counter, { limitBytes: 1000 });
    const slow = budget.owner("slow", { limitBytes: 100 });
    const fast = budget.owner("fast", { limitBytes: 500 });
    const full = await slow.reserve(100);
    const blocked = slow.reserve(50);
    const other = await within(fast.reserve(400), 5000, "the other owner's reservation");
    t.eq(other.bytes, 400, "the other owner is not held back");
    t.eq(await settled(blocked), false, "the full owner still waits");
    full.release();
    (await blocked).release();
    other.release();

    // The global limit is FIFO across owners: a later reservation of another owner does
    // not overtake one that waits for the global limit.
    const tight = new MemoryBudget(counter, { limitBytes: 100 });
    const a = tight.owner("a");
    const b = tight.owner("b");
    const first = await a.reserve(80);
    const bWaits = b.reserve(50);
    const aLater = a.reserve(10);
    t.eq(await settled(aLater), false, "10 bytes fit the global limit, but b's 50 were asked first");
    first.release();
    const [bGranted, aGranted] = await within(Promise.all([bWaits, aLater]), 5000, "both");
    t.eq([bGranted.bytes, aGranted.bytes], [50, 10], "granted in order");
    bGranted.release();
    aGranted.release();
    t.eq([consistent(budget), consistent(tight)], [undefined, undefined], "figures consistent");
  });

  await t.test("track charges an object created elsewhere; an object already gone is not charged", async (t) => {
    await using counter = new Counter();
    const releases: BudgetRelease[] = [];
    const budget = new MemoryBudget(counter, { limitBytes: 100, onRelease: (release) => void releases.push(release) });
    const stage = budget.owner("stage");
    const big = counter.create({ sizeBytes: 150 });
    t.eq(stage.track(big), true, "charged, although over the limit: tracking is accounting, not admission");
    t.eq(budget.stats().usedBytes, 150, "counted");
    t.eq(stage.tryReserve(1), undefined, "and it holds back reservations");
    t.throws(() => stage.track(big), RefscopeError, "charging an object twice is refused");
    const gone = counter.create({ sizeBytes: 10 });
    const goneId = gone.id;
    gone.release();
    t.eq(stage.track(goneId), false, "an object deleted before tracking is not charged");
    const freed = counter.create({ sizeBytes: 10 });
    freed.free();
    t.eq(stage.track(freed), false, "nor a freed one");
    big.release();
    freed.release();
    await until(() => releases.length === 1, "the tracked object's charge to be given back");
    await new Promise((resolve) => setTimeout(resolve, 0));
    t.eq([releases.length, budget.stats().usedBytes, consistent(budget)], [1, 0, undefined], "once, back to zero");
  });

  await t.test(
    "a native thread releasing objects while they are being charged: each charge is given back exactly once",
    async (t) => {
      await using counter = new Counter();
      const released = new Map<number, number>();
      let negative: string | undefined;
      const budget = new MemoryBudget(counter, {
        onRelease: ({ id }) => {
          released.set(id, (released.get(id) ?? 0) + 1);
          negative ??= consistent(budget);
        },
      });
      const stage = budget.owner("stage");
      const rounds = 20;
      const perRound = 500;
      let charged = 0;
      let refused = 0;
      for (let round = 0; round < rounds; round++) {
        const ids = Array.from({ length: perRound }, () => counter.create({ sizeBytes: 64 }).id);
        // The native thread drops each object's only reference while this thread charges
        // them: some are charged first, some are gone first.
        const job = new ReleaseJob(counter, ids);
        for (const id of ids) {
          if (stage.track(id)) charged++;
          else refused++;
          negative ??= consistent(budget);
        }
        t.eq(job.join().firstError, 0, `round ${round}: the native thread released every object`);
      }
      await until(() => released.size === charged, "every charge to be given back", 20_000);
      await new Promise((resolve) => setTimeout(resolve, 0));
      t.eq(charged + refused, rounds * perRound, `${charged} charged first, ${refused} gone first`);
      t.ok([...released.values()].every((count) => count === 1), "each given back exactly once");
      t.eq(negative, undefined, "no figure was ever negative or inconsistent");
      t.eq([budget.stats().usedBytes, budget.stats().objects], [0, 0], "back to zero");
    },
  );

  await t.test("closing the counter gives every charge back", async (t) => {
    const counter = new Counter();
    const budget = new MemoryBudget(counter, { limitBytes: 1000 });
    const stage = budget.owner("stage");
    const refs = [];
    for (let index = 0; index < 10; index++) refs.push((await stage.reserve(100)).create());
    const waiter = stage.reserve(100);
    t.eq(budget.stats().usedBytes, 1000, "full");
    await counter.close();
    t.eq(budget.stats().usedBytes, 0, "close deleted every object: every charge given back");
    const late = await within(waiter, 5000, "the waiting reservation");
    t.eq(late.bytes, 100, "and the waiting reservation was granted");
    const error = (() => {
      try {
        late.create();
      } catch (error) {
        return error;
      }
    })();
    t.ok(error instanceof RefscopeError && error.code === "CLOSED", "creating on a closed counter: CLOSED");
    t.eq(late.open, true, "the reservation is still open after the failed create");
    late.release();
    t.eq(consistent(budget), undefined, "figures consistent");
  });

  await t.test("bad input is a RefscopeError and changes nothing", async (t) => {
    await using counter = new Counter();
    const budget = new MemoryBudget(counter, { limitBytes: 100 });
    const stage = budget.owner("stage");
    const used = await stage.reserve(10);
    used.create().release();
    await until(() => budget.stats().usedBytes === 0, "the charge to be given back");
    const reservation = await stage.reserve(20);
    const before = JSON.stringify(budget.stats());
    const cases: [string, () => unknown, string][] = [
      ["a negative reservation", () => stage.tryReserve(-1), "INVALID_ARGUMENT"],
      ["a fractional reservation", () => stage.tryReserve(1.5), "INVALID_ARGUMENT"],
      ["a string reservation", () => stage.tryReserve("10" as Loose), "INVALID_ARGUMENT"],
      ["a negative limit", () => budget.owner("x", { limitBytes: -5 }), "INVALID_ARGUMENT"],
      ["a NaN limit", () => new MemoryBudget(counter, { limitBytes: NaN }), "INVALID_ARGUMENT"],
      ["no counter", () => new MemoryBudget(undefined as Loose), "INVALID_ARGUMENT"],
      ["a non-function onRelease", () => new MemoryBudget(counter, { onRelease: 1 as Loose }), "INVALID_ARGUMENT"],
      ["a duplicate owner", () => budget.owner("stage"), "INVALID_ARGUMENT"],
      ["an empty owner name", () => budget.owner(""), "INVALID_ARGUMENT"],
      ["a reservation used twice", () => used.create(), "INVALID_ARGUMENT"],
      ["track of a forged id", () => stage.track(12345), "INVALID_ID"],
    ];
    for (const [what, call, code] of cases) {
      let caught: unknown;
      try {
        call();
      } catch (error) {
        caught = error;
      }
      t.ok(caught instanceof RefscopeError && caught.code === code, `${what}: ${code}`);
    }
    const notSignal = await stage.reserve(1, { signal: {} as Loose }).catch((error) => error);
    t.ok(notSignal instanceof RefscopeError && notSignal.code === "INVALID_ARGUMENT", "a non-signal: INVALID_ARGUMENT");
    const tooBig = (() => {
      try {
        reservation.create({ sizeBytes: 21 });
      } catch (error) {
        return error;
      }
    })();
    t.ok(tooBig instanceof RefscopeError && tooBig.code === "LIMIT", "creating more than reserved: LIMIT");
    t.eq(JSON.stringify(budget.stats()), before, "the budget is unchanged");
    t.eq(reservation.open, true, "the reservation is still open");
    reservation.release();
  });

  await t.test("random reservations, creates, releases, frees and cancellations keep every figure consistent", async (t) => {
    await using counter = new Counter();
    const budget = new MemoryBudget(counter, { limitBytes: 5000 });
    const owners = [
      budget.owner("a", { limitBytes: 3000 }),
      budget.owner("b", { limitBytes: 2000 }),
      budget.owner("c"),
    ];
    let state = 12345;
    const random = () => ((state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const reservations: Reservation[] = [];
    const refs: { release(): void; free(): void }[] = [];
    const pending: AbortController[] = [];
    let problem: string | undefined;
    for (let step = 0; step < 3000 && problem === undefined; step++) {
      const owner = owners[Math.floor(random() * owners.length)];
      const roll = random();
      if (roll < 0.3) {
        const controller = new AbortController();
        pending.push(controller);
        owner.reserve(Math.floor(random() * 800), { signal: controller.signal }).then(
          (reservation) => reservations.push(reservation),
          () => {},
        );
      } else if (roll < 0.5 && reservations.length > 0) {
        const reservation = reservations.splice(Math.floor(random() * reservations.length), 1)[0];
        refs.push(reservation.create({ sizeBytes: Math.floor(random() * reservation.bytes) }));
      } else if (roll < 0.55 && reservations.length > 0) {
        reservations.splice(Math.floor(random() * reservations.length), 1)[0].release();
      } else if (roll < 0.8 && refs.length > 0) {
        refs.splice(Math.floor(random() * refs.length), 1)[0].release();
      } else if (roll < 0.85 && refs.length > 0) {
        refs[Math.floor(random() * refs.length)].free();
      } else if (pending.length > 0) {
        pending.splice(Math.floor(random() * pending.length), 1)[0].abort();
      }
      if (step % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      problem = consistent(budget);
      const stats = budget.stats();
      if (stats.usedBytes + stats.reservedBytes > stats.limitBytes) problem = "over the global limit";
      for (const owner of stats.owners) {
        if (owner.usedBytes + owner.reservedBytes > owner.limitBytes) problem = `over ${owner.name}'s limit`;
      }
    }
    t.eq(problem, undefined, "after every step: no figure negative, owners add up, no limit exceeded");
    for (const controller of pending) controller.abort();
    for (const ref of refs) ref.release();
    await until(() => budget.stats().usedBytes === 0, "every charge to be given back");
    await new Promise((resolve) => setTimeout(resolve, 0));
    for (const reservation of reservations) reservation.release();
    const stats = budget.stats();
    t.eq([stats.usedBytes, stats.reservedBytes, stats.objects, stats.waiting], [0, 0, 0, 0], "everything back to zero");
    t.ok(stats.peakBytes <= stats.limitBytes, `peak ${stats.peakBytes} within the limit`);
  });
});
