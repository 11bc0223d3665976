/**
 * Introspection: a readable snapshot of a counter's table, like `ray memory`.
 *
 * @module
 */
import type { Core, Holding, ObjectInfo, Participant } from "./core.ts";

/** One object in a snapshot, with the other participants' references on it. */
export interface ObjectRecord extends ObjectInfo {
  /** Borrowers', lenders' and lineage-pinning participants' references. */
  readonly holdings: readonly Holding[];
}

/** Counter-wide figures in a snapshot. */
export interface SnapshotSummary {
  /** Objects in the table. */
  readonly liveObjects: number;
  /** The sum of their sizes. */
  readonly liveBytes: number;
  /** Deliveries waiting in every participant's outbox. */
  readonly pendingDeliveries: number;
  /** This thread's handlers registered and not yet run. */
  readonly pendingHandlers: number;
  /** This thread's handlers that have run. */
  readonly handlersFired: number;
  /** This thread's handlers that threw or rejected. */
  readonly handlerErrors: number;
  /** JS threads attached to the counter. */
  readonly participants: number;
}

/** What `Counter.snapshot()` returns. */
export interface Snapshot {
  /** The participant that took it. */
  readonly participant: number;
  /** Every live object, in table order. */
  readonly objects: readonly ObjectRecord[];
  /** Counter-wide figures. */
  readonly summary: SnapshotSummary;
}

export function takeSnapshot(core: Core): Snapshot {
  const objects = core.objects().map((info): ObjectRecord => {
    const others = info.borrowers > 0 || info.lentRefs > 0 || info.lineageRefs > 0;
    return { ...info, holdings: others ? core.holdings(info.id) : [] };
  });
  const stats = core.stats();
  return {
    participant: core.sink,
    objects,
    summary: {
      liveObjects: stats.liveObjects,
      liveBytes: stats.liveBytes,
      pendingDeliveries: stats.pendingDeliveries,
      pendingHandlers: stats.pendingHandlers,
      handlersFired: stats.handlersFired,
      handlerErrors: stats.handlerErrors,
      participants: stats.participants,
    },
  };
}

function bytes(count: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function who(participant: Participant, self: number): string {
  return participant === self ? `${participant} (this)` : String(participant);
}

function state(record: ObjectRecord): string {
  if (record.outOfScope) return "out of scope, kept by lineage";
  if (record.freed) return "freed";
  return "in scope";
}

/** Renders a snapshot as a table a person can read, one line per object, then a summary. */
export function formatSnapshot(snapshot: Snapshot): string {
  const header = [
    "object id",
    "owner",
    "size",
    "local",
    "submitted",
    "borrowed",
    "lent",
    "lineage",
    "contained in",
    "borrowers",
    "handlers",
    "state",
  ];
  const rows = snapshot.objects.map((record) => {
    const borrowers = record.holdings
      .filter((holding) => holding.participant !== record.owner && holding.localRefs + holding.submittedRefs > 0)
      .map((holding) => who(holding.participant, snapshot.participant));
    return [
      String(record.id),
      who(record.owner, snapshot.participant),
      bytes(record.sizeBytes),
      String(record.localRefs),
      String(record.submittedRefs),
      String(record.borrowedRefs),
      String(record.lentRefs),
      String(record.lineageRefs),
      String(record.containedIn),
      borrowers.length === 0 ? "-" : borrowers.join(", "),
      `${record.pendingCallbacks} + ${record.pendingDeletedCallbacks} deleted`,
      state(record),
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd();
  const s = snapshot.summary;
  return [
    `refscope memory, seen by participant ${snapshot.participant}`,
    line(header),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.map(line),
    "",
    `${s.liveObjects} live objects, ${bytes(s.liveBytes)}; ${s.pendingDeliveries} deliveries pending; ` +
    `${s.participants} participants`,
    `this thread: ${s.handlersFired} handlers fired, ${s.handlerErrors} handler errors, ${s.pendingHandlers} pending`,
  ].join("\n");
}
