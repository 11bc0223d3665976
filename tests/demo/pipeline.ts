/**
 * The refscope demo: a streaming pipeline throttled by a memory budget.
 *
 * A fast producer creates blocks (real buffers, each an object with its size) and hands
 * them to slower consumers, which process them in parallel async tasks and drop their
 * references when done. Each block is charged to the producer's budget when created and
 * given back by refscope's out-of-scope handler the moment its last reference is gone; the
 * producer waits (`await producer.reserve(bytes)`) whenever the budget is full. The same
 * pipeline then runs without a budget, to show the peak memory the budget saved.
 *
 *   npm run demo                                     Deno, then Bun, then Node, with the defaults
 *   deno run -A tests/demo/pipeline.ts [options]     one runtime (or: bun tests/demo/pipeline.ts,
 *                                                    node tests/demo/pipeline.ts)
 *
 * Options: --blocks N (300), --block-kib MIN[-MAX] (256-1024), --budget-mib N (16),
 * --consumers N (4), --work-ms N (25: a consumer's time per block), --seed N, --no-live.
 */
import process from "node:process";
import { setImmediate } from "node:timers";
import { Counter, MemoryBudget, type Ref } from "../../mod.ts";

/** What the pipeline is asked to do. */
export interface PipelineOptions {
  blocks: number;
  /** Block sizes are drawn uniformly from [min, max] KiB. */
  blockKiB: readonly [number, number];
  budgetMiB: number;
  consumers: number;
  workMs: number;
  seed: number;
  /** Redraw progress bars while running (on a terminal). */
  live: boolean;
}

export const defaults: PipelineOptions = {
  blocks: 300,
  blockKiB: [256, 1024],
  budgetMiB: 16,
  consumers: 4,
  workMs: 25,
  seed: 1,
  live: true,
};

/** One run of the pipeline. */
export interface RunFigures {
  processed: number;
  seconds: number;
  /** The budget's peak: bytes of live blocks plus bytes reserved for blocks being made. */
  peakBytes: number;
  producerWaitedMs: number;
  /** Each block's drop → release latency: from the consumer's release to the budget's. */
  latenciesUs: number[];
  /** Checksum of everything the consumers read (both runs must agree). */
  checksum: number;
}

/** What the demo reports. */
export interface PipelineReport {
  runtime: string;
  options: PipelineOptions;
  budgetBytes: number;
  largestBlockBytes: number;
  totalBytes: number;
  withBudget: RunFigures;
  withoutBudget: RunFigures;
  p50Us: number;
  p99Us: number;
}

const MiB = 2 ** 20;

/** Runs the pipeline with and without the budget, and reports. `print` gets each line. */
export async function runPipeline(
  options: PipelineOptions = defaults,
  print: (text: string) => void = (text) => void process.stdout.write(text),
): Promise<PipelineReport> {
  const sizes = blockSizes(options);
  const budgetBytes = Math.round(options.budgetMiB * MiB);
  const largestBlockBytes = Math.max(...sizes);
  if (largestBlockBytes > budgetBytes) {
    throw new Error(`a block of ${format(largestBlockBytes)} can never fit a budget of ${format(budgetBytes)}`);
  }
  const runtime = runtimeName();
  print(
    `refscope pipeline demo on ${runtime}: ${options.blocks} blocks of ${options.blockKiB.join("-")} KiB, ` +
      `${options.consumers} consumers at ${options.workMs} ms a block\n\n`,
  );
  const withBudget = await runOnce(options, sizes, budgetBytes, print);
  const withoutBudget = await runOnce(options, sizes, Infinity, print);
  const sorted = [...withBudget.latenciesUs].sort((a, b) => a - b);
  const report: PipelineReport = {
    runtime,
    options,
    budgetBytes,
    largestBlockBytes,
    totalBytes: sizes.reduce((total, size) => total + size, 0),
    withBudget,
    withoutBudget,
    p50Us: percentile(sorted, 0.5),
    p99Us: percentile(sorted, 0.99),
  };
  print(formatReport(report));
  return report;
}

