// deno-lint-ignore-file no-console
/**
 * `deno task bench compare --base DIR [--events N] [--users N] [--products N] [--spacing-ms N]
 * [--rounds N] [--restored-minutes N [--ahead-minutes N]]`: the domain logic of another checkout of this repository (DIR, e.g. `git worktree add DIR <commit>`)
 * against this one's, per actor kind, in CPU time and bytes allocated; it needs no services (`deno run -A bench/main.ts compare` runs it
 * without them). The records each kind receives in one reference
 * fold of the engine benchmark's input are replayed through either side's `decode` + `handle` alone (emit a no-op,
 * timers not fired), the sides alternating round by round in one process. `bench domain` times calls by the wall
 * clock, which on a shared VM under load counts other processes' turns; the CPU time of a whole replay does not, so
 * changes of a few percent show here (the same code on both sides: medians within ±2% in one run, up to 7% in
 * another). With `--restored-minutes N` the global actor starts from a state restored (persisted, JSON, restored by
 * each side's own logic) holding N minutes of page views up to the input's first minute, as after an activation from
 * PostgreSQL or an unpack; `--ahead-minutes M` ends them M minutes after it, so that the input is a partition lagging
 * M minutes behind the latest fact.
 */
import process from "node:process";
import v8 from "node:v8";
import type { ActorContext, AnyActorLogic } from "../engine/actor.ts";
import type { LogRecord } from "../engine/log.ts";
import { createDomainLogics, type DomainLogics } from "../actors/domain.ts";
import type { AnalyticsFact } from "../actors/facts.ts";
import { minuteOf } from "../actors/rollups.ts";
import { fold } from "../tests/helpers/fold.ts";
import { benchEvent, DEFAULT_PRODUCTS, DEFAULT_SPACING_MS, flag, machine } from "./workload.ts";

const KINDS = ["user", "product", "global"] as const;
type Kind = typeof KINDS[number];

/** V8's count of bytes allocated so far (Deno's typings of `node:v8` do not list it). */
const allocated = () => (v8.getHeapStatistics() as unknown as { total_allocated_bytes: number }).total_allocated_bytes;

/**
 * CPU µs and bytes allocated per message of `records` through `logic`, states kept per key (from `start`'s, or the
 * initial one), the clock the largest event time so far. Bytes do not move with other processes' load, as CPU does.
 */
function replay(logic: AnyActorLogic, records: readonly LogRecord[], start?: unknown): [number, number] {
  const states = new Map<string, unknown>();
  if (start !== undefined) states.set(records[0]?.key ?? "", start);
  let clock = 0;
  let current = records[0];
  const ctx: ActorContext = {
    now: () => clock,
    emit: () => {},
    outputId: (rule) => `${current.topic}-${current.partition}-${current.offset}-${rule}`,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };
  const before = allocated();
  const started = process.cpuUsage();
  for (const record of records) {
    current = record;
    const message = logic.decode(record);
    clock = Math.max(clock, logic.eventTime(message) || 0);
    const key = record.key ?? "";
    states.set(key, logic.handle(states.get(key) ?? logic.initial(key), message, ctx));
  }
  const used = process.cpuUsage(started);
  return [(used.user + used.system) / records.length, (allocated() - before) / records.length];
}

/** A page view fact for the global actor at `at` (what a user actor emits for one). */
function pageView(n: number, at: number): AnalyticsFact {
  return {
    fact: "activity",
    factId: `restored-${n}-activity`,
    at,
    userId: `u${n}`,
    session: `s${n}`,
    type: "page_viewed",
  };
}

/**
 * The global state `logic` restores after holding `minutes` minutes of page views (three each) up to the minute of
 * `until`, as a checkpoint's persisted form (JSON) gives it back at an activation or an unpack.
 */
function restoredDay(logic: AnyActorLogic, minutes: number, until: number): unknown {
  const ctx: ActorContext = {
    now: () => until,
    emit: () => {},
    outputId: (rule) => `restored-${rule}`,
    setTimer: () => {},
    cancelTimer: () => {},
    timer: () => undefined,
  };
  let state = logic.initial("global");
  for (let m = minutes - 1, n = 0; m >= 0; m--) {
    for (const second of [0, 20, 40]) {
      state = logic.handle(state, pageView(n++, minuteOf(until) - m * 60_000 + second * 1000), ctx);
    }
  }
  return logic.restore(JSON.parse(JSON.stringify(logic.persist(state))));
}

