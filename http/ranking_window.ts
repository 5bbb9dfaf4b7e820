/**
 * The window a ranking covers: it ends where the analytics windows end (the minute after the
 * global actor's latest event, event time), so top products agree with the funnel and realtime
 * figures next to them; before any event, at the wall clock. The end never passes the last instant
 * PostgreSQL can be asked about (LATEST_TIME_MS): after an event in the last minute of 9999 the
 * minute boundary would be year 10000, which the database refuses (a 503 for ever).
 */
import { LATEST_TIME_MS } from "../actors/events.ts";
import { minuteOf } from "../actors/rollups.ts";
import type { ReadState } from "../engine/state_reader.ts";

const MINUTE = 60_000;

/** A ranking window [from, to) in epoch ms, and what its end was taken from. */
export interface RankingSpan {
  readonly from: number;
  readonly to: number;
  readonly reference: "latestEvent" | "wallClock";
}

/** The `minutes`-long window ending at the minute boundary after the latest event of the global state `found`. */
export function rankingSpan(found: ReadState | null, minutes: number, now: number): RankingSpan {
  const latest = (found?.state as { lastEventAt?: unknown } | undefined)?.lastEventAt;
  if (typeof latest !== "number") return { from: now - minutes * MINUTE, to: now, reference: "wallClock" };
  const to = Math.min(minuteOf(latest) + MINUTE, LATEST_TIME_MS);
  return { from: to - minutes * MINUTE, to, reference: "latestEvent" };
}
