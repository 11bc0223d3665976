/**
 * An executable reference model of refscope's semantics: plain objects and arrays, no
 * cleverness, written from Ray's rules (README, "Semantics") rather than from the Zig code.
 * The random driver in model.test.ts runs the same operations here and on refscope and
 * compares them after every step.
 *
 * Participants are numbered; each object has an owner. "Fired" records, per participant,
 * the labels of its handlers in the order they must run.
 */

export interface ModelObject {
  id: number;
  owner: number;
  reconstructable: boolean;
  /** Per participant: local, submitted-task, lent and lineage references. */
  local: number[];
  submitted: number[];
  lent: number[];
  lineagePins: number[];
  /** Lineage references from objects that depend on this one. */
  dependents: number;
  /** Owned containers in scope that contain this one. */
  containedIn: number;
  /** What this one contains and depends on (released when it goes / is deleted). */
  contains: ModelObject[];
  dependsOn: ModelObject[];
  freed: boolean;
  outOfScope: boolean;
  deleted: boolean;
  /** Registered handlers, in order: [participant, label]. */
  onOutOfScope: [number, string][];
  onDeleted: [number, string][];
}

/** What an operation must do: succeed (with a value), be refused (false), or fail. */
export type Outcome = { ok: true; value?: unknown } | { ok: false; code: string };

const ok = (value?: unknown): Outcome => ({ ok: true, value });
const fail = (code: string): Outcome => ({ ok: false, code });

const sum = (counts: number[]) => counts.reduce((total, count) => total + count, 0);

export class Model {
  /** Objects with an entry, and deleted ones until a comparison has seen them deleted. */
  readonly objects = new Map<number, ModelObject>();
  /** Ids of every object ever deleted (still STALE_ID, not INVALID_ID, for refscope). */
  readonly deletedIds = new Set<number>();
  readonly fired: string[][];

  readonly participants: number;

  constructor(participants: number) {
    this.participants = participants;
    this.fired = Array.from({ length: participants }, () => []);
  }

  /** Forgets deleted objects (once compared as such): comparisons stay proportional to what is live. */
  forgetDeleted(): void {
    for (const [id, object] of this.objects) if (object.deleted) this.objects.delete(id);
  }

  /** Objects with an entry (live, or out of scope but kept by lineage). */
  live(): ModelObject[] {
    return [...this.objects.values()].filter((object) => !object.deleted);
  }

  get(id: number): ModelObject | undefined {
    const object = this.objects.get(id);
    return object && !object.deleted ? object : undefined;
  }

  /** In scope and not deleted: what new references, containers and lineage may name. */
  usable(id: number): ModelObject | undefined {
    const object = this.get(id);
    return object && !object.outOfScope ? object : undefined;
  }

  create(owner: number, id: number, reconstructable: boolean, contains: ModelObject[], dependsOn: ModelObject[]): void {
    const zeros = () => Array.from({ length: this.participants }, () => 0);
    const object: ModelObject = {
      id,
      owner,
      reconstructable,
      local: zeros(),
      submitted: zeros(),
      lent: zeros(),
      lineagePins: zeros(),
      dependents: 0,
      containedIn: 0,
      contains: [...new Set(contains)],
      dependsOn: [...new Set(dependsOn)],
      freed: false,
      outOfScope: false,
      deleted: false,
      onOutOfScope: [],
      onDeleted: [],
    };
    object.local[owner] = 1;
    for (const inner of object.contains) inner.containedIn++;
    for (const dependency of object.dependsOn) dependency.dependents++;
    this.objects.set(id, object);
  }

  inScope(object: ModelObject): boolean {
    const references = sum(object.local) + sum(object.submitted) + sum(object.lent) + object.containedIn;
    const lineage = sum(object.lineagePins) + object.dependents;
    return references > 0 || (!object.reconstructable && lineage > 0);
  }

