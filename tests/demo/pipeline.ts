/**
 * The refscope demo: a tiny data pipeline.
 *
 * A producer creates blocks (objects with a size) and charges them to a memory budget. Each
 * block is handed to an async consumer, which holds a submitted-task reference while it
 * works; the producer drops its own reference at once. When a consumer finishes, its
 * block's last reference is gone, and the block's out-of-scope handler gives the bytes back
 * to the budget: exactly once, on this thread, after the release returned.
 *
 * Run it with `npm run demo` (Deno and Bun), or `deno run -A tests/demo/pipeline.ts` /
 * `bun tests/demo/pipeline.ts`.
 */
import { Counter } from "../../mod.ts";

/** What the demo saw, for its test. */
export interface DemoResult {
  released: number;
  budgetBytes: number;
  liveObjects: number;
}

/** Runs the pipeline, logging each step through `log`. */
export async function runDemo(log: (line: string) => void = console.log, blocks = 6): Promise<DemoResult> {
  await using counter = new Counter();
  let budgetBytes = 0;
  let released = 0;
  const allReleased = Promise.withResolvers<void>();
  const consumers: Promise<void>[] = [];

  for (let index = 0; index < blocks; index++) {
    const sizeBytes = (index + 1) * 1024;
    using block = counter.create({ sizeBytes });
    budgetBytes += sizeBytes;
    log(`produced block ${index}: ${sizeBytes} bytes (budget now ${budgetBytes} bytes)`);

    block.onOutOfScope((id) => {
      budgetBytes -= sizeBytes;
      released++;
      log(`  block ${index} (object ${id}) is out of scope: ${sizeBytes} bytes back (budget now ${budgetBytes} bytes)`);
      if (released === blocks) allReleased.resolve();
    });

    // Later blocks are quicker to process, so they go out of scope first.
    const workMs = (blocks - index) * 5;
    consumers.push(counter.runTask([block], async () => {
      await new Promise((resolve) => setTimeout(resolve, workMs));
      log(`consumer finished block ${index} after ${workMs} ms`);
    }));
    // `using` drops the producer's reference here; the consumer's task keeps the block alive.
  }

  await Promise.all(consumers);
  await allReleased.promise;
  const { liveObjects } = counter.stats();
  log(`all ${released} blocks released; budget ${budgetBytes} bytes; live objects ${liveObjects}`);
  return { released, budgetBytes, liveObjects };
}

if (import.meta.main) {
  const runtime = "Bun" in globalThis ? "Bun" : "Deno";
  console.log(`refscope demo on ${runtime}`);
  await runDemo();
}
