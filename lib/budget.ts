/**
 * A memory budget driven by refscope's handlers: Ray Data's `BlockRefCounter` idea.
 *
 * Bytes are charged to an owner (an operator, a stage, a tenant) when an object is created
 * under it, and given back exactly once when the object goes out of scope or is freed:
 * by the budget's own out-of-scope handler, never by the user remembering to. Producers
 * `await owner.reserve(bytes)` before they create, and so are throttled, in FIFO order,
 * by the owner's limit and the global one.
 *
 * Accounting rules:
 * - An owner's *committed* bytes are its charged objects' bytes (`usedBytes`) plus what
 *   it reserved and has not created yet (`reservedBytes`); the global figures are the sums.
 * - A reservation is granted when it fits both the owner's limit and the global limit, in
 *   the order the reservations were made: the oldest waiter its owner's limit admits goes
 *   first, or nobody does; a waiter held back by its own owner's limit holds back only
 *   that owner's later waiters (owners are isolated from each other).
 * - `track()` charges an object created elsewhere without waiting: it counts towards the
 *   limits (delaying reservations) but is never refused for them.
 *
 * @module
 */
import type { Counter, CreateOptions, Ref, Target } from "./counter.ts";
import { type ObjectId, RefscopeError, typeName } from "./errors.ts";

/** Options for `new MemoryBudget()`. */
export interface BudgetOptions {
  /** The global limit, over every owner: an integer number of bytes, or Infinity (default). */
  limitBytes?: number;
  /**
   * Called on this thread each time an object's charge is given back (after the budget's
   * figures and any reservations it unblocked were updated): for metrics and tracing.
   */
  onRelease?: (release: BudgetRelease) => void;
}

/** Options for `MemoryBudget.owner()`. */
export interface OwnerOptions {
  /** The owner's limit: an integer number of bytes, or Infinity (default: only the global limit applies). */
  limitBytes?: number;
}

/** What `onRelease` is told. */
export interface BudgetRelease {
  /** The object that went out of scope or was freed. */
  readonly id: ObjectId;
  /** The owner it was charged to. */
  readonly owner: string;
  /** The bytes given back. */
  readonly bytes: number;
}

/** Options for `BudgetOwner.reserve()`. */
export interface ReserveOptions {
  /** Cancels the wait: the promise rejects with `signal.reason`, and nothing stays reserved. */
  signal?: AbortSignal;
}

/** Figures of one owner, or of the whole budget. Never negative. */
export interface BudgetFigures {
  /** The limit, in bytes (Infinity for none). */
  readonly limitBytes: number;
  /** Bytes of the live objects charged. */
  readonly usedBytes: number;
  /** Bytes reserved and not yet turned into objects. */
  readonly reservedBytes: number;
  /** The highest `usedBytes + reservedBytes` seen. */
  readonly peakBytes: number;
  /** Objects charged and live. */
  readonly objects: number;
  /** Reservations waiting now. */
  readonly waiting: number;
  /** Reservations that had to wait (granted or cancelled since). */
  readonly waits: number;
  /** Time spent waiting by every reservation that waited, in milliseconds. */
  readonly waitedMs: number;
}

/** `BudgetFigures` of an owner, with its name. */
export interface OwnerFigures extends BudgetFigures {
  /** The owner's name. */
  readonly name: string;
}

/** `BudgetFigures` of the whole budget, and each owner's. */
export interface BudgetStats extends BudgetFigures {
  /** Each owner's figures, in the order the owners were added. */
  readonly owners: readonly OwnerFigures[];
}

/** Mutable figures, for an owner and for the budget as a whole. */
class Account {
  usedBytes = 0;
  reservedBytes = 0;
  peakBytes = 0;
  objects = 0;
  waits = 0;
  waitedMs = 0;

