// Model-based test: a seeded random sequence of operations runs against refscope (two
// participants on this thread: the opener and an attached counter, so borrowers take part)
// and against the reference model in model.ts; after every step the outcomes, every
// object's counts and flags, the live set and each participant's handler order must agree.
//
// Reproduce a failure:  REFSCOPE_MODEL_SEED=<seed printed below> deno run -A tests/model.test.ts
// Longer runs (soak):   REFSCOPE_MODEL_OPS=2000000 bun tests/model.test.ts
import process from "node:process";
import { setImmediate } from "node:timers";
import { Counter, type LentRef, type Ref, RefscopeError } from "../mod.ts";
import { Model, type ModelObject, type Outcome } from "./model.ts";
import { runtime, suite } from "./_harness.ts";

const seed = Number(process.env.REFSCOPE_MODEL_SEED ?? Math.floor(Math.random() * 2 ** 31));
const operations = Number(process.env.REFSCOPE_MODEL_OPS ?? 100_000);
const objectsMax = 120;

/** mulberry32: a small seeded generator, so a seed replays the same run. */
function generator(state: number): () => number {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Held {
  refs: Ref[];
  leases: { kind: "submitted" | "lineagePins"; release(): void; ids: number[] }[];
  handlers: Map<string, { id: number; kind: "outOfScope" | "deleted"; fn: () => void }>;
  fired: string[];
}

function outcomeOf(call: () => unknown): Outcome {
  try {
    return { ok: true, value: call() };
  } catch (error) {
    if (error instanceof RefscopeError) return { ok: false, code: error.code };
    throw error;
  }
}

suite("model-based random operations", async (t) => {
  const command = { deno: "deno run -A", bun: "bun", node: "node" }[runtime];
  console.log(`# seed ${seed}, ${operations} operations; reproduce with:`);
  console.log(`#   REFSCOPE_MODEL_SEED=${seed} REFSCOPE_MODEL_OPS=${operations} ${command} tests/model.test.ts`);
  const random = generator(seed);
  const pick = <T>(items: T[]): T | undefined =>
    items.length === 0 ? undefined : items[Math.floor(random() * items.length)];
  const chance = (p: number) => random() < p;

  const opener = new Counter();
  const attached = Counter.attach(opener.key);
  const counters = [opener, attached];
  const model = new Model(2);
  const held: Held[] = counters.map(() => ({ refs: [], leases: [], handlers: new Map(), fired: [] }));
  let labels = 0;
  let step = 0;
  let lastOp = "";
  let mismatches = 0;

  const fail = (what: string) => {
    mismatches++;
    t.fail(`step ${step} (${lastOp}): ${what} [seed ${seed}]`);
  };

  const expect = (real: Outcome, expected: Outcome) => {
    const same = real.ok === expected.ok &&
      (real.ok
        ? expected.ok && (expected.value === undefined || real.value === expected.value)
        : !expected.ok && real.code === expected.code);
    if (!same) fail(`outcome ${JSON.stringify(real)}, model says ${JSON.stringify(expected)}`);
  };

  const usable = () => model.live().filter((object) => !object.outOfScope);

  const operationsTable: [number, () => void][] = [
    [20, () => { // create, sometimes containing or depending on others
      if (model.live().length >= objectsMax) return;
      const p = chance(0.7) ? 0 : 1;
      const contains: ModelObject[] = chance(0.35) ? usable().filter(() => chance(0.15)).slice(0, 3) : [];
      const dependsOn: ModelObject[] = chance(0.25) ? usable().filter(() => chance(0.1)).slice(0, 3) : [];
      const reconstructable = chance(0.3);
      lastOp = `create by ${p} (${contains.length} contained, ${dependsOn.length} dependencies)`;
      const ref = counters[p].create({
        sizeBytes: 8,
        reconstructable,
        contains: contains.map((o) => o.id),
        lineage: dependsOn.map((o) => o.id),
      });
      model.create(p, ref.id, reconstructable, contains, dependsOn);
      held[p].refs.push(ref);
      // Often: the owner drops its own reference to what it just put in the container, so
      // the container alone keeps them, and they go out of scope with it (ordering matters).
      if (contains.length > 0 && chance(0.5)) {
        for (const inner of contains) {
          const owner = inner.owner;
          const index = held[owner].refs.findIndex((other) => other.id === inner.id);
          if (index < 0 || inner.local[owner] !== 1) continue;
          const [dropped] = held[owner].refs.splice(index, 1);
          dropped.release();
          model.release(inner.id, owner);
        }
      }
      if (chance(0.5)) {
        const label = `outOfScope:${ref.id}:${labels++}`;
        const fn = () => void held[p].fired.push(label);
        expect(outcomeOf(() => counters[p].onOutOfScope(ref.id, fn)), model.register(ref.id, p, "outOfScope", label));
        held[p].handlers.set(label, { id: ref.id, kind: "outOfScope", fn });
      }
    }],
    [10, () => { // retain
      const p = chance(0.5) ? 0 : 1;
      const ref = pick(held[p].refs);
      if (!ref) return;
      lastOp = `retain ${ref.id} by ${p}`;
      held[p].refs.push(ref.retain());
      expect({ ok: true }, model.change(ref.id, p, "local", 1));
    }],
    [20, () => { // release
      const p = chance(0.5) ? 0 : 1;
      const index = Math.floor(random() * held[p].refs.length);
      const ref = held[p].refs[index];
      if (!ref) return;
      lastOp = `release ${ref.id} by ${p}`;
      held[p].refs.splice(index, 1);
      ref.release();
      expect({ ok: true }, model.release(ref.id, p));
    }],
    [4, () => { // batch release
      const p = chance(0.5) ? 0 : 1;
      const refs = held[p].refs.filter(() => chance(0.2)).slice(0, 20);
      if (refs.length === 0) return;
      lastOp = `releaseAll of ${refs.length} by ${p}`;
      held[p].refs = held[p].refs.filter((ref) => !refs.includes(ref));
      counters[p].releaseAll(refs);
      expect({ ok: true }, model.batch(refs.map((ref) => ref.id), p, "local", -1));
    }],
    [8, () => { // lend from one participant, borrowed by the other
      const from = chance(0.5) ? 0 : 1;
      const to = 1 - from;
      const index = Math.floor(random() * held[from].refs.length);
      const ref = held[from].refs[index];
      if (!ref) return;
      lastOp = `lend ${ref.id} from ${from} to ${to}`;
      held[from].refs.splice(index, 1);
      const lent: LentRef = ref.lend();
      expect({ ok: true }, model.lend(ref.id, from));
      held[to].refs.push(counters[to].borrow(lent));
      expect({ ok: true }, model.borrow(ref.id, from, to));
      // A lent reference is claimed once.
      expect(outcomeOf(() => counters[to].borrow(lent)), model.borrow(ref.id, from, to));
    }],
    [6, () => { // submitted or lineage references (a lease)
      const p = chance(0.5) ? 0 : 1;
      const kind = chance(0.5) ? "submitted" as const : "lineagePins" as const;
      const targets = model.live().filter(() => chance(0.05)).slice(0, 4);
      if (targets.length === 0) return;
      const ids = targets.map((o) => o.id);
      lastOp = `add ${kind} refs to ${ids.join(",")} by ${p}`;
      const real = outcomeOf(() =>
        kind === "submitted" ? counters[p].addSubmittedRefs(ids) : counters[p].addLineageRefs(ids)
      );
      expect(real, model.batch(ids, p, kind, 1));
      if (real.ok) {
        const lease = real.value as { release(): void };
        held[p].leases.push({ kind, release: () => lease.release(), ids });
      }
    }],
    [6, () => { // release a lease
      const p = chance(0.5) ? 0 : 1;
      const index = Math.floor(random() * held[p].leases.length);
      const lease = held[p].leases[index];
      if (!lease) return;
      lastOp = `release ${lease.kind} refs on ${lease.ids.join(",")} by ${p}`;
      held[p].leases.splice(index, 1);
      lease.release();
      expect({ ok: true }, model.batch(lease.ids, p, lease.kind, -1));
    }],
    [3, () => { // free, by anyone (only the owner may)
      const p = chance(0.5) ? 0 : 1;
      const object = pick([...model.objects.values()]);
      if (!object) return;
      lastOp = `free ${object.id} by ${p}`; // Deleted objects are picked too, until forgotten.
      expect(outcomeOf(() => counters[p].free(object.id)), model.free(object.id, p));
    }],
    [12, () => { // register a handler, by anyone, on any object (deleted ones included)
      const p = chance(0.5) ? 0 : 1;
      const object = pick([...model.objects.values()]);
      if (!object) return;
      const kind = chance(0.7) ? "outOfScope" as const : "deleted" as const;
      const label = `${kind}:${object.id}:${labels++}`;
      lastOp = `register ${label} by ${p}`;
      const fn = () => void held[p].fired.push(label);
      const real = outcomeOf(() =>
        kind === "outOfScope" ? counters[p].onOutOfScope(object.id, fn) : counters[p].onDeleted(object.id, fn)
      );
      const expected = model.register(object.id, p, kind, label);
      expect(real, expected);
      if (real.ok && real.value === true) held[p].handlers.set(label, { id: object.id, kind, fn });
    }],
    [3, () => { // remove a handler
      const p = chance(0.5) ? 0 : 1;
      const label = pick([...held[p].handlers.keys()]);
      if (!label) return;
      const handler = held[p].handlers.get(label)!;
      lastOp = `remove ${label} by ${p}`;
      const real = outcomeOf(() =>
        handler.kind === "outOfScope"
          ? counters[p].offOutOfScope(handler.id, handler.fn)
          : counters[p].offDeleted(handler.id, handler.fn)
      );
      expect(real, model.unregister(handler.id, p, handler.kind, label));
      held[p].handlers.delete(label);
    }],
  ];
  const weights = operationsTable.reduce((total, [weight]) => total + weight, 0);

  const compare = () => {
    for (const object of model.objects.values()) {
      const info = opener.info(object.id);
      if (object.deleted) {
        if (info !== undefined) fail(`object ${object.id} should be deleted`);
        continue;
      }
      if (info === undefined) return fail(`object ${object.id} should be live`);
      const others = [0, 1].filter((p) => p !== object.owner);
      const expected = {
        owner: object.owner,
        localRefs: object.local[object.owner],
        submittedRefs: object.submitted[object.owner],
        borrowedRefs: others.reduce((total, p) => total + object.local[p] + object.submitted[p], 0),
        borrowers: others.filter((p) => object.local[p] + object.submitted[p] > 0).length,
        lentRefs: object.lent[0] + object.lent[1],
        lineageRefs: object.lineagePins[0] + object.lineagePins[1] + object.dependents,
        containedIn: object.containedIn,
        pendingCallbacks: object.onOutOfScope.length,
        pendingDeletedCallbacks: object.onDeleted.length,
        freed: object.freed,
        outOfScope: object.outOfScope,
        reconstructable: object.reconstructable,
      };
      for (const [key, value] of Object.entries(expected)) {
        const real = info[key as keyof typeof info];
        if (real !== value) return fail(`object ${object.id}: ${key} is ${real}, model says ${value}`);
      }
    }
    model.forgetDeleted();
    const live = opener.stats().liveObjects;
    if (live !== model.live().length) fail(`${live} live objects, model says ${model.live().length}`);
    for (const p of [0, 1]) {
      const real = held[p].fired;
      const expected = model.fired[p];
      if (real.length !== expected.length || real.some((label, index) => label !== expected[index])) {
        fail(
          `participant ${p} handlers ran ${JSON.stringify(real.slice(-5))}…, model says ${
            JSON.stringify(expected.slice(-5))
          }…`,
        );
      }
      held[p].fired = [];
      model.fired[p] = [];
      for (const label of real) held[p].handlers.delete(label);
    }
  };

  const settled = async () => {
    // Deliveries run in a later macrotask; wait (bounded) until the model's count arrived.
    const deadline = performance.now() + 2000;
    while (held.some((h, p) => h.fired.length < model.fired[p].length) && performance.now() < deadline) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    await new Promise((resolve) => setImmediate(resolve)); // And one more turn: nothing extra?
  };

  for (step = 0; step < operations && mismatches < 5; step++) {
    let roll = random() * weights;
    for (const [weight, operation] of operationsTable) {
      roll -= weight;
      if (roll >= 0) continue;
      operation();
      break;
    }
    await settled();
    compare();
  }
  t.eq(mismatches, 0, `${step} random operations: refscope and the model agree after every one (seed ${seed})`);

  // The end: every participant lets go; the model and refscope must agree once more.
  lastOp = "everyone releases everything";
  for (const p of [0, 1]) {
    for (const lease of held[p].leases) {
      lease.release();
      model.batch(lease.ids, p, lease.kind, -1);
    }
    for (const ref of held[p].refs) {
      ref.release();
      model.release(ref.id, p);
    }
  }
  await settled();
  compare();
  t.eq(mismatches, 0, "agreement after every reference was released");
  t.eq(model.live().length, 0, "the model has nothing live");
  t.eq(opener.liveObjects, 0, "refscope has nothing live");
  await attached.close();
  await opener.close();
});
