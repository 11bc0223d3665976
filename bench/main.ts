/**
 * Runs every refscope benchmark on the current runtime and prints mitata's tables and a
 * summary of figures, or, with `--json`, one JSON object with every figure.
 *
 *   deno task bench        (deno run -A --v8-flags=--expose-gc bench/main.ts)
 *   bun run bench          (bun bench/main.ts)
 *   ... --json             one JSON object, for bench/report.ts
 *   ... --quick            a short smoke run
 */
import { report } from "./lib.ts";
import { memory } from "./memory.ts";
import { notifications } from "./notifications.ts";
import { pipelineLatency } from "./pipeline.ts";
import { rayReleaseTest } from "./ray.ts";
import { referenceOperations } from "./refops.ts";
import { mutatorStall } from "./stall.ts";
import { threadScaling } from "./threads.ts";

await notifications();
await pipelineLatency();
await referenceOperations();
await mutatorStall();
await threadScaling();
await memory();
await rayReleaseTest();
report();
