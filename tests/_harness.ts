/**
 * Shared test helpers. Test files use zora and run unchanged under Deno, Bun and Node; each
 * file is one top-level test whose subtests run one after another (zora would otherwise
 * run them concurrently), and every wait is bounded.
 */
import "./_timeout.ts"; // Before zora: see the file.
import { spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { createTAPReporter, hold, type IAssert, report, test as zoraTest } from "zora";

export type { IAssert };

// zora reports on a timer it sets when it loads; if module loading outlasts that timer, it
// reports zero tests. Report explicitly instead, once the suite is defined.
hold();

/** Runs `body` as the file's one top-level test, with a generous overall bound. */
export function suite(name: string, body: (t: IAssert) => Promise<void>, timeoutMs = 120_000): void {
  zoraTest(name, body, { timeout: timeoutMs });
  void report({ reporter: createTAPReporter() });
}

/** Resolves with `promise`, or rejects after `ms` naming what did not happen. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits until `predicate` holds, checking once per macrotask, for at most `ms`. */
export async function until(predicate: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Lets `turns` macrotasks run. Used only to show that something did NOT happen. */
export async function macrotasks(turns: number): Promise<void> {
  for (let index = 0; index < turns; index++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Keeps the JS thread busy (not yielding) for `ms`, calling `poll` as it spins. */
export function busy(ms: number, poll: () => void = () => {}): void {
  const end = performance.now() + ms;
  while (performance.now() < end) poll();
}

export const runtime: "deno" | "bun" | "node" = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

/**
 * A runtime's arguments to run the script at `path`: on Deno, `denoFlags` (every permission
 * unless told); on Node, without the warning that `node:ffi` is experimental (tests read
 * what scripts print), with `gc()` exposed, as Bun always has it, and with TurboFan
 * compiling on the JS thread: Node 26.10 can abort at exit when a concurrent compile job is
 * in flight (Node's bug, not refscope's: see `tests/fixtures/node-ffi-exit.ts`).
 */
export function runtimeArgs(path: string, denoFlags: readonly string[] = ["-A"]): string[] {
  if (runtime === "deno") return ["run", ...denoFlags, path];
  if (runtime === "node") {
    return ["--disable-warning=ExperimentalWarning", "--expose-gc", "--no-concurrent-recompilation", path];
  }
  return [path];
}

export interface ScriptResult {
  status: number | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/**
 * The command that starts the runtime under test: this process's executable, unless
 * REFSCOPE_TEST_RUNTIME names another. An emulated runtime needs that: under qemu-user,
 * `process.execPath` is an arm64 program that this machine cannot exec by itself.
 */
const runtimeCommand = process.env.REFSCOPE_TEST_RUNTIME || process.execPath;

/** Whether the runtime under test runs in an emulator (tests/run's arm64 stage says so). */
export const emulated = process.env.REFSCOPE_EMULATED === "1";

/** Where a script runs, and with which permissions on Deno, when not as the tests run. */
export interface ScriptPlace {
  /** The working directory, which decides which deno.json or package.json Deno finds. */
  readonly cwd?: string;
  /** Deno's flags before the script, in place of `-A`. */
  readonly denoFlags?: readonly string[];
}

/** Runs a script under the current runtime in a child process, bounded by `timeoutMs`. */
export function runScript(
  path: string,
  env: Record<string, string> = {},
  timeoutMs = 30_000,
  scriptArgs: readonly string[] = [],
  place: ScriptPlace = {},
): ScriptResult {
  const args = [...runtimeArgs(path, place.denoFlags), ...scriptArgs];
  const started = performance.now();
  const result = spawnSync(runtimeCommand, args, {
    encoding: "utf8",
    timeout: timeoutMs,
    cwd: place.cwd,
    env: { ...process.env, ...env },
  });
  return {
    status: result.status,
    stdout: result.stdout ?? "",
    stderr: result.stderr ?? "",
    elapsedMs: performance.now() - started,
  };
}

/** The absolute path of a file next to this one. */
export function testPath(relative: string): string {
  return fileURLToPath(new URL(relative, import.meta.url));
}
