/**
 * How the analytics routes read a window: the global actor's minutes (live, else its checkpoint),
 * completed from PostgreSQL's `analytics_minutes` for the part before the actor's memory, and
 * saying so (`fromStorage`, `storage`) so that a client knows where the figures came from.
 */
import { type WindowSpan, windowSpan, windowTotalsWithHistory } from "../actors/analytics_window.ts";
import { globalLogic } from "../actors/global.ts";
import { type WindowTotals, windowTotals } from "../actors/rollups.ts";
import { DatabaseUnavailableError } from "../engine/errors.ts";
import type { ReadState } from "../engine/state_reader.ts";
import type { StoredMinutes } from "../sql/analytics_minutes.ts";

/** Sums the stored minutes in [from, to) (epoch ms). */
export type HistoryReader = (from: number, to: number) => Promise<StoredMinutes>;

/** Which part of a window came from PostgreSQL. */
export interface StorageUse {
  readonly from: string;
  readonly to: string;
  /** Stored minutes found in that range (minutes without any event are not stored). */
  readonly minutes: number;
}

/** A window's totals and, when part of it was read from PostgreSQL, that part. */
export interface AnalyticsWindow {
  readonly totals: WindowTotals;
  readonly storage: StorageUse | null;
}

const MINUTE = 60_000;

/** The `minutes`-long window of the global state `found` (zeros ending at `now` when there is none). */
export async function readAnalyticsWindow(
  found: ReadState | null,
  minutes: number,
  history: HistoryReader,
  now: number,
): Promise<AnalyticsWindow> {
  const state = found ? globalLogic.restore(found.state) : null;
  const span: WindowSpan | null = state ? windowSpan(state, minutes) : null;
  if (!state || !span) return { totals: windowTotals([], now - minutes * MINUTE, now), storage: null };
  if (!span.stored) return { totals: windowTotalsWithHistory(state, span, null), storage: null };
  const { from, to } = span.stored;
  let stored: StoredMinutes;
  try {
    stored = await history(from, to);
  } catch (error) {
    if (error instanceof DatabaseUnavailableError) throw error;
    throw new DatabaseUnavailableError("cannot read the analytics history", { cause: error });
  }
  return {
    totals: windowTotalsWithHistory(state, span, stored.count > 0 ? stored.total : null),
    storage: { from: new Date(from).toISOString(), to: new Date(to).toISOString(), minutes: stored.count },
  };
}

/** The response fields saying where a window came from. */
export function storageFields(window: AnalyticsWindow): { fromStorage: boolean; storage?: StorageUse } {
  return window.storage ? { fromStorage: true, storage: window.storage } : { fromStorage: false };
}