  readonly limitBytes: number;

  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }

  fits(bytes: number): boolean {
    return this.usedBytes + this.reservedBytes + bytes <= this.limitBytes;
  }

  notePeak(): void {
    this.peakBytes = Math.max(this.peakBytes, this.usedBytes + this.reservedBytes);
  }

  figures(waiting: number): BudgetFigures {
    const { limitBytes, usedBytes, reservedBytes, peakBytes, objects, waits, waitedMs } = this;
    return { limitBytes, usedBytes, reservedBytes, peakBytes, objects, waiting, waits, waitedMs };
  }
}

/** A reservation not granted yet. */
interface Waiter {
  readonly owner: BudgetOwner;
  readonly bytes: number;
  readonly sequence: number;
  readonly since: number;
  grant(reservation: Reservation): void;
}

interface Charge {
  readonly owner: BudgetOwner;
  readonly bytes: number;
}

/**
 * The budget's state and rules, shared by its owners and reservations; not exported, so
 * the public classes carry no internal methods.
 */
class Ledger {
  readonly total: Account;
  readonly owners = new Map<string, BudgetOwner>();
  readonly accounts = new Map<BudgetOwner, Account>();
  readonly queues = new Map<BudgetOwner, Waiter[]>();
  readonly charges = new Map<ObjectId, Charge>();
  #sequence = 0;
  /** One handler for every charged object: it finds the charge by id. */
  readonly released = (id: ObjectId) => this.release(id);

  readonly counter: Counter;
  readonly onRelease: ((release: BudgetRelease) => void) | undefined;

  constructor(counter: Counter, limitBytes: number, onRelease: ((release: BudgetRelease) => void) | undefined) {
    this.counter = counter;
    this.onRelease = onRelease;
    this.total = new Account(limitBytes);
  }

  /** The owner's account, then the budget's: every change is made to both. */
  both(owner: BudgetOwner): [Account, Account] {
    return [this.accounts.get(owner)!, this.total];
  }

  /** Queues a reservation, then grants what the limits admit (perhaps it, at once). */
  enqueue(owner: BudgetOwner, bytes: number, grant: (reservation: Reservation) => void): Waiter {
    const waiter: Waiter = { owner, bytes, sequence: this.#sequence++, since: performance.now(), grant };
    this.queues.get(owner)!.push(waiter);
    this.pump();
    return waiter;
  }

  waiting(waiter: Waiter): boolean {
    return this.queues.get(waiter.owner)!.includes(waiter);
  }

  /** Takes a waiter out of line (cancelled, or a `tryReserve` that could not go at once). */
  dequeue(waiter: Waiter): void {
    const queue = this.queues.get(waiter.owner)!;
    queue.splice(queue.indexOf(waiter), 1);
    this.pump(); // Whoever it held back may go now.
  }

  /**
   * Grants what the limits now admit. The oldest waiter whose owner's limit admits it goes
   * first, if the global limit does too; otherwise nobody does (FIFO).
   */
  pump(): void {
    while (true) {
      let first: Waiter | undefined;
      for (const [owner, queue] of this.queues) {
        const head = queue[0];
        if (head === undefined || !this.accounts.get(owner)!.fits(head.bytes)) continue;
        if (first === undefined || head.sequence < first.sequence) first = head;
      }
      if (first === undefined || !this.total.fits(first.bytes)) return;
      this.queues.get(first.owner)!.shift();
      this.reserve(first.owner, first.bytes);
      first.grant(newReservation(first.owner, first.bytes));
    }
  }

  /** Moves `bytes` into (positive) or out of (negative) the reserved figures. */
  reserve(owner: BudgetOwner, bytes: number): void {
    for (const account of this.both(owner)) {
      account.reservedBytes += bytes;
      account.notePeak();
    }
  }

  /** Counts the time a reservation waited (it was granted, or gave up). */
  waited(waiter: Waiter): void {
    const waited = performance.now() - waiter.since;
    for (const account of this.both(waiter.owner)) {
      account.waits++;
      account.waitedMs += waited;
    }
  }

  /** Charges the object to `owner`, taking `reserved` bytes out of its reservation. */
  charge(owner: BudgetOwner, target: Target, bytes: number, reserved: number, what: string): boolean {
    const id = typeof target === "number" ? target : target.id;
    const existing = this.charges.get(id);
    if (existing !== undefined) {
      throw new RefscopeError(
        "INVALID_ARGUMENT",
        `${what}: object ${id} is already charged to "${existing.owner.name}"`,
      );
    }
    // Registered before the charge is counted: if the object is already out of scope (or
    // freed, or deleted) the registration is refused and nothing is charged; if it is
    // accepted, the handler runs later on this thread, after the charge below. So every
    // charge is given back exactly once, however the object's release races this call.
    if (!this.counter.onOutOfScope(target, this.released)) return false;
    this.charges.set(id, { owner, bytes });
    for (const account of this.both(owner)) {
      account.reservedBytes -= reserved;
      account.usedBytes += bytes;
      account.objects++;
      account.notePeak();
    }
    return true;
  }

  release(id: ObjectId): void {
    const charge = this.charges.get(id);
    if (charge === undefined) return; // Not charged here.
    this.charges.delete(id);
    for (const account of this.both(charge.owner)) {
      account.usedBytes -= charge.bytes;
      account.objects--;
    }
    this.pump();
    this.onRelease?.({ id, owner: charge.owner.name, bytes: charge.bytes });
  }
}

// Module-private access between the classes below.
let ledgerOf: (budget: MemoryBudget) => Ledger;
let newReservation: (owner: BudgetOwner, bytes: number) => Reservation;
const constructing = Symbol("constructing");

/**
 * A memory budget over the objects of one counter, kept on this thread (the thread whose
 * objects it charges: their out-of-scope handlers run here).
 */
export class MemoryBudget {
  /** The counter whose objects are charged. */
  readonly counter: Counter;
  readonly #ledger: Ledger;

