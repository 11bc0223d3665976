// The README's demo runs, and reports every block released with the budget back to zero.
import { runDemo } from "./demo/pipeline.ts";
import { suite, within } from "./_harness.ts";

suite("demo", async (t) => {
  const lines: string[] = [];
  const result = await within(runDemo((line) => void lines.push(line), 6), 10_000, "the demo");
  t.eq(result, { released: 6, budgetBytes: 0, liveObjects: 0 }, "every block released, budget back to zero");
  const outOfScope = lines.filter((line) => line.includes("is out of scope"));
  t.eq(outOfScope.length, 6, "one out-of-scope line per block");
  t.ok(outOfScope[0].includes("block 5"), "the quickest consumer's block went first");
  const finished = lines.findIndex((line) => line.includes("consumer finished block 5"));
  const gone = lines.findIndex((line) => line.includes("block 5 (object"));
  t.ok(finished >= 0 && finished < gone, "a block goes out of scope only after its consumer finished");
});
