/**
 * The refscope demo: a streaming pipeline throttled by a memory budget.
 *
 * A fast producer creates blocks (real buffers, each an object with its size) and hands
 * them to slower consumers, which process them in parallel async tasks and drop their
 * references when done. Each block is charged to the producer's budget when created and
 * given back by refscope's out-of-scope handler the moment its last reference is gone; the
 * producer waits (`await producer.reserve(bytes)`) whenever the budget is full. The same
 * pipeline then runs without a budget. The report sets the budget's peak of live blocks'
 * bytes beside the process's own peaks, sampled from `process.memoryUsage()` in the same
 * runs: a released block's buffer stays in memory until the garbage collector frees it.
 *
 *   npm run demo                                     Deno, then Bun, then Node, with the defaults
 *   deno run -A tests/demo/pipeline.ts [options]     one runtime (or: bun tests/demo/pipeline.ts,
 *                                                    node tests/demo/pipeline.ts)
 *
 * Options: --blocks N (300), --block-kib MIN[-MAX] (256-1024), --budget-mib N (16),
 * --consumers N (4), --work-ms N (25: a consumer's time per block), --seed N, --no-live,
 * --gc (collect garbage after each quarter of the budget dropped; Deno and Node need gc()
 * exposed, which `npm run demo` does).
 */
import { readFileSync } from "node:fs";
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
  /**
   * Collect garbage from the out-of-scope handler each time blocks of a quarter of the budget
   * have been dropped since the last collection (in both runs), rather than when the runtime
   * chooses to.
   */
  gc: boolean;
}

export const defaults: PipelineOptions = {
  blocks: 300,
  blockKiB: [256, 1024],
  budgetMiB: 16,
  consumers: 4,
  workMs: 25,
  seed: 1,
  live: true,
  gc: false,
};

/** One run of the pipeline. */
export interface RunFigures {
  processed: number;
  seconds: number;
  /**
   * The budget's peak: bytes of live blocks plus bytes reserved for blocks being made. This
   * is the budget's accounting, not memory the process held: see `memory`.
   */
  peakBytes: number;
  producerWaitedMs: number;
  /** Each block's drop → release latency: from the consumer's release to the budget's. */
  latenciesUs: number[];
  /** Checksum of everything the consumers read (both runs must agree). */
  checksum: number;
  /** The process's own memory over the run, sampled. */
  memory: ProcessMemory;
}

/**
 * The process's own memory during one run, from `process.memoryUsage()`: sampled every few
 * milliseconds and after each block is made, when the blocks' bytes have just grown.
 */
export interface ProcessMemory {
  /**
   * The `process.memoryUsage()` field that counts ArrayBuffers' bytes on this runtime, or
   * null where none does (see `arrayBufferField`).
   */
  arrayBuffersField: "arrayBuffers" | "external" | null;
  /** That field when the run started, and its highest sample; null where there is no field. */
  arrayBuffersStartBytes: number | null;
  arrayBuffersPeakBytes: number | null;
  /** The resident set when the run started (what earlier runs left), and its highest sample. */
  rssStartBytes: number;
  rssPeakBytes: number;
  samples: number;
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
  /** Bytes of blocks dropped between the demo's garbage collections (`--gc`), else null. */
  collectEveryBytes: number | null;
  p50Us: number;
  p99Us: number;
}

const MiB = 2 ** 20;

type MemoryUsage = ReturnType<typeof process.memoryUsage>;

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
  const collect = options.gc ? collector(budgetBytes) : undefined;
  const withBudget = await runOnce(options, sizes, budgetBytes, print, collect);
  const withoutBudget = await runOnce(options, sizes, Infinity, print, collect);
  const sorted = [...withBudget.latenciesUs].sort((a, b) => a - b);
  const report: PipelineReport = {
    runtime,
    options,
    budgetBytes,
    largestBlockBytes,
    totalBytes: sizes.reduce((total, size) => total + size, 0),
    withBudget,
    withoutBudget,
    collectEveryBytes: collect === undefined ? null : collect.everyBytes,
    p50Us: percentile(sorted, 0.5),
    p99Us: percentile(sorted, 0.99),
  };
  print(formatReport(report));
  return report;
}

/**
 * One pass of the pipeline; `limitBytes` Infinity is the unthrottled baseline. `collect`, if
 * given, is called after each quarter of the budget's bytes has been dropped.
 */
