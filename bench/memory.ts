/**
 * Benchmark 6, memory: native bytes per live object and per registered handler, and the
 * resident set over many object lifetimes, which must stay flat.
 */
import { bench } from "mitata";
import { Counter, type Ref } from "../mod.ts";
import { gc, log, measure, quick, record, residentBytes } from "./lib.ts";

const live = quick ? 100_000 : 1_000_000;
const lifetimes = quick ? 1_000_000 : 10_000_000;
const batch = 10_000;

export async function memory(): Promise<void> {
  log("\n== 6. memory");
  const counter = new Counter();
  const empty = counter.stats().memoryBytes;
  const refs = Array.from({ length: live }, () => counter.create());
  const withObjects = counter.stats().memoryBytes;
  for (const ref of refs) ref.onOutOfScope(() => {});
  const withHandlers = counter.stats().memoryBytes;
  counter.releaseAll(refs);
  await new Promise((resolve) => setTimeout(resolve, 10));
  record({
    name: "native bytes per live object",
    value: (withObjects - empty) / live,
    unit: "bytes",
    target: { text: "≤ 64", met: (withObjects - empty) / live <= 64 },
  });
  record({ name: "native bytes per registered handler", value: (withHandlers - withObjects) / live, unit: "bytes" });

  // Many lifetimes: create, register, release, deliver; the resident set is sampled after
  // each tenth, from the end of the third (the heaps warm up first) on.
  let fired = 0;
  const handler = () => void fired++;
  const samples: number[] = [];
  const nativeSamples: number[] = [];
  const lifetimeRound = async () => {
    const round: Ref[] = new Array(batch);
    for (let index = 0; index < batch; index++) {
      const ref = counter.create({ sizeBytes: 64 });
      ref.onOutOfScope(handler);
      round[index] = ref;
    }
    const target = fired + batch;
    counter.releaseAll(round);
    while (fired < target) await new Promise((resolve) => setTimeout(resolve, 0));
  };
  for (let done = 0; done < lifetimes; done += batch) {
    await lifetimeRound();
    if ((done + batch) % (lifetimes / 10) === 0 && done + batch >= (3 * lifetimes) / 10) {
      gc();
      samples.push(residentBytes());
      nativeSamples.push(counter.stats().memoryBytes);
    }
  }
  const first = samples[0];
  const drift = Math.max(...samples.map((sample) => Math.abs(sample - first) / first));
  record({
    name: `resident memory drift over ${lifetimes} lifetimes`,
    value: drift * 100,
    unit: "%",
    target: { text: "≤ 5%", met: drift <= 0.05 },
  });
  record({ name: "resident memory after the warm-up", value: first / 2 ** 20, unit: "MiB" });
  // The library's own allocations, which the resident set includes along with the JS
  // heap (whose size the engine decides, and varies from run to run).
  const nativeFirst = nativeSamples[0];
  const nativeDrift = Math.max(...nativeSamples.map((sample) => Math.abs(sample - nativeFirst) / nativeFirst));
  record({
    name: `native memory drift over ${lifetimes} lifetimes (stats().memoryBytes)`,
    value: nativeDrift * 100,
    unit: "%",
    target: { text: "0%", met: nativeDrift === 0 },
  });

  bench(`${batch} lifetimes: create, register, release, deliver`, async () => {
    await lifetimeRound();
  });
  await measure();
  await counter.close();
}
