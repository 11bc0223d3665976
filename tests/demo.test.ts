// The README's first command: the pipeline demo runs to completion, the budget holds its
// peak to the budget (plus at most one block), and the report's figures add up.
import { type PipelineOptions, runPipeline } from "./demo/pipeline.ts";
import { runScript, suite, testPath, within } from "./_harness.ts";

const small: PipelineOptions = {
  blocks: 60,
  blockKiB: [32, 96],
  budgetMiB: 0.5,
  consumers: 3,
  workMs: 2,
  seed: 7,
  live: false,
};

suite("demo", async (t) => {
  await t.test("the pipeline processes every block, and the budget bounds its peak", async (t) => {
    const lines: string[] = [];
    const report = await within(runPipeline(small, (text) => void lines.push(text)), 30_000, "the pipeline");
    const { withBudget, withoutBudget } = report;
    t.eq([withBudget.processed, withoutBudget.processed], [60, 60], "every block processed, in both runs");
    t.eq(withBudget.checksum, withoutBudget.checksum, "both runs read the same data");
    t.ok(
      withBudget.peakBytes <= report.budgetBytes + report.largestBlockBytes,
      `peak with the budget ${withBudget.peakBytes} <= budget ${report.budgetBytes} + one block`,
    );
    t.ok(
      withoutBudget.peakBytes > report.budgetBytes,
      `without it the peak (${withoutBudget.peakBytes}) exceeds the budget: the budget did the throttling`,
    );
    t.ok(withoutBudget.peakBytes <= report.totalBytes, "no peak exceeds every block together");
    t.eq(withBudget.latenciesUs.length, 60, "a drop → release latency for every block");
    t.ok(report.p50Us >= 0 && report.p50Us <= report.p99Us, `p50 ${report.p50Us} <= p99 ${report.p99Us} µs`);
    t.ok(withBudget.producerWaitedMs > 0, "the producer was throttled");
    const text = lines.join("");
    for (const heading of ["blocks processed", "peak with the budget", "peak without a budget", "drop → release"]) {
      t.ok(text.includes(heading), `the report shows "${heading}"`);
    }
  });

  await t.test("the command line runs the demo and rejects bad options", (t) => {
    const args = "--blocks 20 --block-kib 16-32 --budget-mib 0.25 --consumers 2 --work-ms 1 --no-live";
    const result = runScript(testPath("demo/pipeline.ts"), {}, 60_000, args.split(" "));
    t.eq(result.status, 0, `exits 0${result.status === 0 ? "" : `: ${result.stderr}`}`);
    t.ok(/blocks processed\s+20 of 20/.test(result.stdout), "and reports every block processed");
    const bad = runScript(testPath("demo/pipeline.ts"), {}, 60_000, ["--blocks", "many"]);
    t.eq(bad.status, 2, "a bad option exits 2");
    t.ok(bad.stderr.includes("--blocks"), "naming the option");
  });
});