  /** Ray's DeleteReferenceInternal: contained objects first, lineage before erasure. */
  settle(object: ModelObject): void {
    if (object.deleted) return;
    if (!object.outOfScope) {
      if (this.inScope(object)) return;
      object.outOfScope = true;
      const contained = object.contains;
      object.contains = [];
      for (const inner of contained) {
        inner.containedIn--;
        this.settle(inner);
      }
      this.fire(object.onOutOfScope);
      object.onOutOfScope = [];
    }
    if (sum(object.lineagePins) + object.dependents > 0) return;
    const dependencies = object.dependsOn;
    object.dependsOn = [];
    for (const dependency of dependencies) {
      dependency.dependents--;
      this.settle(dependency);
    }
    object.deleted = true;
    this.deletedIds.add(object.id);
    this.fire(object.onDeleted);
    object.onDeleted = [];
  }

  fire(handlers: [number, string][]): void {
    for (const [participant, label] of handlers) this.fired[participant].push(label);
  }

  /** A change of one count on behalf of `participant` (the owner's, for native code). */
  change(
    id: number,
    participant: number,
    kind: "local" | "submitted" | "lent" | "lineagePins",
    delta: 1 | -1,
  ): Outcome {
    const object = kind === "lineagePins" && delta < 0 ? this.get(id) : this.usable(id);
    if (!object) return fail(this.objects.has(id) || this.deletedIds.has(id) ? "STALE_ID" : "INVALID_ID");
    if (delta < 0 && object[kind][participant] === 0) return fail("NO_REFERENCE");
    object[kind][participant] += delta;
    return ok();
  }

  release(id: number, participant: number): Outcome {
    const outcome = this.change(id, participant, "local", -1);
    if (outcome.ok) this.settle(this.objects.get(id)!);
    return outcome;
  }

  /** One change per id, all or nothing; then every object settles, in order. */
  batch(ids: number[], participant: number, kind: "local" | "submitted" | "lineagePins", delta: 1 | -1): Outcome {
    for (let index = 0; index < ids.length; index++) {
      const outcome = this.change(ids[index], participant, kind, delta);
      if (!outcome.ok) {
        for (const done of ids.slice(0, index)) this.change(done, participant, kind, delta === 1 ? -1 : 1);
        return outcome;
      }
    }
    if (delta < 0) { for (const id of ids) this.settle(this.objects.get(id)!); }
    return ok();
  }

  lend(id: number, participant: number): Outcome {
    const object = this.usable(id);
    if (!object) return fail("STALE_ID");
    if (object.local[participant] === 0) return fail("NO_REFERENCE");
    object.local[participant]--;
    object.lent[participant]++;
    return ok();
  }

  borrow(id: number, lender: number, participant: number): Outcome {
    const object = this.usable(id);
    if (!object) return fail("STALE_ID");
    if (object.lent[lender] === 0) return fail("NO_REFERENCE");
    object.lent[lender]--;
    object.local[participant]++;
    return ok();
  }

  free(id: number, participant: number): Outcome {
    const object = this.get(id);
    if (!object) return fail("STALE_ID");
    if (object.owner !== participant) return fail("NOT_OWNED");
    if (object.freed || object.outOfScope) return ok();
    object.freed = true;
    this.fire(object.onOutOfScope);
    object.onOutOfScope = [];
    return ok();
  }

  register(id: number, participant: number, kind: "outOfScope" | "deleted", label: string): Outcome {
    const object = this.get(id);
    if (!object) return ok(false);
    if (object.owner !== participant) return fail("NOT_OWNED");
    if (kind === "outOfScope" && (object.freed || object.outOfScope)) return ok(false);
    (kind === "outOfScope" ? object.onOutOfScope : object.onDeleted).push([participant, label]);
    return ok(true);
  }

  unregister(id: number, participant: number, kind: "outOfScope" | "deleted", label: string): Outcome {
    const object = this.get(id);
    if (!object) return ok(false);
    if (object.owner !== participant) return fail("NOT_OWNED");
    const list = kind === "outOfScope" ? object.onOutOfScope : object.onDeleted;
    const index = list.findIndex(([, other]) => other === label);
    if (index < 0) return ok(false);
    list.splice(index, 1);
    return ok(true);
  }
}