  static {
    ledgerOf = (budget) => budget.#ledger;
  }

  /** A budget over `counter`'s objects, with a global limit (`options.limitBytes`, default none). */
  constructor(counter: Counter, options: BudgetOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new RefscopeError("INVALID_ARGUMENT", `MemoryBudget: options must be an object, not ${typeName(options)}`);
    }
    if (typeof counter?.onOutOfScope !== "function") {
      throw new RefscopeError("INVALID_ARGUMENT", `MemoryBudget: expected a Counter, got ${typeName(counter)}`);
    }
    if (options.onRelease !== undefined && typeof options.onRelease !== "function") {
      throw new RefscopeError(
        "INVALID_ARGUMENT",
        `MemoryBudget: onRelease must be a function, not ${typeName(options.onRelease)}`,
      );
    }
    this.counter = counter;
    this.#ledger = new Ledger(counter, checkLimit(options.limitBytes, "MemoryBudget"), options.onRelease);
  }

  /** The global limit, in bytes. */
  get limitBytes(): number {
    return this.#ledger.total.limitBytes;
  }

  /** Adds an owner (an operator, a stage, a tenant) with its own limit; names are unique. */
  owner(name: string, options: OwnerOptions = {}): BudgetOwner {
    if (typeof name !== "string" || name === "") {
      throw new RefscopeError("INVALID_ARGUMENT", `owner: the name must be a non-empty string, not ${typeName(name)}`);
    }
    if (typeof options !== "object" || options === null) {
      throw new RefscopeError("INVALID_ARGUMENT", `owner: options must be an object, not ${typeName(options)}`);
    }
    if (this.#ledger.owners.has(name)) {
      throw new RefscopeError("INVALID_ARGUMENT", `owner: this budget already has an owner named "${name}"`);
    }
    const account = new Account(checkLimit(options.limitBytes, `owner "${name}"`));
    const owner = new BudgetOwner(constructing, this, name);
    const ledger = this.#ledger;
    ledger.owners.set(name, owner);
    ledger.accounts.set(owner, account);
    ledger.queues.set(owner, []);
    return owner;
  }