/** The median of `values`. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

/** Runs the comparison and prints per kind the base's and this tree's CPU µs per message. */
export async function run(args: string[]): Promise<void> {
  const baseAt = args.indexOf("--base");
  if (baseAt < 0 || !args[baseAt + 1]) throw new Error("--base needs the directory of the checkout to compare with");
  const baseDir = new URL(`${args[baseAt + 1].replace(/\/$/, "")}/`, `file://${Deno.cwd()}/`);
  const events = flag(args, "events", 50_000);
  const users = flag(args, "users", events / 10);
  const products = flag(args, "products", DEFAULT_PRODUCTS);
  const spacingMs = flag(args, "spacing-ms", DEFAULT_SPACING_MS);
  const rounds = flag(args, "rounds", 10);
  const restoredMinutes = flag(args, "restored-minutes", 0);
  const aheadMinutes = flag(args, "ahead-minutes", 0);
  const input = Array.from({ length: events }, (_, n) => benchEvent(n, users, products, spacingMs));

  // The records each kind receives, captured from this tree's fold (the input and its outputs are the same on both).
  const records: Record<Kind, LogRecord[]> = { user: [], product: [], global: [] };
  const plain = createDomainLogics();
  const capturing = (kind: Kind): AnyActorLogic => ({
    ...plain[kind] as AnyActorLogic,
    decode(record) {
      records[kind].push({ ...record, value: record.value?.slice() ?? null });
      return (plain[kind] as AnyActorLogic).decode(record);
    },
  });
  await fold(input, {
    logics: { user: capturing("user"), product: capturing("product"), global: capturing("global") },
  });

  const base: DomainLogics = (await import(new URL("actors/domain.ts", baseDir).href)).createDomainLogics();
  // The base's handlers go through the same fold, so that both sides' compiled code has seen the same calls.
  await fold(input, { logics: base });
  const sides = { base, current: createDomainLogics() };
  // Each side's global actor starts from its own restored day, if asked: the input's first fact's minute, or later.
  const first = Math.min(...records.global.map((r) => plain.global.eventTime(plain.global.decode(r)) || Infinity));
  const starts: Record<keyof typeof sides, Partial<Record<Kind, unknown>>> = { base: {}, current: {} };
  if (restoredMinutes > 0) {
    for (const side of ["base", "current"] as const) {
      starts[side].global = restoredDay(
        sides[side].global as AnyActorLogic,
        restoredMinutes,
        first + aheadMinutes * 60_000,
      );
    }
  }
  for (const kind of KINDS) {
    for (const [name, side] of Object.entries(sides) as [keyof typeof sides, DomainLogics][]) {
      replay(side[kind] as AnyActorLogic, records[kind].slice(0, 5_000), starts[name][kind]);
    }
  }
  const spent: Record<string, number[]> = {};
  const bytes: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (["base", "current"] as const) : (["current", "base"] as const);
    for (const kind of KINDS) {
      for (const side of order) {
        const [cpu, allocatedBytes] = replay(sides[side][kind], records[kind], starts[side][kind]);
        (spent[`${kind} ${side}`] ??= []).push(cpu);
        (bytes[`${kind} ${side}`] ??= []).push(allocatedBytes);
      }
    }
  }

  console.log(`\nmachine: ${await machine()}`);
  console.log(
    `command: deno task bench compare --base ${
      args[baseAt + 1]
    } --events ${events} --users ${users} --products ${products} --spacing-ms ${spacingMs} --rounds ${rounds}${
      restoredMinutes > 0 ? ` --restored-minutes ${restoredMinutes} --ahead-minutes ${aheadMinutes}` : ""
    }`,
  );
  console.log(
    "kind      messages   base CPU µs/msg (range)   this CPU µs/msg (range)   this/base (median of rounds)" +
      "   bytes allocated/msg base → this (range)",
  );
  const range = (xs: number[]) =>
    `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
  const bytesRange = (xs: number[]) =>
    `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
  for (const kind of KINDS) {
    const before = spent[`${kind} base`];
    const after = spent[`${kind} current`];
    console.log(
      [
        kind.padEnd(8),
        String(records[kind].length).padStart(8),
        range(before).padStart(25),
        range(after).padStart(25),
        median(before.map((b, i) => after[i] / b)).toFixed(3).padStart(30),
        `${bytesRange(bytes[`${kind} base`])} → ${bytesRange(bytes[`${kind} current`])}`.padStart(44),
      ].join(" "),
    );
  }
}
