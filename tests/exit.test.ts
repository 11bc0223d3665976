// Process exit, in child processes, beyond process.test.ts: over a million pending
// deliveries (with failing and chained handlers) are all made before the process exits,
// and a counter that is idle after deliveries from a native thread lets the process exit.
import process from "node:process";
import { emulated, runScript, suite, testPath } from "./_harness.ts";

suite("process exit", async (t) => {
  await t.test(
    "a script ending with 1.1M deliveries pending, some failing, some chained, makes every one before it exits",
    (t) => {
      const result = runScript(testPath("fixtures/pending-many.ts"), {}, 60_000);
      t.eq(result.status, 0, `exits cleanly (stderr: ${JSON.stringify(result.stderr.slice(0, 300))})`);
      t.eq(
        result.stdout.trim(),
        "delivered 1101000, errors 1100",
        `every handler ran, the 1100 failures were reported (${(result.elapsedMs / 1000).toFixed(1)} s)`,
      );
    },
    { timeout: 70_000 },
  );

  await t.test("the main thread ending while a native thread still releases (and wakes it) exits cleanly", (t) => {
    // Each run is a process (slow under an emulator).
    const runs = Number(process.env.REFSCOPE_RACE_ROUNDS || (emulated ? 5 : 30));
    const failures: string[] = [];
    for (let run = 0; run < runs; run++) {
      const endMs = Math.floor(Math.random() * 30);
      const result = runScript(testPath("fixtures/exit-during-wakes.ts"), {}, 20_000, [String(endMs)]);
      if (result.status !== 0) {
        failures.push(`ending at ${endMs} ms: status ${result.status}, ${result.stderr.slice(0, 300)}`);
      }
    }
    t.eq(failures, [], `${runs} runs, each ending 0-30 ms after starting the releases, exit with status 0`);
  }, { timeout: 110_000 });

  await t.test("a counter idle after a native thread's deliveries does not keep the process alive", (t) => {
    const runs = 5;
    const results = Array.from({ length: runs }, () => runScript(testPath("fixtures/idle-after-wake.ts"), {}, 20_000));
    const statuses = results.map((result) => result.status);
    t.ok(
      statuses.every((status) => status === 0),
      `all ${runs} runs exit by themselves with status 0 (got ${statuses})`,
    );
    t.ok(
      results.every((result) => result.stdout.trim() === "delivered 100"),
      `after delivering all 100, never the idle handler (slowest run ${
        Math.max(...results.map((result) => result.elapsedMs)).toFixed(0)
      } ms)`,
    );
  }, { timeout: 110_000 });
});
