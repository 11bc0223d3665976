// A Worker's end never crashes the process or costs the counter anything: each shape of
// tests/fixtures/worker-end.ts runs for REFSCOPE_RACE_ROUNDS rounds (200 by default, fewer
// under an emulator) in a child process, with the main thread acting at random offsets
// from 0 to 20 ms around the Worker's end. Before refscope stopped calling into Workers,
// these crashed both runtimes within a few rounds (a wake to a freed isolate).
import process from "node:process";
import { Counter, type LentRef, type ObjectId, RefscopeError } from "../mod.ts";
import { emulated, runScript, suite, testPath, until } from "./_harness.ts";
import { Peer } from "./_workers.ts";

const rounds = Number(process.env.REFSCOPE_RACE_ROUNDS || (emulated ? 20 : 200));
const shapes = ["self-close", "terminate", "terminate-busy", "borrow", "close", "opener"] as const;

interface Report {
  shape: string;
  rounds: number;
  refused: number;
  participants: number;
  liveObjects: number;
  wakersBlocked: number;
  threadsBefore: number;
  threadsAfter: number;
  rssGrowthMiB: number;
}

suite("a Worker's end", async (t) => {
  for (const shape of shapes) {
    await t.test(`${shape}: ${rounds} rounds at random offsets, no crash, nothing left behind`, (t) => {
      const seed = Math.floor(Math.random() * 2 ** 32);
      const result = runScript(testPath("fixtures/worker-end.ts"), {}, 240_000, [shape, String(rounds), String(seed)]);
      const line = result.stdout.trim().split("\n").at(-1) ?? "";
      t.eq(
        result.status,
        0,
        `the process survived (seed ${seed}; stderr: ${JSON.stringify(result.stderr.slice(-600))})`,
      );
      if (result.status !== 0) return;
      const report = JSON.parse(line) as Report;
      t.eq(
        report.rounds,
        rounds,
        `${rounds} rounds ran (${report.refused} borrows or attaches refused: their Worker had ended first)`,
      );
      t.eq(report.participants, 1, "only the main thread still takes part: every Worker's slot was freed");
      t.eq(report.liveObjects, 0, "every object the Workers held or lent was released");
      t.eq(report.wakersBlocked, 0, "no waker is left blocked (Workers have none)");
      t.eq(report.threadsAfter, 0, `no dispatcher or waker thread left (${report.threadsBefore} before the rounds)`);
      t.ok(report.rssGrowthMiB < 256, `resident memory grew by ${report.rssGrowthMiB} MiB, bounded`);
    }, { timeout: 240_000 });
  }

  await t.test("a LentRef kept past its lender's end never claims a later participant's lend", async (t) => {
    const counter = new Counter();
    const shared = counter.create();
    // Worker A borrows the object and lends a reference back; nobody claims it.
    const a = new Peer();
    const participant = await a.call<number>("attach", counter.key);
    const id = await a.call<ObjectId>("borrow", shared.retain().lend());
    await a.call("retain", id);
    const stale = await a.call<LentRef>("lend", id);
    a.terminate();
    await until(() => counter.stats().openSinks === 1, "A's participation to end", 15_000);
    // Worker B gets A's participant number, and lends a reference of its own.
    const b = new Peer();
    t.eq(await b.call<number>("attach", counter.key), participant, "B has A's participant number");
    await b.call("borrow", shared.retain().lend());
    await b.call("retain", id);
    const fresh = await b.call<LentRef>("lend", id);
    t.eq([fresh.lender, fresh.id], [stale.lender, stale.id], "the two LentRefs differ only in generation");
    t.ok(fresh.generation !== stale.generation, "by generation");
    let code: string | undefined;
    try {
      counter.borrow(stale);
    } catch (error) {
      code = error instanceof RefscopeError ? error.code : String(error);
    }
    t.eq(code, "NO_REFERENCE", "A's stale LentRef is refused");
    t.eq(counter.info(id)?.lentRefs, 1, "and B's lend is still there");
    counter.borrow(fresh).release();
    t.eq(counter.info(id)?.lentRefs, 0, "B's LentRef claims B's lend");
    b.terminate();
    await until(() => counter.stats().openSinks === 1, "B's participation to end", 15_000);
    shared.release();
    t.eq(counter.liveObjects, 0, "nothing is left live");
    await counter.close();
  });

  await t.test("a counter at its limit of participants gets LIMIT naming it", async (t) => {
    const counter = new Counter();
    // Participants attached from this very thread: each is a sink, as a Worker's would be.
    const attached = Array.from({ length: 63 }, () => Counter.attach(counter.key));
    t.eq(counter.stats().openSinks, 64, "64 sinks");
    let refused: unknown;
    try {
      Counter.attach(counter.key);
    } catch (error) {
      refused = error;
    }
    t.ok(refused instanceof RefscopeError && refused.code === "LIMIT", "the 65th is refused with LIMIT");
    t.ok(String((refused as Error).message).includes("maximum of 64 sinks"), "naming the limit");
    t.eq((refused as RefscopeError).status, -11, "status REFSCOPE_E_LIMIT_SINKS");
    for (const participant of attached) await participant.close();
    t.eq(counter.stats().openSinks, 1, "their slots are free again");
    await counter.close();
  });

  await t.test("a thread at its limit of counters gets LIMIT naming it, never an abort", async (t) => {
    // Each counter this thread opens takes two of its 128 registrations (its sink, and its
    // end as the counter's opener), with a waker running for its sink.
    const counters: Counter[] = [];
    let refused: unknown;
    try {
      for (let index = 0; index < 100 && refused === undefined; index++) {
        try {
          counters.push(new Counter());
        } catch (error) {
          refused = error;
        }
      }
      t.eq(counters.length, 64, "64 counters opened");
      t.ok(refused instanceof RefscopeError && refused.code === "LIMIT", "the 65th is refused with LIMIT");
      const message = (refused as Error).message;
      t.ok(message.includes("this thread has its maximum of 128 registrations"), `naming the limit: ${message}`);
      t.eq((refused as RefscopeError).status, -12, "status REFSCOPE_E_LIMIT_THREAD");
      let attachRefused: unknown;
      try {
        Counter.attach(counters[0].key);
      } catch (error) {
        attachRefused = error;
      }
      t.ok(attachRefused instanceof RefscopeError && attachRefused.code === "LIMIT", "attaching too");
      t.eq(counters[0].stats().openSinks, 1, "and nothing was opened for it");
    } finally {
      for (const counter of counters) await counter.close();
    }
    const again = new Counter();
    t.eq(again.stats().openSinks, 1, "once they are closed, this thread opens counters again");
    await again.close();
  });
}, 1_500_000);
