// A TypeScript user's program against the installed package's declarations: type-checked
// (not run) by `tsc` and `deno check` in the scratch project (.ci/check-packages).
import { Counter, MemoryBudget, nativeLibrary, type ObjectId, type Ref, RefscopeError } from "refscope";

await using counter = new Counter();
const ref: Ref = counter.create({ sizeBytes: 1 });
ref.onOutOfScope((id: ObjectId) => console.log(id));
const budget = new MemoryBudget(counter, { limitBytes: 1024 });
const path: string = nativeLibrary().path;
// @ts-expect-error: a Ref is not a number (the declarations must keep the types apart)
const wrong: number = ref;
console.log(path, budget.stats().limitBytes, wrong, RefscopeError.name);