/** One pass of the pipeline; `limitBytes` Infinity is the unthrottled baseline. */
async function runOnce(
  options: PipelineOptions,
  sizes: readonly number[],
  limitBytes: number,
  print: (text: string) => void,
): Promise<RunFigures> {
  await using counter = new Counter();
  const dropped = new Map<number, number>(); // object id → when its consumer let go
  const latenciesUs: number[] = [];
  const budget = new MemoryBudget(counter, {
    limitBytes,
    onRelease: ({ id }) => {
      const at = dropped.get(id);
      if (at !== undefined) latenciesUs.push((performance.now() - at) * 1000);
      dropped.delete(id);
    },
  });
  const producer = budget.owner("producer");
  const payloads = new Map<number, Uint8Array>(); // the blocks' data, while they are live
  const queue: Ref[] = [];
  const idle: (() => void)[] = []; // consumers waiting for a block
  let produced = 0;
  let processed = 0;
  let checksum = 0;

  const live = options.live && process.stdout.isTTY === true;
  const display = new Display(limitBytes, sizes, live, print);
  const redraw = () => display.draw(produced, processed, queue.length, budget.stats());
  const timer = live ? setInterval(redraw, 100) : undefined;
  const started = performance.now();

  const produce = async () => {
    for (let index = 0; index < sizes.length; index++) {
      const reservation = await producer.reserve(sizes[index]);
      const block = reservation.create();
      const data = new Uint8Array(sizes[index]).fill(index & 0xff);
      payloads.set(block.id, data);
      block.onOutOfScope((id) => void payloads.delete(id)); // the buffer can be collected
      queue.push(block);
      produced++;
      idle.shift()?.();
      // A fast producer, but not a blocking one: let the consumers run between blocks.
      if (index % 4 === 3) await new Promise((resolve) => setImmediate(resolve));
    }
    for (const wake of idle.splice(0)) wake();
  };

  const consume = async () => {
    while (true) {
      const block = queue.shift();
      if (block === undefined) {
        if (produced === sizes.length) return;
        await new Promise<void>((resolve) => idle.push(resolve));
        continue;
      }
      const data = payloads.get(block.id)!;
      for (let offset = 0; offset < data.length; offset += 4096) checksum = (checksum + data[offset]) | 0;
      await new Promise((resolve) => setTimeout(resolve, options.workMs));
      dropped.set(block.id, performance.now());
      block.release(); // the last reference: the budget gets the bytes back
      processed++;
    }
  };

  await Promise.all([produce(), ...Array.from({ length: options.consumers }, consume)]);
  while (budget.stats().usedBytes > 0) await new Promise((resolve) => setImmediate(resolve));
  const seconds = (performance.now() - started) / 1000;
  clearInterval(timer);
  redraw();
  display.finish();
  const stats = budget.stats();
  return { processed, seconds, peakBytes: stats.peakBytes, producerWaitedMs: stats.waitedMs, latenciesUs, checksum };
}

/**
 * Progress bars per stage, and memory against the budget: redrawn in place when live (on a
 * terminal), else drawn once, at the end, as plain text.
 */
class Display {
  #lines = 0;
  readonly #scale: number;

  readonly limitBytes: number;
  readonly sizes: readonly number[];
  readonly live: boolean;
  readonly print: (text: string) => void;

  constructor(limitBytes: number, sizes: readonly number[], live: boolean, print: (text: string) => void) {
    this.limitBytes = limitBytes;
    this.sizes = sizes;
    this.live = live;
    this.print = print;
    // Without a budget, memory is drawn against everything the producer will make.
    this.#scale = Number.isFinite(limitBytes) ? limitBytes : sizes.reduce((total, size) => total + size, 0);
  }

  draw(produced: number, processed: number, queued: number, stats: ReturnType<MemoryBudget["stats"]>): void {
    const total = this.sizes.length;
    const heading = Number.isFinite(this.limitBytes) ? `with a ${format(this.limitBytes)} budget` : "without a budget";
    const memory = stats.usedBytes + stats.reservedBytes;
    const lines = [
      heading,
      `  produce  ${bar(produced / total)}  ${produced}/${total} blocks`,
      `  consume  ${bar(processed / total)}  ${processed}/${total} blocks, ${queued} queued`,
      `  memory   ${bar(memory / this.#scale)}  ${format(memory)} in use, peak ${format(stats.peakBytes)}` +
      (stats.waiting > 0 ? ", producer waiting" : ""),
    ];
    if (!this.live) return this.print(lines.map((line) => `${line}\n`).join(""));
    const up = this.#lines > 0 ? `\x1b[${this.#lines}A` : "";
    this.print(up + lines.map((line) => `\x1b[2K${line}\n`).join(""));
    this.#lines = lines.length;
  }