  /** The owners, in the order they were added. */
  get owners(): readonly BudgetOwner[] {
    return [...this.#ledger.owners.values()];
  }

  /** The budget's figures, and each owner's. */
  stats(): BudgetStats {
    const owners = this.owners.map((owner) => owner.stats());
    const waiting = owners.reduce((total, owner) => total + owner.waiting, 0);
    return { ...this.#ledger.total.figures(waiting), owners };
  }
}

/** One owner's share of a `MemoryBudget`: its reservations, its charges, its figures. */
export class BudgetOwner {
  /** The budget this owner belongs to. */
  readonly budget: MemoryBudget;
  /** Its name, unique within the budget. */
  readonly name: string;
  readonly #ledger: Ledger;

  /** Made by `MemoryBudget.owner()`. */
  constructor(key: typeof constructing, budget: MemoryBudget, name: string) {
    if (key !== constructing) throw new TypeError("BudgetOwner is made by MemoryBudget.owner()");
    this.budget = budget;
    this.name = name;
    this.#ledger = ledgerOf(budget);
  }

  /** This owner's limit, in bytes. */
  get limitBytes(): number {
    return this.#ledger.accounts.get(this)!.limitBytes;
  }

  /** Reservations waiting now. */
  get waiting(): number {
    return this.#ledger.queues.get(this)!.length;
  }

  /**
   * Reserves `bytes`, waiting (in FIFO order) until this owner's limit and the global one
   * admit them; then `reservation.create()` turns the reservation into an object charged
   * here. Fails at once, with `LIMIT`, for more than either limit could ever admit.
   */
  reserve(bytes: number, options: ReserveOptions = {}): Promise<Reservation> {
    try {
      const signal = checkSignal(options, "reserve");
      this.#checkBytes(bytes, "reserve");
      signal?.throwIfAborted();
      const { promise, resolve, reject } = Promise.withResolvers<Reservation>();
      let waited = false;
      const onAbort = () => {
        this.#ledger.waited(waiter);
        this.#ledger.dequeue(waiter);
        reject(signal!.reason);
      };
      const waiter = this.#ledger.enqueue(this, bytes, (reservation) => {
        if (waited) {
          this.#ledger.waited(waiter);
          signal?.removeEventListener("abort", onAbort);
        }
        resolve(reservation);
      });
      if (this.#ledger.waiting(waiter)) {
        waited = true;
        signal?.addEventListener("abort", onAbort, { once: true });
      }
      return promise;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Reserves `bytes` if the limits admit them now and no earlier reservation waits for them. */
  tryReserve(bytes: number): Reservation | undefined {
    this.#checkBytes(bytes, "tryReserve");
    let granted: Reservation | undefined;
    const waiter = this.#ledger.enqueue(this, bytes, (reservation) => void (granted = reservation));
    if (granted === undefined) this.#ledger.dequeue(waiter);
    return granted;
  }

  /**
   * Charges an object created elsewhere (its `sizeBytes`) to this owner until it goes out of
   * scope or is freed. Never waits and is never refused for the limits. Returns false, and
   * charges nothing, when the object is already out of scope, freed or deleted.
   */
  track(target: Target): boolean {
    const info = this.budget.counter.info(target);
    if (info === undefined) return false;
    return this.#ledger.charge(this, target, info.sizeBytes, 0, "track");
  }

  /** This owner's figures. */
  stats(): OwnerFigures {
    return { name: this.name, ...this.#ledger.accounts.get(this)!.figures(this.waiting) };
  }

  #checkBytes(bytes: unknown, what: string): asserts bytes is number {
    if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RefscopeError(
        "INVALID_ARGUMENT",
        `${what}: bytes must be an integer in [0, 2^53), not ${typeof bytes === "number" ? bytes : typeName(bytes)}`,
      );
    }
    const own = this.limitBytes;
    const limit = Math.min(own, this.budget.limitBytes);
    if (bytes > limit) {
      const whose = own <= this.budget.limitBytes ? `owner "${this.name}"` : "the budget";
      throw new RefscopeError(
        "LIMIT",
        `${what}: ${bytes} bytes is more than the limit of ${whose} (${limit} bytes); it could never be granted`,
      );
    }
  }
}

/**
 * Bytes granted to an owner, not yet turned into an object. `create()` turns them into one
 * (giving back what it does not use); `release()` (or `using`) gives back an unused
 * reservation, and does nothing once it was used.
 */
export class Reservation implements Disposable {
  /** The owner it was granted to. */
  readonly owner: BudgetOwner;
  /** The bytes granted. */
  readonly bytes: number;
  #open = true;

