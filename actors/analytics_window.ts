/**
 * A window of the global analytics, ending at the latest fact's minute boundary, assembled from
 * where its minutes are: the global actor's memory from its oldest minute on (finished minutes stay
 * there one round after they are emitted for storage), and the stored history (`analytics_minutes`,
 * summed by the reader) for the part before it: each minute is read from one place only. Pure: the caller reads the
 * stored sum for `WindowSpan.stored` and passes it in.
 */
import type { GlobalState } from "./global.ts";
import { fromStoredMinute, minuteOf, type StoredMinute, type WindowTotals, windowTotals } from "./rollups.ts";

const MINUTE = 60_000;

/** A window [from, to) in epoch ms, and the part of it that lies before the actor's memory. */
export interface WindowSpan {
  readonly from: number;
  readonly to: number;
  /** The range to read from storage; null when the memory covers the whole window. */
  readonly stored: { readonly from: number; readonly to: number } | null;
}

/** The `minutes`-long window ending at the latest fact's minute boundary; null before any fact. */
export function windowSpan(state: GlobalState, minutes: number): WindowSpan | null {
  if (state.lastEventAt === null) return null;
  const to = minuteOf(state.lastEventAt) + MINUTE;
  const from = to - minutes * MINUTE;
  const memoryFrom = state.memoryFrom ?? from;
  const heldFrom = Math.min(memoryFrom, state.minutes[0]?.minute ?? memoryFrom);
  return { from, to, stored: from < heldFrom ? { from, to: Math.min(to, heldFrom) } : null };
}

/**
 * Totals of the window: the minutes in memory plus `stored`, the sum of the stored minutes of
 * `span.stored` (null when none was read). Active users and sessions are then a sum of minute
 * estimates, an upper bound, as for any window older than the sketches.
 */
export function windowTotalsWithHistory(
  state: GlobalState,
  span: WindowSpan,
  stored: StoredMinute | null,
): WindowTotals {
  if (!stored || !span.stored) return windowTotals(state.minutes, span.from, span.to);
  const before = fromStoredMinute({ ...stored, minute: span.stored.from });
  return windowTotals([before, ...state.minutes], span.from, span.to);
}
