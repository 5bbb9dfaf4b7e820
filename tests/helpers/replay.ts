/**
 * The runtime's semantics as a plain sequential fold over one partition's records: the reference
 * model of the exactly-once tests. Bundles (engine/fact_bundle.ts) are expanded into their
 * entries, as the runtime does. Per record: decode (undecodable records are skipped, as the DLQ
 * does), advance the partition clock to the record's event time, fire the key's due timers
 * (earliest first, ties by name, `now()` = deadline), handle the message (`now()` = clock), then fire every due
 * timer of the partition. A key fires at most MAX_FIRINGS_PER_KEY timers per call, as in the runtime. No wall-clock advance: tests that use this set CLOCK_IDLE_MS high.
 */
import type { ActorContext, AnyActorLogic, Emitted } from "../../engine/actor.ts";
import { TerminalError } from "../../engine/errors.ts";
import type { LogRecord } from "../../engine/log.ts";
import { expandBundle, isBundle } from "../../engine/fact_bundle.ts";
import { outputId } from "../../engine/output_id.ts";
import { MAX_FIRINGS_PER_KEY } from "../../engine/partition_worker.ts";
import { firesBefore } from "../../engine/timer_table.ts";
import { parseJson } from "../../engine/json_parse.ts";

/** Final states and outputs of one partition. */
export interface PartitionReplay {
  readonly states: Map<string, unknown>;
  readonly outputs: Emitted[];
}

/** Folds `logic` over `records` (one partition, in offset order). */
export async function replayPartition(logic: AnyActorLogic, records: readonly LogRecord[]): Promise<PartitionReplay> {
  const states = new Map<string, unknown>();
  const timers = new Map<string, Map<string, number>>();
  const outputs: Emitted[] = [];
  let clock = 0;
  /** No pending timer is due before this (a lower bound): while the clock has not passed it, no key is scanned. */
  let earliest = Infinity;

  const context = (key: string, now: number, id: (rule: string) => string): ActorContext => ({
    now: () => now,
    emit: (topic, outKey, value) => outputs.push({ topic, key: outKey, value: parseJson(JSON.stringify(value)) }),
    outputId: id,
    setTimer: (name, at) => {
      const t = timers.get(key) ?? new Map<string, number>();
      t.set(name, at);
      timers.set(key, t);
      earliest = Math.min(earliest, at);
    },
    cancelTimer: (name) => {
      timers.get(key)?.delete(name);
      if (timers.get(key)?.size === 0) timers.delete(key);
    },
    timer: (name) => timers.get(key)?.get(name),
  });
  const stateOf = (key: string) => states.has(key) ? states.get(key) : logic.initial(key);
  /** Whether `key` has a timer due before `upTo`: asked without an await, since after a record most keys have none. */
  const hasDue = (key: string, upTo: number) => {
    for (const at of timers.get(key)?.values() ?? []) if (at < upTo) return true;
    return false;
  };

  const fireKey = async (key: string, upTo: number) => {
    for (let fired = 0; fired < MAX_FIRINGS_PER_KEY; fired++) {
      const t = timers.get(key);
      if (!t) return;
      let next: [string, number] | undefined;
      for (const entry of t) if (entry[1] < upTo && (!next || firesBefore(entry, next))) next = entry;
      if (!next) return;
      const [name, at] = next;
      t.delete(name);
      if (t.size === 0) timers.delete(key);
      if (!logic.onTimer) {
        states.set(key, stateOf(key));
        continue;
      }
      const ctx = context(key, at, (rule) => `timer-${logic.kind}-${key}-${name}-${at}-${rule}`);
      states.set(key, await logic.onTimer(stateOf(key), name, ctx));
    }
  };

  const entries = records.flatMap((record) => {
    if (!isBundle(record)) return [record];
    try {
      return expandBundle(record);
    } catch {
      return [];
    }
  });
  for (const record of entries) {
    let message: unknown;
    try {
      if (record.key === null) continue;
      message = logic.decode(record);
    } catch {
      continue;
    }
    const key = record.key;
    clock = Math.max(clock, logic.eventTime(message) || 0);
    await fireKey(key, clock);
    const emittedBefore = outputs.length;
    const ctx = context(key, clock, (rule) => outputId(record, rule));
    try {
      states.set(key, await logic.handle(stateOf(key), message, ctx));
    } catch (error) {
      if (!(error instanceof TerminalError)) throw error;
      outputs.length = emittedBefore;
    }
    if (earliest < clock) {
      for (const dueKey of [...timers.keys()]) if (hasDue(dueKey, clock)) await fireKey(dueKey, clock);
      earliest = Infinity;
      for (const t of timers.values()) for (const at of t.values()) earliest = Math.min(earliest, at);
    }
  }
  return { states, outputs };
}
