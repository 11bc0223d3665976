// The hostile pass, as a test: every hostile value at every parameter of every public
// function. A call may succeed (a hostile value can be a valid one: -0 bytes, say), or throw
// a RefscopeError, or pass on the error the value itself raised as refscope read it (a
// getter, a Proxy's trap, a revoked Proxy);
// it may never throw anything else (a TypeError from an FFI, a console that cannot show a
// value) or crash, and when it throws, the table is as it was.
import { Counter, type LentRef, MemoryBudget, type Ref, RefscopeError } from "../mod.ts";
import process from "node:process";
import { suite } from "./_harness.ts";
import { type Loose, noop, observer } from "./_misuse.ts";

/** What the hostile values throw themselves, to tell it from anything refscope throws. */
const trapMessage = "a hostile trap";

function trap(): never {
  throw new Error(trapMessage);
}

/** Each hostile value, made fresh per call (some are used up: a revoked Proxy, a getter). */
const hostile: [string, () => unknown][] = [
  ["NaN", () => NaN],
  ["Infinity", () => Infinity],
  ["-Infinity", () => -Infinity],
  ["-0", () => -0],
  ["2^53", () => 2 ** 53],
  ["-1", () => -1],
  ["0.5", () => 0.5],
  ["2^32", () => 2 ** 32],
  ["a BigInt", () => 10n],
  ["a Symbol", () => Symbol("hostile")],
  ["a string", () => "1"],
  ["null", () => null],
  ["undefined", () => undefined],
  ["true", () => true],
  ["an empty object", () => ({})],
  ["an empty array", () => []],
  ["a function", () => () => 0],
  ["Object.create(null)", () => Object.create(null)],
  ["a Proxy whose every trap throws", () =>
    new Proxy({}, {
      get: trap,
      has: trap,
      ownKeys: trap,
      getPrototypeOf: trap,
      getOwnPropertyDescriptor: trap,
      apply: trap,
    })],
  ["a revoked Proxy", () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    return proxy;
  }],
  ["an object whose getters throw", () => {
    const object: Record<PropertyKey, unknown> = {};
    for (
      const key of [
        "id",
        "key",
        "lender",
        "generation",
        "sizeBytes",
        "contains",
        "lineage",
        "reconstructable",
        "onHandlerError",
        "leaks",
        "onLeak",
        "stacks",
        "handlerTiming",
        "slowMs",
        "onSlow",
        "reclaimAfterMs",
        "limitBytes",
        "onRelease",
        "signal",
        "length",
        "then",
        Symbol.iterator,
      ]
    ) {
      Object.defineProperty(object, key, { get: trap, enumerable: true });
    }
    return object;
  }],
  ["an iterable that throws", () => ({ [Symbol.iterator]: trap })],
  ["an iterable of hostile values", () => [NaN, -0, null, {}, Symbol("x")]],
  ["a huge array-like length", () => ({ length: 2 ** 32, [Symbol.iterator]: [][Symbol.iterator] })],
];

