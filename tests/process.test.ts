// Whole-process behaviour, in child processes: pending deliveries keep the process alive
// until delivered, an idle counter does not, and a missing library is a clear error.
import { runScript, suite, testPath } from "./_harness.ts";

suite("process", async (t) => {
  await t.test("a delivery pending from a JS release is made before the process exits", (t) => {
    const result = runScript(testPath("fixtures/pending-js.ts"));
    t.eq(result.status, 0, "exits cleanly");
    t.ok(/^delivered \d+$/m.test(result.stdout), `the handler ran (stdout: ${JSON.stringify(result.stdout)})`);
  });

  await t.test("deliveries from a native thread whose wakes are lost are made before the process exits", (t) => {
    const result = runScript(testPath("fixtures/pending-native.ts"));
    t.eq(result.status, 0, "exits cleanly");
    t.ok(result.stdout.includes("released, delivered so far: 0"), "nothing was delivered inside the script");
    t.ok(
      result.stdout.includes("delivered 100"),
      `then all 100 handlers ran (stdout: ${JSON.stringify(result.stdout)})`,
    );
  });

  await t.test("a terminated Worker is never woken: the dispatcher drops what it owed it", (t) => {
    const result = runScript(testPath("fixtures/dead-owner.ts"));
    t.eq(result.status, 0, `exits cleanly (stderr: ${JSON.stringify(result.stderr.slice(0, 300))})`);
    t.eq(result.stdout.trim(), "alive after the owed wake", "and lives past the stalled dispatcher");
  });

  await t.test("an idle counter does not keep the process alive, and exits cleanly", (t) => {
    // Repeated: exiting while the dispatcher thread starts up used to crash Deno about one
    // run in five (it unloaded the library under the thread; see native/src/pin.zig).
    const runs = 20;
    const results = Array.from({ length: runs }, () => runScript(testPath("fixtures/idle.ts"), {}, 20_000));
    const statuses = results.map((result) => result.status);
    t.ok(
      statuses.every((status) => status === 0),
      `all ${runs} runs exit by themselves with status 0 (got ${statuses})`,
    );
    t.ok(results.every((result) => result.stdout.trim() === "idle"), "and no handler ever ran");
  });

  await t.test("a library that cannot be loaded is a RefscopeError naming the path and the fix", (t) => {
    const missing = "/nonexistent/librefscope.so";
    const result = runScript(testPath("fixtures/load-failure.ts"), { REFSCOPE_LIB: missing });
    const report = JSON.parse(result.stdout || "{}");
    t.eq(report.isRefscopeError, true, "a RefscopeError");
    t.eq(report.code, "LIBRARY_NOT_FOUND", "with code LIBRARY_NOT_FOUND");
    t.ok(String(report.message).includes(missing), "naming the path tried");
    t.ok(String(report.message).includes("npm run build"), "and how to build the library");
  });
});