async function runOnce(
  options: PipelineOptions,
  sizes: readonly number[],
  limitBytes: number,
  print: (text: string) => void,
  collect?: Collector,
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
  let droppedBytes = 0; // since the last collection the demo ran

  const memory = new MemorySampler();
  const sampler = setInterval(() => memory.sample(), 5);
  const live = options.live && process.stdout.isTTY === true;
  const display = new Display(limitBytes, sizes, live, print);
  const redraw = () => display.draw(produced, processed, queue.length, budget.stats(), memory.latest);
  const timer = live ? setInterval(redraw, 100) : undefined;
  const started = performance.now();

  const produce = async () => {
    for (let index = 0; index < sizes.length; index++) {
      const reservation = await producer.reserve(sizes[index]);
      const block = reservation.create();
      const data = new Uint8Array(sizes[index]).fill(index & 0xff);
      payloads.set(block.id, data);
      block.onOutOfScope((id) => {
        // The map held the buffer's last JS reference (this handler holds none, so as not to
        // keep it alive): the garbage collector frees it when it next runs, which the runtime
        // decides unless the demo was asked to (--gc).
        payloads.delete(id);
        if (collect === undefined || (droppedBytes += sizes[index]) < collect.everyBytes) return;
        droppedBytes = 0;
        collect.run();
      });
      memory.sample();
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
  clearInterval(sampler);
  memory.sample();
  redraw();
  display.finish();
  const stats = budget.stats();
  return {
    processed,
    seconds,
    peakBytes: stats.peakBytes,
    producerWaitedMs: stats.waitedMs,
    latenciesUs,
    checksum,
    memory: memory.figures(),
  };
}

/** A garbage collection the demo may run, and after how many bytes dropped. */
interface Collector {
  run: () => void;
  everyBytes: number;
}

/** The runtime's full garbage collection: Bun always has one, Deno and Node only when asked. */
function collector(budgetBytes: number): Collector {
  const global = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  const run = global.Bun ? () => global.Bun!.gc(true) : global.gc;
  if (run === undefined) {
    throw new Error("--gc needs gc() exposed: deno run --v8-flags=--expose-gc, or node --expose-gc");
  }
  // A quarter of the budget: the buffers dropped and not yet collected then add at most that
  // to what the process holds, for four full collections per budget's worth of blocks, each
  // of which stops the JS thread for a few milliseconds.
  return { run, everyBytes: budgetBytes / 4 };
}

/**
 * The `process.memoryUsage()` field that counts ArrayBuffers' bytes. Node's `arrayBuffers`
 * does. Deno 2.9 reports `arrayBuffers` as 0, but V8 counts every ArrayBuffer's bytes in
 * `external` (with about a MiB of Deno's own), and takes a freed one out only at the next
 * collection after the one that freed it. Bun 1.4 reports `arrayBuffers` as 0 and leaves
 * ArrayBuffers out of `external`, so on Bun only the resident set shows the blocks.
 */
export function arrayBufferField(): ProcessMemory["arrayBuffersField"] {
  if ("Bun" in globalThis) return null;
  return "Deno" in globalThis ? "external" : "arrayBuffers";
}

/**
 * `process.memoryUsage()`, with the resident set read from `/proc/self/status` where the
 * runtime reports it as 0 (Bun under qemu-user: there it is the emulator's, which holds the
 * program's memory).
 */
export function memoryUsage(): MemoryUsage {
  const usage = process.memoryUsage();
  if (usage.rss > 0) return usage;
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    return match === null ? usage : { ...usage, rss: Number(match[1]) * 1024 };
  } catch {
    return usage;
  }
}

/** Highest figures of `process.memoryUsage()` over one run; the first sample is the start. */
class MemorySampler {
  readonly #field = arrayBufferField();
  readonly #start = memoryUsage();
  #arrayBuffersPeakBytes = this.#field === null ? 0 : this.#start[this.#field];
  #rssPeakBytes = this.#start.rss;
  #samples = 1;
  /** The last sample, for the progress display. */
  latest = this.#start;

  sample(): void {
    const usage = memoryUsage();
    this.latest = usage;
    if (this.#field !== null) this.#arrayBuffersPeakBytes = Math.max(this.#arrayBuffersPeakBytes, usage[this.#field]);
    this.#rssPeakBytes = Math.max(this.#rssPeakBytes, usage.rss);
    this.#samples++;
  }

  figures(): ProcessMemory {
    const field = this.#field;
    return {
      arrayBuffersField: field,
      arrayBuffersStartBytes: field === null ? null : this.#start[field],
      arrayBuffersPeakBytes: field === null ? null : this.#arrayBuffersPeakBytes,
      rssStartBytes: this.#start.rss,
      rssPeakBytes: this.#rssPeakBytes,
      samples: this.#samples,
    };
  }
}

/**
 * Progress bars per stage, the budget's live blocks against its limit, and the process's
 * memory as last sampled: redrawn in place when live (on a terminal), else drawn once, at the
 * end, as plain text.
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

  draw(
    produced: number,
    processed: number,
    queued: number,
    stats: ReturnType<MemoryBudget["stats"]>,
    usage: MemoryUsage,
  ): void {
    const total = this.sizes.length;
    const heading = Number.isFinite(this.limitBytes) ? `with a ${format(this.limitBytes)} budget` : "without a budget";
    const live = stats.usedBytes + stats.reservedBytes;
    const field = arrayBufferField();
    const lines = [
      heading,
      `  produce  ${bar(produced / total)}  ${produced}/${total} blocks`,
      `  consume  ${bar(processed / total)}  ${processed}/${total} blocks, ${queued} queued`,
      `  budget   ${bar(live / this.#scale)}  ${format(live)} of live blocks, peak ${format(stats.peakBytes)}` +
      (stats.waiting > 0 ? ", producer waiting" : ""),
      `  process  ${field === null ? "" : `${field} ${format(usage[field])}, `}RSS ${format(usage.rss)}`,
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
  const { withBudget: on, withoutBudget: off } = report;
  const row = (label: string, withBudget: string, without = "", note = "") =>
    `  ${label.padEnd(28)}${withBudget.padEnd(24)}${without.padEnd(24)}${note}`.trimEnd();
  const less = (withBudget: number, without: number) => `${((1 - withBudget / without) * 100).toFixed(0)}% less`;
  const seconds = (value: number) => `${value.toFixed(2)} s`;
  const field = on.memory.arrayBuffersField;
  const [peakOn, peakOff] = [on.memory.arrayBuffersPeakBytes ?? 0, off.memory.arrayBuffersPeakBytes ?? 0];
  const arrayBuffers = field === null
    ? row("process arrayBuffers, peak", `not reported by ${report.runtime}`)
    : row(`process ${field}, peak`, format(peakOn), format(peakOff), less(peakOn, peakOff));
  const collection = report.collectEveryBytes === null
    ? "when the runtime chose (--gc: after each quarter of the budget dropped)."
    : `after each ${format(report.collectEveryBytes)} of blocks dropped (--gc).`;
  return [
    `report (${report.runtime})`,
    row("blocks processed", `${on.processed} of ${report.options.blocks} (${format(report.totalBytes)} in all)`),
    row("", `with a ${format(report.budgetBytes)} budget`, "without a budget"),
    row("time", seconds(on.seconds), seconds(off.seconds)),
    row("producer waited", seconds(on.producerWaitedMs / 1000), seconds(off.producerWaitedMs / 1000)),
    row("live block bytes, peak", format(on.peakBytes), format(off.peakBytes), less(on.peakBytes, off.peakBytes)),
    arrayBuffers,
    row("process RSS, peak", format(on.memory.rssPeakBytes), format(off.memory.rssPeakBytes)),
    row("process RSS at the start", format(on.memory.rssStartBytes), format(off.memory.rssStartBytes)),
    row("drop → release", `p50 ${report.p50Us.toFixed(0)} µs, p99 ${report.p99Us.toFixed(0)} µs`) +
    " (the consumer's release to the budget getting the bytes back)",
    "",
    "  live block bytes: the budget's count of the blocks made and not yet released, not memory.",
    "  process: process.memoryUsage(), sampled every 5 ms and after each block made; the RSS at",
    "  the start (what the process held before that run) is shown, not subtracted.",
    "  A released block's buffer is freed only when the garbage collector runs: here",
    `  ${collection}`,
    ...(field === "external"
      ? ["  Deno reports arrayBuffers as 0; external counts them, but drops a freed one a collection late."]
      : []),
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
    if (name === "--gc") {
      options.gc = true;
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
