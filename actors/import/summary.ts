/** What an import did with every row: mapped into events, or skipped for a counted reason. */

/** Counts of an import run. */
export interface ImportSummary {
  /** Data rows read (header excluded). */
  rows: number;
  /** Canonical events produced. */
  mapped: number;
  /** Rows that became part of an event (equals `mapped` when one row makes one event). */
  rowsMapped: number;
  /** Rows skipped, by reason. */
  skipped: Record<string, number>;
}

/** A fresh summary. */
export function newSummary(): ImportSummary {
  return { rows: 0, mapped: 0, rowsMapped: 0, skipped: {} };
}

/** Counts `rows` skipped rows (one by default). */
export function skip(summary: ImportSummary, reason: string, rows = 1): void {
  summary.skipped[reason] = (summary.skipped[reason] ?? 0) + rows;
}
