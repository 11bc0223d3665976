/**
 * Introspection: a readable snapshot of a counter's table, like `ray memory`.
 *
 * @module
 */
import type { Core } from "./core.ts";
import type { Holding, ObjectInfo, Sink } from "./types.ts";

/** One object in a snapshot, with the other sinks' references on it. */
export interface ObjectRecord extends ObjectInfo {
  /** Borrowers', lenders' and lineage-pinning sinks' references. */
  readonly holdings: readonly Holding[];
}

/** Counter-wide figures in a snapshot. */
export interface SnapshotSummary {
  /** Objects in the table. */
  readonly liveObjects: number;
  /** The sum of their sizes. */
  readonly liveBytes: number;
  /** Tokens (each a handler to run) waiting in every sink's outbox. */
  readonly pendingTokens: number;
  /** This thread's handlers registered and not yet run. */
  readonly pendingHandlers: number;
  /** This thread's handlers that have run. */
  readonly handlersFired: number;
  /** This thread's handlers that threw or rejected. */
  readonly handlerErrors: number;
  /** Sinks open: JS threads taking part. */
  readonly openSinks: number;
}

/** What `Counter.snapshot()` returns. */
export interface Snapshot {
  /** The sink that took it (this thread's). */
  readonly sink: number;
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
    sink: core.sink,
    objects,
    summary: {
      liveObjects: stats.liveObjects,
      liveBytes: stats.liveBytes,
      pendingTokens: stats.pendingTokens,
      pendingHandlers: stats.pendingHandlers,
      handlersFired: stats.handlersFired,
      handlerErrors: stats.handlerErrors,
      openSinks: stats.openSinks,
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

function who(sink: Sink, self: number): string {
  return sink === self ? `${sink} (this)` : String(sink);
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
      .filter((holding) => holding.sink !== record.owner && holding.localRefs + holding.submittedRefs > 0)
      .map((holding) => who(holding.sink, snapshot.sink));
    return [
      String(record.id),
      who(record.owner, snapshot.sink),
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
    `refscope memory, seen by sink ${snapshot.sink}`,
    line(header),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.map(line),
    "",
    `${s.liveObjects} live objects, ${bytes(s.liveBytes)}; ${s.pendingTokens} tokens pending; ` +
    `${s.openSinks} sinks open`,
    `this thread: ${s.handlersFired} handlers fired, ${s.handlerErrors} handler errors, ${s.pendingHandlers} pending`,
  ].join("\n");
}
