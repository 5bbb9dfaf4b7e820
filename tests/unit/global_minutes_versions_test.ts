/**
 * The global actor's states are versions sharing their unchanged minutes: after a fact, an older version still reads
 * as it was, every minute the fact did not change is the very same object (the checkpoint writes only changed ones,
 * engine/persisted_parts.ts), and a late fact into a minute long past the sketches counts there like any other.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { AnalyticsFact } from "../../actors/facts.ts";
import { createGlobalLogic, GLOBAL_KEY, type GlobalState } from "../../actors/global.ts";
import { minuteOf, type MinuteRollup } from "../../actors/rollups.ts";
import { domainSettings } from "../../actors/settings.ts";
import { SETTLED_CHUNK } from "../../actors/settled_minutes.ts";
import { contextAt } from "../helpers/global_actor.ts";

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 5, 8, 0, 0);
const logic = createGlobalLogic(domainSettings({ ANALYTICS_RETENTION_MINUTES: 120 }));

/** A page view `n` at `at`. */
function pageView(n: number, at: number): AnalyticsFact {
  return {
    fact: "activity",
    factId: `events-0-${n}-activity`,
    at,
    userId: `u${n % 7}`,
    session: `s${n % 7}`,
    type: "page_viewed",
  };
}

/** Asserts that `after` holds `before`'s minutes, the same objects, but for the one of `changed`. */
function assertShared(before: GlobalState, after: GlobalState, changed: number, what: string): void {
  const previous = new Map<number, MinuteRollup>(before.minutes.map((m) => [m.minute, m]));
  const others = after.minutes.filter((m) => m.minute !== changed);
  assert.equal(others.length, previous.size - (previous.has(changed) ? 1 : 0), `${what}: no minute gone or added`);
  for (const m of others) assert.ok(previous.get(m.minute) === m, `${what}: minute ${m.minute} is not the same object`);
}

Deno.test("a fact replaces its minute only: older states read as they were, the other minutes keep their identity, a late fact counts", () => {
  let state = logic.initial(GLOBAL_KEY);
  let n = 0;
  const handle = (at: number) => {
    const before = state;
    state = logic.handle(state, pageView(n++, at), contextAt(Math.max(at, before.lastEventAt ?? at))) as GlobalState;
    return before;
  };
  // Kept versions (each after its minute's first fact) are not read before the end: a first read then must see what
  // was there when they were returned, not the facts of their minute that came after.
  const kept: { state: GlobalState; minute: number }[] = [];
  for (let m = 0; m < 180; m++) {
    const check = m % 7 === 0 ? () => {} : assertShared;
    handle(T0 + m * MIN);
    if (m % 7 === 0) kept.push({ state, minute: m });
    for (const second of [10, 20]) check(handle(T0 + m * MIN + second * 1000), state, T0 + m * MIN, `minute ${m}`);
    // An hour back: past the sketches (30 minutes), within the retention (120).
    if (m >= 60 && m % 10 === 0) {
      check(handle(T0 + (m - 60) * MIN + 30_000), state, T0 + (m - 60) * MIN, `late into minute ${m - 60}`);
    }
  }
  /** Page views in minute `index` once minute `to` is over: 3, and the late one an hour on. */
  const expected = (index: number, to: number) => 3 + (index % 10 === 0 && index + 60 <= to ? 1 : 0);
  for (const { state: older, minute } of kept) {
    assert.equal(older.minutes.at(-1)!.minute, T0 + minute * MIN, `version after minute ${minute}`);
    for (const m of older.minutes) {
      const index = (m.minute - T0) / MIN;
      const views = index === minute ? 1 : expected(index, minute - 1);
      assert.equal(m.events.page_viewed, views, `version after minute ${minute}'s first fact: minute ${index}`);
    }
  }

  assert.equal(state.tooLate, 0);
  assert.ok(state.minutes.length >= 120, `${state.minutes.length} minutes in memory`);
  for (const m of state.minutes) assert.equal(m.events.page_viewed, expected((m.minute - T0) / MIN, 179));

  // A state restored, or spread by a caller, takes the next fact as the state itself does.
  const next = (from: GlobalState) =>
    logic.persist(logic.handle(from, pageView(n, T0 + 150 * MIN), contextAt(T0 + 180 * MIN)) as GlobalState);
  const once = next(state);
  assert.deepEqual(next(logic.restore(JSON.parse(JSON.stringify(logic.persist(state))))), once);
  assert.deepEqual(next({ ...state, minutes: state.minutes }), once);
});

