/**
 * How a lone partition worker runs a batch's keys: each key's messages in order, synchronously while its handlers are,
 * and a key whose handler or timer awaits without holding the others, nor a failure's rewind.
 */
import assert from "node:assert/strict";
import type { ActorLogic } from "../../engine/actor.ts";
import { TerminalError } from "../../engine/errors.ts";
import { createLogger } from "../../engine/logger.ts";
import { MemoryCheckpointStore } from "../../engine/memory_checkpoint_store.ts";
import { MemoryLog } from "../../engine/memory_log.ts";
import { claim, InertConsumer, noHeartbeat, record, T0, topics, tp } from "../helpers/partition_worker.ts";

const MIN = 60_000;

interface Listed {
  readonly key: string;
  /** What the actor saw, in order: its messages' `n` and `timer@<deadline>` for each firing. */
  readonly seen: readonly (number | string)[];
}
interface Message {
  readonly n: number;
  readonly at?: number;
  readonly alarm?: number;
}
/** What a hook returns: nothing (the handler is synchronous) or a promise the handler waits for. */
type Hook = (key: string, n: number) => Promise<void> | void;

/** An actor that lists what it saw; synchronous but where `hook` (or `timerHook`) returns a promise. */
function listLogic(hook: Hook = () => {}, timerHook: (key: string) => Promise<void> | void = () => {}) {
  const logic: ActorLogic<Listed, Message> = {
    kind: "listed",
    initial: (key) => ({ key, seen: [] }),
    decode: (r) => JSON.parse(new TextDecoder().decode(r.value!)),
    eventTime: (m) => m.at ?? 0,
    handle: (state, m, ctx) => {
      if (m.alarm !== undefined) ctx.setTimer("alarm", m.alarm);
      const next = { ...state, seen: [...state.seen, m.n] };
      const waiting = hook(state.key, m.n);
      return waiting ? waiting.then(() => next) : next;
    },
    onTimer: (state, _name, ctx) => {
      const next = { ...state, seen: [...state.seen, `timer@${ctx.now()}`] };
      const waiting = timerHook(state.key);
      return waiting ? waiting.then(() => next) : next;
    },
    persist: (s) => s,
    restore: (d) => d as Listed,
  };
  return logic;
}

/** Record `offset` for `key` carrying `n = offset`, at T0 plus `minutes` (and arming the alarm if given). */
function message(offset: number, key: string, minutes = 0, alarm?: number) {
  return record(offset, { n: offset, at: T0 + minutes * MIN, alarm }, key);
}

const seen = (worker: { peek(key: string): unknown }, key: string) => (worker.peek(key) as Listed | undefined)?.seen;
const turns = (ms = 20) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("a key whose handler awaits mid-batch holds only its own later messages: the synchronous keys finish meanwhile", async () => {
  const gate = Promise.withResolvers<void>();
  const store = new MemoryCheckpointStore(() => T0);
  const worker = await claim(new InertConsumer(), () => T0, store, {
    logic: listLogic((key, n) => key === "a" && n === 2 ? gate.promise : undefined),
  });
  const records = [
    message(0, "a"),
    message(1, "b"),
    message(2, "a"),
    message(3, "c"),
    message(4, "a"),
    message(5, "b"),
  ];
  let done = false;
  const handled = worker.handleBatch({ ...tp, records, highWatermark: 6 }, noHeartbeat).then(() => done = true);
  await turns();
  assert.deepEqual(seen(worker, "b"), [1, 5]);
  assert.deepEqual(seen(worker, "c"), [3]);
  assert.deepEqual(seen(worker, "a"), [0], "a's message 4 waits for its message 2");
  assert.equal(done, false, "the batch waits for the key that awaits");
  const checkpointed = worker.checkpoint();
  await turns();
  assert.equal(
    store.partitions.get(`group/${tp.topic}:${tp.partition}`)?.nextOffset ?? 0,
    0,
    "no checkpoint passes it",
  );
  gate.resolve();
  await handled;
  await checkpointed;
  assert.deepEqual(seen(worker, "a"), [0, 2, 4]);
  assert.equal(store.partitions.get(`group/${tp.topic}:${tp.partition}`)?.nextOffset, 6);
});

