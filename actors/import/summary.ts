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
  /** Where each reason first occurred: the record number (header = 1), so that a user can find the row. */
  firstSkipped: Record<string, number>;
}

/** A fresh summary. */
export function newSummary(): ImportSummary {
  return { rows: 0, mapped: 0, rowsMapped: 0, skipped: {}, firstSkipped: {} };
}

/** Counts `rows` skipped rows (one by default), the first of them at `record`. */
export function skip(summary: ImportSummary, reason: string, record: number, rows = 1): void {
  summary.skipped[reason] = (summary.skipped[reason] ?? 0) + rows;
  summary.firstSkipped[reason] ??= record;
}