/** Minute rollups `fn` copies by spreading arrays of them (counted through the array iterator, patched meanwhile). */
function minutesCopied(fn: () => void): number {
  const iterator = Array.prototype[Symbol.iterator];
  let copied = 0;
  Array.prototype[Symbol.iterator] = function (this: unknown[]) {
    const first = this[0];
    if (typeof first === "object" && first !== null && "pageViews" in first) copied += this.length;
    return iterator.call(this);
  };
  try {
    fn();
  } finally {
    Array.prototype[Symbol.iterator] = iterator;
  }
  return copied;
}

Deno.test("a restored, unpacked or spread state with a day of minutes: a fact copies the recent minutes only, not the day", () => {
  const day = createGlobalLogic();
  let state = day.initial(GLOBAL_KEY);
  const minutes = 1500;
  for (let m = 0; m < minutes; m++) {
    state = day.handle(state, pageView(m, T0 + m * MIN), contextAt(T0 + m * MIN)) as GlobalState;
  }
  assert.ok(state.minutes.length > 1400, `${state.minutes.length} minutes in memory`);
  const now = T0 + (minutes - 1) * MIN + 30_000;
  const restored = day.restore(JSON.parse(JSON.stringify(day.persist(state))));
  for (
    const [what, from] of [["live", state], ["restored", restored], ["spread", {
      ...state,
      minutes: state.minutes,
    }]] as const
  ) {
    let after = from;
    const copied = minutesCopied(() => {
      after = day.handle(from, pageView(minutes, now), contextAt(now)) as GlobalState;
    });
    assert.ok(copied <= 40, `${what}: a fact in the latest minute copied ${copied} minutes`);
    // The minutes it did not change are the very objects before it (the parts checkpoint writes none of them again).
    assertShared(from, after, minuteOf(now), what);
    const expected = day.handle(state, pageView(minutes, now), contextAt(now)) as GlobalState;
    assert.deepEqual(day.persist(after), day.persist(expected), `${what}: the same state as the live one's`);
  }
});

Deno.test("a lagging partition's fact for a minute long past the sketches copies a few dozen minutes, not the day", () => {
  const day = createGlobalLogic();
  let state = day.initial(GLOBAL_KEY);
  const minutes = 1500;
  for (let m = 0; m < minutes; m++) {
    state = day.handle(state, pageView(m, T0 + m * MIN), contextAt(T0 + m * MIN)) as GlobalState;
  }
  const now = T0 + (minutes - 1) * MIN + 30_000;
  const restored = day.restore(JSON.parse(JSON.stringify(day.persist(state))));
  for (const [what, from] of [["live", state], ["restored", restored]] as const) {
    // Two and three hours back: past the sketches' half-hour, within the day.
    for (const late of [T0 + (minutes - 120) * MIN + 40_000, T0 + (minutes - 180) * MIN + 50_000]) {
      let after = from;
      const copied = minutesCopied(() => {
        after = day.handle(from, pageView(minutes, late), contextAt(now)) as GlobalState;
      });
      assert.ok(copied <= 150, `${what}: a fact ${(now - late) / MIN | 0} minutes late copied ${copied} minutes`);
      assertShared(from, after, minuteOf(late), what);
      const minute = after.minutes.find((m) => m.minute === minuteOf(late))!;
      assert.equal(minute.events.page_viewed, 2, `${what}: the late fact counts in its minute`);
    }
  }
});

