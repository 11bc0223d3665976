// The README's first command: the pipeline demo runs to completion, the budget holds its
// peak to the budget (plus at most one block), the report's figures add up, and it sets the
// process's own memory beside the budget's count, each labelled for what it measures.
import { arrayBufferField, memoryUsage, type PipelineOptions, runPipeline } from "./demo/pipeline.ts";
import { runScript, runtime, suite, testPath, within } from "./_harness.ts";

const small: PipelineOptions = {
  blocks: 60,
  blockKiB: [32, 96],
  budgetMiB: 0.5,
  consumers: 3,
  workMs: 2,
  seed: 7,
  live: false,
  gc: false,
};

const MiB = 2 ** 20;

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
    t.eq(report.collectEveryBytes, null, "without --gc the runtime alone decides when to collect");

    for (const [name, { memory }] of [["with the budget", withBudget], ["without", withoutBudget]] as const) {
      t.eq(memory.arrayBuffersField, arrayBufferField(), `${name}: the figures come from the runtime's field`);
      t.ok(memory.samples >= small.blocks + 2, `${name}: ${memory.samples} samples, one at least per block made`);
      t.ok(
        memory.rssStartBytes > 0 && memory.rssPeakBytes >= memory.rssStartBytes,
        `${name}: RSS peak ${memory.rssPeakBytes} >= RSS at the start ${memory.rssStartBytes} > 0`,
      );
      if (memory.arrayBuffersField === null) {
        t.eq([memory.arrayBuffersStartBytes, memory.arrayBuffersPeakBytes], [null, null], `${name}: no figure`);
        continue;
      }
      // Every block is sampled right after it is made, while its buffer is live.
      t.ok(
        memory.arrayBuffersPeakBytes! >= report.largestBlockBytes &&
          memory.arrayBuffersPeakBytes! >= memory.arrayBuffersStartBytes!,
        `${name}: ${memory.arrayBuffersField} peak ${memory.arrayBuffersPeakBytes} >= the largest block ` +
          `${report.largestBlockBytes} and the start ${memory.arrayBuffersStartBytes}`,
      );
    }

    const text = lines.join("");
    const field = arrayBufferField() ?? "arrayBuffers";
    for (
      const heading of [
        "blocks processed",
        "live block bytes, peak",
        `process ${field}, peak`,
        "process RSS, peak",
        "process RSS at the start",
        "drop → release",
        "the budget's count of the blocks made and not yet released, not memory",
        "freed only when the garbage collector runs",
        "when the runtime chose (--gc: after each quarter of the budget dropped)",
      ]
    ) {
      t.ok(text.includes(heading), `the report shows "${heading}"`);
    }
    t.ok(!text.includes("memory saved"), "and claims no memory saved");
    t.eq(text.includes("not reported by"), arrayBufferField() === null, "it says where no field is reported");
  });

  await t.test("the field the demo reads counts ArrayBuffers on this runtime, and the others do not", (t) => {
    const buffer = new Uint8Array(8 * MiB).fill(1);
    const usage = memoryUsage();
    const field = arrayBufferField();
    t.eq(field, ({ deno: "external", bun: null, node: "arrayBuffers" } as const)[runtime], `${runtime} reads ${field}`);
    if (field !== null) t.ok(usage[field] >= buffer.length, `${field} ${usage[field]} counts a live 8 MiB buffer`);
    // Were these to count it, the demo should read them instead.
    if (field !== "arrayBuffers") {
      t.ok(usage.arrayBuffers < buffer.length, `arrayBuffers ${usage.arrayBuffers} does not`);
    }
    if (field === null) t.ok(usage.external < buffer.length, `nor does external ${usage.external}`);
    t.ok(usage.rss >= buffer.length, `the resident set (${usage.rss}) holds it`);
    return Promise.resolve();
  });

  await t.test("--gc collects after each quarter of the budget dropped, where gc() is exposed", async (t) => {
    const global = globalThis as { gc?: unknown };
    const lines: string[] = [];
    const running = runPipeline({ ...small, gc: true }, (text) => void lines.push(text));
    if (runtime !== "bun" && typeof global.gc !== "function") {
      const error = await running.then(() => undefined, (error: Error) => error);
      t.ok(error?.message.includes("--expose-gc"), `without gc() it says how to expose it: ${error?.message}`);
      return;
    }
    const report = await within(running, 30_000, "the pipeline with --gc");
    t.eq(report.withBudget.processed + report.withoutBudget.processed, 120, "every block processed, in both runs");
    t.eq(report.collectEveryBytes, report.budgetBytes / 4, "a collection after each quarter of the budget");
    t.ok(
      lines.join("").includes(`after each ${(report.budgetBytes / 4 / 1024).toFixed(1)} KiB of blocks dropped (--gc)`),
      "and says so",
    );
  });

  await t.test("the command line runs the demo and rejects bad options", (t) => {
    const args = "--blocks 20 --block-kib 16-32 --budget-mib 0.25 --consumers 2 --work-ms 1 --no-live";
    const result = runScript(testPath("demo/pipeline.ts"), {}, 60_000, args.split(" "));
    t.eq(result.status, 0, `exits 0${result.status === 0 ? "" : `: ${result.stderr}`}`);
    t.ok(/blocks processed\s+20 of 20/.test(result.stdout), "and reports every block processed");
    t.ok(/live block bytes, peak\s+\S+ \S+\s+\S+ \S+\s+\d+% less/.test(result.stdout), "and the budget's count");
    t.ok(/process RSS, peak\s+\S+ MiB\s+\S+ MiB/.test(result.stdout), "and the process's resident set");
    const bad = runScript(testPath("demo/pipeline.ts"), {}, 60_000, ["--blocks", "many"]);
    t.eq(bad.status, 2, "a bad option exits 2");
    t.ok(bad.stderr.includes("--blocks"), "naming the option");
  });
});