  finish(): void {
    this.print("\n");
    this.#lines = 0;
  }
}

function bar(fraction: number, width = 30): string {
  const filled = Math.round(Math.min(Math.max(fraction, 0), 1) * width);
  return "█".repeat(filled) + "░".repeat(width - filled);
}

function formatReport(report: PipelineReport): string {
  const { withBudget, withoutBudget } = report;
  const saved = 1 - withBudget.peakBytes / withoutBudget.peakBytes;
  return [
    `report (${report.runtime})`,
    `  blocks processed       ${withBudget.processed} of ${report.options.blocks} (${
      format(report.totalBytes)
    } in all)`,
    `  peak with the budget   ${format(withBudget.peakBytes)} (budget ${format(report.budgetBytes)}), ` +
    `in ${withBudget.seconds.toFixed(2)} s; the producer waited ${(withBudget.producerWaitedMs / 1000).toFixed(2)} s`,
    `  peak without a budget  ${format(withoutBudget.peakBytes)}, in ${withoutBudget.seconds.toFixed(2)} s`,
    `  peak memory saved      ${(saved * 100).toFixed(0)}%`,
    `  drop → release         p50 ${report.p50Us.toFixed(0)} µs, p99 ${report.p99Us.toFixed(0)} µs ` +
    `(the consumer's release to the budget getting the bytes back)`,
    "",
  ].join("\n") + "\n";
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

function format(bytes: number): string {
  return bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Block sizes, in bytes, drawn from a seeded generator so that both runs see the same blocks. */
function blockSizes(options: PipelineOptions): number[] {
  let state = options.seed >>> 0 || 1;
  const random = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const [min, max] = options.blockKiB;
  return Array.from({ length: options.blocks }, () => Math.round((min + random() * (max - min)) * 1024));
}

function runtimeName(): string {
  const global = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
  if (global.Bun) return `Bun ${global.Bun.version}`;
  return global.Deno ? `Deno ${global.Deno.version.deno}` : `Node ${process.versions.node}`;
}

/** Parses the command line (see the top of this file). */
export function parseOptions(args: readonly string[]): PipelineOptions {
  const options = { ...defaults };
  for (let index = 0; index < args.length; index++) {
    const name = args[index];
    if (name === "--no-live") {
      options.live = false;
      continue;
    }
    const value = args[++index];
    const number = Number(value);
    const positive = (what: string) => {
      if (!(number > 0) || !Number.isFinite(number)) throw new Error(`${name}: ${what}, not ${value}`);
      return number;
    };
    switch (name) {
      case "--blocks":
        options.blocks = Math.round(positive("a number of blocks"));
        break;
      case "--block-kib": {
        const [min, max = min] = (value ?? "").split("-").map(Number);
        if (!(min > 0) || !(max >= min)) throw new Error(`--block-kib: MIN or MIN-MAX KiB, not ${value}`);
        options.blockKiB = [min, max];
        break;
      }
      case "--budget-mib":
        options.budgetMiB = positive("a size in MiB");
        break;
      case "--consumers":
        options.consumers = Math.round(positive("a number of consumers"));
        break;
      case "--work-ms":
        options.workMs = positive("milliseconds");
        break;
      case "--seed":
        options.seed = Math.round(positive("a seed"));
        break;
      default:
        throw new Error(`unknown option ${name} (see the top of tests/demo/pipeline.ts)`);
    }
  }
  return options;
}

if (import.meta.main) {
  try {
    await runPipeline(parseOptions(process.argv.slice(2)));
  } catch (error) {
    console.error(`refscope demo: ${(error as Error).message}`);
    process.exit(2);
  }
}