Deno.test("a timer handler that awaits holds its key's next message until it has fired, and not the other keys", async () => {
  const gate = Promise.withResolvers<void>();
  const worker = await claim(new InertConsumer(), () => T0, undefined, {
    logic: listLogic(() => {}, (key) => key === "a" ? gate.promise : undefined),
  });
  const records = [
    message(0, "a", 0, T0 + 10 * MIN), // arms a's alarm
    message(1, "b", 20), // the clock passes it
    message(2, "a", 30), // a's alarm fires before this one
    message(3, "b", 40),
  ];
  const handled = worker.handleBatch({ ...tp, records, highWatermark: 4 }, noHeartbeat);
  await turns();
  assert.deepEqual(seen(worker, "b"), [1, 3]);
  assert.deepEqual(seen(worker, "a"), [0], "a's message 2 waits for its timer");
  gate.resolve();
  await handled;
  assert.deepEqual(seen(worker, "a"), [0, `timer@${T0 + 10 * MIN}`, 2]);
});

/** A worker whose failures are logged into `errors` and whose rewinds (seeks back) into `trace`. */
async function tracedWorker(hook: Hook) {
  const trace: string[] = [];
  const errors: string[] = [];
  const consumer = new InertConsumer();
  consumer.seek = (_tp, offset) => void trace.push(`rewind to ${offset}`);
  const logger = createLogger("error", (line) => {
    const { msg, error } = JSON.parse(line);
    if (msg.startsWith("handling failed")) errors.push(error.message);
  });
  const worker = await claim(consumer, () => T0, undefined, { logic: listLogic(hook), logger });
  return { worker, trace, errors };
}

Deno.test("a synchronous failure in one key waits for a key still awaiting before the batch rewinds", async () => {
  const gate = Promise.withResolvers<void>();
  const { worker, trace, errors } = await tracedWorker((key) => {
    if (key === "bad") throw new Error("bad failed");
    if (key === "slow") return gate.promise.then(() => void trace.push("slow handled"));
  });
  const records = [message(0, "slow"), message(1, "bad"), message(2, "fine")];
  const handled = worker.handleBatch({ ...tp, records, highWatermark: 3 }, noHeartbeat);
  await turns();
  assert.deepEqual(trace, [], "no rewind while 'slow' may still emit");
  gate.resolve();
  await handled;
  assert.deepEqual(trace, ["slow handled", "rewind to 0"]);
  assert.deepEqual(errors, ["bad failed"]);
});

Deno.test("a batch's failure reported is the first in key order, whether its key awaited or threw at once", async () => {
  const { worker, trace, errors } = await tracedWorker((key) => {
    if (key === "late") return turns(5).then(() => Promise.reject(new Error("late failed")));
    if (key === "now") throw new Error("now failed");
  });
  const records = [message(0, "late"), message(1, "now")];
  await worker.handleBatch({ ...tp, records, highWatermark: 2 }, noHeartbeat);
  assert.deepEqual(errors, ["late failed"]);
  assert.deepEqual(trace, ["rewind to 0"]);
});

Deno.test("a handler that rejects its record after awaiting dead-letters it whole, and its key goes on", async () => {
  const log = new MemoryLog(() => T0);
  const logic = listLogic();
  const worker = await claim(new InertConsumer(), () => T0, undefined, {
    logic: {
      ...logic,
      handle: (state, m, ctx) => {
        if (m.n !== 1) return logic.handle(state, m, ctx);
        ctx.setTimer("stray", T0 + MIN);
        ctx.emit("alerts", state.key, { stray: true });
        return Promise.resolve().then(() => Promise.reject(new TerminalError("rejected after awaiting")));
      },
    },
  }, log);
  const records = [message(0, "a"), message(1, "a"), message(2, "a"), message(3, "b")];
  await worker.handleBatch({ ...tp, records, highWatermark: 4 }, noHeartbeat);
  await worker.checkpoint();
  assert.deepEqual(seen(worker, "a"), [0, 2]);
  assert.deepEqual(seen(worker, "b"), [3]);
  assert.equal(worker.pendingTimers, 0, "the rejected record's timer is undone");
  assert.equal(log.all(topics.dlq).length, 1);
  assert.deepEqual(log.all(topics.alerts), [], "the rejected record's output is not published");
});