/** The calls, each with one parameter left to the hostile value. */
function calls(
  counter: Counter,
  ref: Ref,
  lent: LentRef,
  budget: MemoryBudget,
  spares: Ref[],
): [string, (value: Loose) => unknown][] {
  const owner = budget.owners[0];
  // A lend that succeeds (a hostile value may be a valid option) is reclaimed at once.
  const lendSpare = (options: Loose) => {
    const lentSpare = spares[spares.length - 1].lend(options);
    spares.pop();
    return counter.reclaim(lentSpare);
  };
  return [
    ["new Counter(options)", (value) => new Counter(value)],
    ["new Counter({ leaks })", (value) => new Counter({ leaks: value })],
    ["new Counter({ leaks: { onLeak } })", (value) => new Counter({ leaks: { onLeak: value } })],
    ["new Counter({ leaks: { stacks } })", (value) => new Counter({ leaks: { stacks: value } })],
    ["new Counter({ handlerTiming })", (value) => new Counter({ handlerTiming: value })],
    ["new Counter({ handlerTiming: { slowMs } })", (value) => new Counter({ handlerTiming: { slowMs: value } })],
    ["new Counter({ handlerTiming: { onSlow } })", (value) => new Counter({ handlerTiming: { onSlow: value } })],
    ["Counter.attach(key)", (value) => Counter.attach(value)],
    ["Counter.attach(key, options)", (value) => Counter.attach(counter.key, value)],
    ["counter.create(options)", (value) => counter.create(value)],
    ["counter.create({ sizeBytes })", (value) => counter.create({ sizeBytes: value })],
    ["counter.create({ contains })", (value) => counter.create({ contains: value })],
    ["counter.create({ lineage })", (value) => counter.create({ lineage: value })],
    ["counter.create({ reconstructable })", (value) => counter.create({ reconstructable: value })],
    ["counter.borrow(lent)", (value) => counter.borrow(value)],
    ["counter.borrow({ ...lent, id })", (value) => counter.borrow({ ...lent, id: value })],
    ["counter.borrow({ ...lent, lender })", (value) => counter.borrow({ ...lent, lender: value })],
    ["counter.borrow({ ...lent, generation })", (value) => counter.borrow({ ...lent, generation: value })],
    ["counter.borrow({ ...lent, key })", (value) => counter.borrow({ ...lent, key: value })],
    ["counter.reclaim(lent)", (value) => counter.reclaim(value)],
    ["counter.reclaim({ ...lent, id })", (value) => counter.reclaim({ ...lent, id: value })],
    ["counter.reclaim({ ...lent, lender })", (value) => counter.reclaim({ ...lent, lender: value })],
    ["counter.reclaim({ ...lent, generation })", (value) => counter.reclaim({ ...lent, generation: value })],
    ["ref.lend(options)", (value) => lendSpare(value)],
    ["ref.lend({ reclaimAfterMs })", (value) => lendSpare({ reclaimAfterMs: value })],
    ["counter.onOutOfScope(target)", (value) => counter.onOutOfScope(value, noop)],
    ["counter.onOutOfScope(ref, handler)", (value) => counter.onOutOfScope(ref, value)],
    ["counter.offOutOfScope(target)", (value) => counter.offOutOfScope(value, noop)],
    ["counter.offOutOfScope(ref, handler)", (value) => counter.offOutOfScope(ref, value)],
    ["counter.onDeleted(target)", (value) => counter.onDeleted(value, noop)],
    ["counter.onDeleted(ref, handler)", (value) => counter.onDeleted(ref, value)],
    ["counter.offDeleted(target)", (value) => counter.offDeleted(value, noop)],
    ["counter.free(target)", (value) => counter.free(value)],
    ["counter.info(target)", (value) => counter.info(value)],
    ["counter.holdings(target)", (value) => counter.holdings(value)],
    ["counter.releaseAll(refs)", (value) => counter.releaseAll(value)],
    ["counter.releaseAll([ref, value])", (value) => counter.releaseAll([ref, value])],
    ["counter.addSubmittedRefs(targets)", (value) => counter.addSubmittedRefs(value)],
    ["counter.addLineageRefs(targets)", (value) => counter.addLineageRefs(value)],
    ["counter.runTask(targets, task)", (value) => counter.runTask(value, noop)],
    ["counter.runTask([ref], task)", (value) => counter.runTask([ref], value)],
    ["counter.onHandlerError = hook", (value) => void (counter.onHandlerError = value)],
    ["ref.onOutOfScope(handler)", (value) => ref.onOutOfScope(value)],
    ["ref.offOutOfScope(handler)", (value) => ref.offOutOfScope(value)],
    ["ref.onDeleted(handler)", (value) => ref.onDeleted(value)],
    ["new MemoryBudget(counter)", (value) => new MemoryBudget(value)],
    ["new MemoryBudget(counter, options)", (value) => new MemoryBudget(counter, value)],
    ["budget.owner(name)", (value) => budget.owner(value)],
    ["budget.owner(name, options)", (value) => budget.owner("hostile", value)],
    ["owner.reserve(bytes)", (value) => owner.reserve(value)],
    ["owner.reserve(bytes, options)", (value) => owner.reserve(1, value)],
    ["owner.tryReserve(bytes)", (value) => owner.tryReserve(value)],
    ["owner.track(target)", (value) => owner.track(value)],
  ];
}

/** Undoes what a successful call made, so that the next call meets the same table. */
async function undo(result: unknown, counter: Counter): Promise<void> {
  if (result instanceof Counter) {
    if (result !== counter) await result.close();
    return;
  }
  const handle = result as { release?: () => void; released?: boolean } | undefined;
  if (typeof handle?.release === "function" && handle.released === false) handle.release();
}

suite("the hostile pass: every hostile value at every parameter of every public function", async (t) => {
  const counter = new Counter();
  const ref = counter.create({ sizeBytes: 8 });
  const lentSource = counter.create();
  const lent = lentSource.lend();
  const budget = new MemoryBudget(counter, { limitBytes: 1024 });
  budget.owner("first");
  // One Ref per lend case and hostile value, each lent (and reclaimed) at most once.
  const spares = Array.from({ length: 2 * hostile.length }, () => counter.create());
  const observe = observer([counter], [ref]);
  const failures: string[] = [];
  let calls_ = 0;
  let refused = 0;
  let accepted = 0;
  for (const [call, run] of calls(counter, ref, lent, budget, spares)) {
    for (const [name, make] of hostile) {
      calls_++;
      const what = `${call} with ${name}`;
      if (process.env.HOSTILE_TRACE) console.error(what);
      const before = observe();
      let result: unknown;
      let caught: unknown;
      let threw = false;
      try {
        result = await run(make());
      } catch (error) {
        caught = error;
        threw = true;
      }
      if (!threw) {
        accepted++;
        await undo(result, counter);
        if (counter.onHandlerError !== undefined) counter.onHandlerError = undefined;
        continue;
      }
      refused++;
      // The value's own: its trap or getter, or the engine refusing to read a revoked Proxy.
      const own = caught instanceof Error &&
        (caught.message === trapMessage || (name === "a revoked Proxy" && /revoked/.test(caught.message)));
      if (!(caught instanceof RefscopeError) && !own) {
        failures.push(
          `${what}: threw ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`,
        );
      }
      const after = observe();
      if (after !== before) failures.push(`${what}: threw, and the table changed`);
    }
  }
  t.eq(
    failures,
    [],
    `${calls_} calls: ${refused} refused with a RefscopeError or the value's own error, table unchanged; ${accepted} valid and undone`,
  );
  ref.release();
  counter.releaseAll(spares);
  // The lent object, unless a valid-after-all field (-0 as the lender) claimed it and the
  // undo released it.
  t.ok(counter.liveObjects <= 1, `nothing is left but the lent object (${counter.liveObjects} live)`);
  await counter.close();
});
