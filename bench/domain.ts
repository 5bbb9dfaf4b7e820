// deno-lint-ignore-file no-console
/**
 * `deno task bench domain [--events N] [--users N] [--products N]`: what the domain logic costs apart from the engine,
 * per actor kind: decoding and handling per message, with the outputs' JSON round trip in `ctx.emit` counted apart as
 * "emit" (the engine serialises outputs at emit too, and decodes them where they are consumed); then what a checkpoint
 * pays per dirty actor (persist + JSON) and a reactivation (parse + restore). Same input as `bench engine`, folded by
 * the reference model (tests/helpers/fold.ts) with every logic call timed. Needs no services: compare domain changes
 * here, where runs vary less than the engine's.
 */
import type { ActorContext, ActorLogic } from "../engine/actor.ts";
import { parseJson } from "../engine/json_parse.ts";
import { createDomainLogics, type DomainLogics } from "../actors/domain.ts";
import { fold } from "../tests/helpers/fold.ts";
import { benchEvent, DEFAULT_PRODUCTS, flag, machine } from "./workload.ts";

/** Events folded before the measured run, so that V8 has compiled the handlers. */
const WARM_UP_EVENTS = 20_000;

/** Time spent in one kind's logic, in ms, and how many calls. */
interface Spent {
  decodeMs: number;
  /** Handling, without the time inside `ctx.emit` (the fold's JSON round trip of each output). */
  handleMs: number;
  emitMs: number;
  messages: number;
  timers: number;
}

/** `ctx` with the time spent in its `emit` counted into `spent.emitMs`. */
function timedContext(ctx: ActorContext, spent: Spent): ActorContext {
  return {
    ...ctx,
    emit(topic, key, value) {
      const started = performance.now();
      ctx.emit(topic, key, value);
      spent.emitMs += performance.now() - started;
    },
  };
}

/** `logic` with its decode, handle and onTimer calls timed into `spent`. */
function timed<S, M>(logic: ActorLogic<S, M>, spent: Spent): ActorLogic<S, M> {
  const onTimer = logic.onTimer;
  return {
    ...logic,
    decode(record) {
      const started = performance.now();
      const message = logic.decode(record);
      spent.decodeMs += performance.now() - started;
      return message;
    },
    handle(state, message, ctx) {
      const context = timedContext(ctx, spent);
      const emitted = spent.emitMs;
      const started = performance.now();
      const next = logic.handle(state, message, context);
      spent.handleMs += performance.now() - started - (spent.emitMs - emitted);
      spent.messages++;
      return next;
    },
    ...(onTimer
      ? {
        onTimer(state: S, name: string, ctx: Parameters<typeof onTimer>[2]) {
          const context = timedContext(ctx, spent);
          const emitted = spent.emitMs;
          const started = performance.now();
          const next = onTimer.call(logic, state, name, context);
          spent.handleMs += performance.now() - started - (spent.emitMs - emitted);
          spent.timers++;
          return next;
        },
      }
      : {}),
  };
}

/** Persist + JSON.stringify, then parse + restore, of every state; per actor in µs and bytes. */
function checkpointCost<S>(logic: ActorLogic<S, unknown>, states: Iterable<S>) {
  let persistMs = 0, restoreMs = 0, bytes = 0, actors = 0;
  for (const state of states) {
    let started = performance.now();
    const text = JSON.stringify(logic.persist(state));
    persistMs += performance.now() - started;
    started = performance.now();
    logic.restore(parseJson(text));
    restoreMs += performance.now() - started;
    bytes += text.length;
    actors++;
  }
  const per = (x: number) => actors === 0 ? 0 : x / actors;
  return { actors, persistMicros: 1000 * per(persistMs), restoreMicros: 1000 * per(restoreMs), bytes: per(bytes) };
}

/** Runs the benchmark and prints its figures. */
export async function run(args: string[]): Promise<void> {
  const events = flag(args, "events", 200_000);
  const users = flag(args, "users", 20_000);
  const products = flag(args, "products", DEFAULT_PRODUCTS);
  const input = Array.from({ length: events }, (_, n) => benchEvent(n, users, products));

  await fold(input.slice(0, Math.min(events, WARM_UP_EVENTS)));
  const plain = createDomainLogics();
  const spent: Record<keyof DomainLogics, Spent> = {
    user: { decodeMs: 0, handleMs: 0, emitMs: 0, messages: 0, timers: 0 },
    product: { decodeMs: 0, handleMs: 0, emitMs: 0, messages: 0, timers: 0 },
    global: { decodeMs: 0, handleMs: 0, emitMs: 0, messages: 0, timers: 0 },
  };
  const logics: DomainLogics = {
    user: timed(plain.user, spent.user),
    product: timed(plain.product, spent.product),
    global: timed(plain.global, spent.global),
  };
  const started = performance.now();
  const result = await fold(input, { logics });
  const foldMs = performance.now() - started;

  const costs = {
    user: checkpointCost(plain.user, result.users.values()),
    product: checkpointCost(plain.product, result.products.values()),
    global: checkpointCost(plain.global, result.global ? [result.global] : []),
  };

  console.log(`\nmachine: ${await machine()}`);
  console.log(`command: deno task bench domain --events ${events} --users ${users} --products ${products}`);
  console.log(
    `reference fold: ${(1000 * foldMs / events).toFixed(1)} µs per event in all (its own bookkeeping included), ${
      (result.outputs.length / events).toFixed(2)
    } outputs per event`,
  );
  console.log("kind      messages/event  timers/event  decode µs/msg  handle µs/msg  handle µs/event  emit µs/event");
  for (const kind of ["user", "product", "global"] as const) {
    const s = spent[kind];
    const perMessage = (ms: number) => (s.messages === 0 ? 0 : 1000 * ms / s.messages).toFixed(2);
    console.log(
      [
        kind.padEnd(8),
        (s.messages / events).toFixed(2).padStart(14),
        (s.timers / events).toFixed(2).padStart(13),
        perMessage(s.decodeMs).padStart(14),
        perMessage(s.handleMs).padStart(14),
        (1000 * s.handleMs / events).toFixed(2).padStart(16),
        (1000 * s.emitMs / events).toFixed(2).padStart(14),
      ].join(" "),
    );
  }
  console.log("at a checkpoint, per dirty actor (final states):");
  for (const [kind, c] of Object.entries(costs)) {
    console.log(
      `  ${kind}: ${c.actors} actors, persist + JSON ${c.persistMicros.toFixed(1)} µs, ${
        Math.round(c.bytes)
      } bytes; parse + restore ${c.restoreMicros.toFixed(1)} µs`,
    );
  }
}
