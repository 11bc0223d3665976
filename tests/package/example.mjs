// Run from a scratch project that installed the packed tarballs (see .ci/check-packages):
// imports refscope by package name, with no checkout on the path, under Deno, Bun or Node. It
// does what an application does (objects in containers, a handler per object, a memory
// budget), checks that every handler ran exactly once, and prints one JSON line saying
// which library was loaded.
import process from "node:process";
import { Counter, MemoryBudget, nativeLibrary } from "refscope";

const runtime = "Bun" in globalThis
  ? `bun ${globalThis.Bun.version}`
  : "Deno" in globalThis
  ? `deno ${globalThis.Deno.version.deno}`
  : `node ${process.versions.node}`;
const objects = 301;
const seen = new Map();
let allGone;
const done = new Promise((resolve) => (allGone = resolve));
const gone = (id) => {
  seen.set(id, (seen.get(id) ?? 0) + 1);
  if (seen.size === objects) allGone();
};

await using counter = new Counter();
const budget = new MemoryBudget(counter, { limitBytes: 4096 });
const owner = budget.owner("example");

const parents = [];
for (let i = 0; i < 100; i++) {
  const children = [counter.create(), counter.create()];
  for (const child of children) child.onOutOfScope(gone);
  const parent = counter.create({ contains: children });
  parent.onOutOfScope(gone);
  for (const child of children) child.release(); // the parent keeps them in scope
  parents.push(parent);
}
const reservation = await owner.reserve(1024);
const block = reservation.create();
block.onOutOfScope(gone);
for (const parent of parents) parent.release();
block.release();

// Every release above queued its handlers for the dispatcher: wait (10 s at most) for all.
let timer;
await Promise.race([done, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))]);
clearTimeout(timer);
const twice = [...seen.values()].filter((count) => count !== 1).length;
const freed = budget.stats().usedBytes === 0;

console.log(JSON.stringify({ runtime, library: nativeLibrary().path, handlers: seen.size, twice, freed }));
if (seen.size !== objects || twice !== 0 || !freed) process.exitCode = 1;