  static {
    newReservation = (owner, bytes) => new Reservation(constructing, owner, bytes);
  }

  /** Made by `BudgetOwner.reserve()` and `tryReserve()`. */
  constructor(key: typeof constructing, owner: BudgetOwner, bytes: number) {
    if (key !== constructing) throw new TypeError("Reservation is made by BudgetOwner.reserve()");
    this.owner = owner;
    this.bytes = bytes;
  }

  /** False once created from or released. */
  get open(): boolean {
    return this.#open;
  }

  /**
   * Creates the object (`sizeBytes` defaults to the reservation; at most that) and charges it
   * to the owner until it goes out of scope or is freed. What it does not use is given back.
   */
  create(options: CreateOptions = {}): Ref {
    if (!this.#open) {
      throw new RefscopeError("INVALID_ARGUMENT", "create: this reservation was already used or released");
    }
    if (typeof options !== "object" || options === null) {
      throw new RefscopeError("INVALID_ARGUMENT", `create: options must be an object, not ${typeName(options)}`);
    }
    const sizeBytes = options.sizeBytes ?? this.bytes;
    if (typeof sizeBytes === "number" && sizeBytes > this.bytes) {
      throw new RefscopeError("LIMIT", `create: sizeBytes ${sizeBytes} is more than the ${this.bytes} bytes reserved`);
    }
    const ledger = ledgerOf(this.owner.budget);
    const ref = ledger.counter.create({ ...options, sizeBytes });
    // A new object is in scope (the Ref holds it), so the charge cannot be refused.
    ledger.charge(this.owner, ref, sizeBytes, this.bytes, "create");
    this.#open = false;
    ledger.pump(); // What was not used.
    return ref;
  }

  /** Gives the reservation back, unused; does nothing if it was used or released. */
  release(): void {
    if (!this.#open) return;
    this.#open = false;
    const ledger = ledgerOf(this.owner.budget);
    ledger.reserve(this.owner, -this.bytes);
    ledger.pump();
  }

  /** `release()`, for `using`. */
  [Symbol.dispose](): void {
    this.release();
  }
}

function checkLimit(limit: unknown, what: string): number {
  if (limit === undefined) return Infinity;
  if (limit === Infinity || (typeof limit === "number" && Number.isSafeInteger(limit) && limit >= 0)) return limit;
  throw new RefscopeError(
    "INVALID_ARGUMENT",
    `${what}: limitBytes must be an integer in [0, 2^53) or Infinity, not ${
      typeof limit === "number" ? limit : typeName(limit)
    }`,
  );
}

function checkSignal(options: unknown, what: string): AbortSignal | undefined {
  if (typeof options !== "object" || options === null) {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: options must be an object, not ${typeName(options)}`);
  }
  const signal = (options as ReserveOptions).signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new RefscopeError("INVALID_ARGUMENT", `${what}: signal must be an AbortSignal, not ${typeName(signal)}`);
  }
  return signal;
}