Deno.test("late facts filling every gap of sparse settled minutes count in their own minutes, ascending, and restore the same", () => {
  const day = createGlobalLogic();
  let state = day.initial(GLOBAL_KEY);
  const end = T0 + 1400 * MIN;
  let n = 0;
  // A page view every ten minutes for a day, then one for each minute of the six hours before the sketches' half-hour.
  for (let at = T0; at <= end; at += 10 * MIN) {
    state = day.handle(state, pageView(n++, at), contextAt(at)) as GlobalState;
  }
  for (let at = end - 400 * MIN; at < end - 40 * MIN; at += MIN) {
    state = day.handle(state, pageView(n++, at + 5_000), contextAt(end)) as GlobalState;
  }
  const minutes = state.minutes.map((m) => m.minute);
  assert.deepEqual(minutes, [...new Set(minutes)].sort((a, b) => a - b), "minutes ascending, each once");
  for (const m of state.minutes) {
    const index = (m.minute - T0) / MIN;
    const expected = (index % 10 === 0 ? 1 : 0) + (m.minute >= end - 400 * MIN && m.minute < end - 40 * MIN ? 1 : 0);
    assert.equal(m.events.page_viewed, expected, `minute ${index}`);
  }
  assert.equal(state.facts, n);
  const restored = day.restore(JSON.parse(JSON.stringify(day.persist(state))));
  const next = (from: GlobalState) =>
    day.persist(day.handle(from, pageView(n, end - 200 * MIN + 7_000), contextAt(end)) as GlobalState);
  assert.deepEqual(next(restored), next(state));
});

Deno.test("late facts at the edges of the settled chunks, in their gaps and past the last one count once each, restored or not", () => {
  const day = createGlobalLogic();
  /** A late fact's minute: around a chunk's first one (as a restore cuts them), any minute, or a run filling a gap. */
  type Late = { chunk: number; offset: number } | { minute: number } | { run: number; length: number };
  const late: fc.Arbitrary<Late> = fc.oneof(
    fc.record({ chunk: fc.integer({ min: 0, max: 35 }), offset: fc.integer({ min: -2, max: 2 }) }),
    fc.record({ minute: fc.integer({ min: 0, max: 1_409 }) }),
    fc.record({ run: fc.integer({ min: 0, max: 1_409 }), length: fc.integer({ min: 1, max: 90 }) }),
  );
  fc.assert(
    fc.property(
      // Runs of minutes of the day without a page view (gaps that late facts may fill, growing a chunk past twice its size).
      fc.array(fc.tuple(fc.integer({ min: 0, max: 1_399 }), fc.integer({ min: 1, max: 90 })), { maxLength: 12 }),
      fc.array(late, { minLength: 1, maxLength: 30 }),
      fc.array(fc.nat(), { maxLength: 4 }),
      (gaps, lates, restarts) => {
        const end = T0 + 1_439 * MIN;
        const tally = new Map<number, number>();
        let state = day.initial(GLOBAL_KEY);
        let reference = state;
        let n = 0;
        const send = (at: number, now: number) => {
          const fact = pageView(n++, at);
          state = day.handle(state, fact, contextAt(now)) as GlobalState;
          reference = day.handle(reference, fact, contextAt(now)) as GlobalState;
          tally.set(minuteOf(at), (tally.get(minuteOf(at)) ?? 0) + 1);
        };
        const skipped = new Set(gaps.flatMap(([from, length]) => Array.from({ length }, (_, i) => from + i)));
        for (let m = 0; m < 1_440; m++) if (!skipped.has(m)) send(T0 + m * MIN + 1_000, T0 + m * MIN + 1_000);
        // Restored, the settled minutes are cut into chunks from the first; live, as they settled. Either way a late fact
        // for a chunk's first or last minute, one beside it (perhaps in a gap) or after the last counts in its minute.
        const starts = day.restore(JSON.parse(JSON.stringify(day.persist(state)))).minutes.map((m) => m.minute);
        const restartAt = new Set(restarts.map((r) => r % lates.length));
        const settledTo = end - 31 * MIN;
        lates.forEach((l, i) => {
          const minutes = "run" in l
            ? Array.from({ length: l.length }, (_, k) => T0 + (l.run + k) * MIN)
            : ["minute" in l ? T0 + l.minute * MIN : (starts[l.chunk * SETTLED_CHUNK] ?? T0) + l.offset * MIN];
          for (const minute of minutes) send(Math.max(T0, Math.min(settledTo, minute)) + 7_000, end + 2_000);
          if (restartAt.has(i)) state = day.restore(JSON.parse(JSON.stringify(day.persist(state))));
        });
        const counted = state.minutes.map((m) => [m.minute, m.events.page_viewed ?? 0]);
        assert.deepEqual(
          counted,
          [...tally].sort(([a], [b]) => a - b),
          "each minute once, ascending, every fact in it",
        );
        assert.deepEqual(day.persist(state), day.persist(reference), "restored or not, the same state");
      },
    ),
    { numRuns: 20 },
  );
});
