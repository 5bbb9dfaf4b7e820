/**
 * KafkaProducer's coalescing of concurrent appends, against a fake kafkajs producer: appends made
 * while a request is in flight share the next request, in order; each resolves only after its own
 * request was acknowledged; failures and deadlines reject with LogUnavailableError; nothing of an
 * append is sent once its deadline has answered it; nothing newer is sent while a request answered
 * at its deadline is still with kafkajs; each append keeps its own deadline; big appends are not
 * coalesced past a cap.
 */
import assert from "node:assert/strict";
import type { Kafka, ProducerConfig } from "kafkajs";
import { LogUnavailableError } from "../../engine/errors.ts";
import { KAFKA_REQUEST_TIMEOUT_MS } from "../../engine/kafka_client.ts";
import {
  ABANDONED_REQUEST_WAIT_MS,
  BROKER_TIMEOUT_MARGIN_MS,
  CLOSE_TIMEOUT_MS,
  KafkaProducer,
} from "../../engine/kafka_producer.ts";
import type { OutgoingRecord } from "../../engine/log.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { silentLogger } from "../../engine/logger.ts";

const DEADLINE_MS = 200;

/** One sendBatch call the fake received, with the means to answer it. */
interface SentRequest {
  readonly keys: string[];
  /** Which kafkajs producer (0 = the first created) sent it. */
  readonly producer: number;
  /** The `timeout` given to the broker. */
  readonly timeout: number;
  /** The acknowledgement asked of the broker (-1: every in-sync replica). */
  readonly acks: number | undefined;
  readonly ack: () => void;
  readonly fail: (error: Error) => void;
}

/** A stand-in for kafkajs; what it saw, in order, is in `events`, and the keys it stored in `stored`. */
interface FakeKafka {
  readonly kafka: Kafka;
  readonly sent: SentRequest[];
  /** `send#P keys`, `ack#P keys`, `fail#P keys`, `disconnect#P`, P being the producer. */
  readonly events: string[];
  /** Keys of acknowledged requests, in the order the fake broker acknowledged them. */
  readonly stored: string[];
  /** kafkajs producers created so far. */
  producers(): number;
  /** The settings each kafkajs producer was created with. */
  readonly configs: ProducerConfig[];
}

/**
 * A stand-in for kafkajs whose sendBatch calls wait until the test acknowledges or fails them
 * (or, with `answerAfterMs`, are acknowledged that long after they were sent), and whose connect
 * is `connect` (default: at once).
 */
function fakeKafka(options: { connect?: () => Promise<void>; answerAfterMs?: number } = {}): FakeKafka {
  const sent: SentRequest[] = [];
  const events: string[] = [];
  const stored: string[] = [];
  let created = 0;
  const configs: ProducerConfig[] = [];
  const createProducer = (config: ProducerConfig) => {
    const id = created++;
    configs.push(config);
    return {
      events: { DISCONNECT: "producer.disconnect" },
      on: () => () => {},
      connect: options.connect ?? (() => Promise.resolve()),
      disconnect: () => {
        events.push(`disconnect#${id}`);
        return Promise.resolve();
      },
      sendBatch: (batch: { acks?: number; timeout: number; topicMessages: { messages: { key: string }[] }[] }) => {
        const { promise, resolve, reject } = Promise.withResolvers<void>();
        const keys = batch.topicMessages.flatMap((t) => t.messages.map((m) => m.key));
        events.push(`send#${id} ${keys}`);
        let answered = false;
        const ack = () => {
          if (answered) return;
          answered = true;
          events.push(`ack#${id} ${keys}`);
          stored.push(...keys);
          resolve();
        };
        const fail = (error: Error) => {
          if (answered) return;
          answered = true;
          events.push(`fail#${id} ${keys}`);
          reject(error);
        };
        sent.push({ keys, producer: id, timeout: batch.timeout, acks: batch.acks, ack, fail });
        if (options.answerAfterMs !== undefined) setTimeout(ack, options.answerAfterMs);
        return promise;
      },
    };
  };
  return {
    kafka: { producer: createProducer } as unknown as Kafka,
    sent,
    events,
    stored,
    producers: () => created,
    configs,
  };
}

function producerOn(kafka: Kafka): KafkaProducer {
  return new KafkaProducer(kafka, {
    brokers: ["fake:9092"],
    clientId: "t",
    logger: silentLogger,
    publishTimeoutMs: DEADLINE_MS,
  });
}

function records(...keys: string[]): OutgoingRecord[] {
  return keys.map((key) => ({
    topic: key.startsWith("p") ? "product-events" : "events",
    key,
    value: `{"k":"${key}"}`,
  }));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Lets queued microtasks and zero-delay timers run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Observes a promise's outcome without awaiting it. */
function watch(promise: Promise<void>): { state: "pending" | "resolved" | "rejected"; error?: unknown } {
  const seen: { state: "pending" | "resolved" | "rejected"; error?: unknown } = { state: "pending" };
  promise.then(() => (seen.state = "resolved"), (error) => Object.assign(seen, { state: "rejected", error }));
  return seen;
}

Deno.test("KafkaProducer sends an append to an idle producer at once, alone", async () => {
  const { kafka, sent } = fakeKafka();
  const producer = producerOn(kafka);
  const first = watch(producer.append(records("u1", "u2")));
  await settle();
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].keys, ["u1", "u2"]);
  assert.equal(first.state, "pending", "not resolved before the acknowledgement");
  sent[0].ack();
  await settle();
  assert.equal(first.state, "resolved");
  await producer.close();
});

Deno.test("KafkaProducer coalesces appends made during a request into the next one, in order, resolving each after its ack", async () => {
  const { kafka, sent } = fakeKafka();
  const producer = producerOn(kafka);
  const first = watch(producer.append(records("a1")));
  await settle();
  const queued = [
    watch(producer.append(records("b1", "b2"))),
    watch(producer.append(records("p1"))),
    watch(producer.append(records("a2"))),
  ];
  await settle();
  assert.equal(sent.length, 1, "nothing more is sent while a request is in flight");
  sent[0].ack();
  await settle();
  assert.equal(first.state, "resolved");
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1].keys.filter((k) => !k.startsWith("p")), ["b1", "b2", "a2"], "order kept within a topic");
  assert.deepEqual(sent[1].keys.filter((k) => k.startsWith("p")), ["p1"]);
  assert.ok(queued.every((q) => q.state === "pending"), "queued appends wait for their own request");
  sent[1].ack();
  await settle();
  assert.ok(queued.every((q) => q.state === "resolved"));
  await producer.close();
});

Deno.test("KafkaProducer rejects every append of a failed request with LogUnavailableError, then goes on", async () => {
  const { kafka, sent } = fakeKafka();
  const producer = producerOn(kafka);
  const first = watch(producer.append(records("a")));
  await settle();
  const second = watch(producer.append(records("b")));
  const third = watch(producer.append(records("c")));
  sent[0].fail(new Error("NOT_ENOUGH_REPLICAS"));
  await settle();
  assert.equal(first.state, "rejected");
  assert.ok(first.error instanceof LogUnavailableError);
  assert.match((first.error as Error).message, /NOT_ENOUGH_REPLICAS/);
  sent[1].fail(new Error("broker down"));
  await settle();
  assert.equal(second.state, "rejected");
  assert.equal(third.state, "rejected");
  const fourth = watch(producer.append(records("d")));
  await settle();
  sent[2].ack();
  await settle();
  assert.equal(fourth.state, "resolved", "a later append succeeds once the log answers");
  await producer.close();
});

Deno.test("KafkaProducer rejects a hung request's appends at their deadline, and sends nothing newer until kafkajs gives up on it", async () => {
  const { kafka, sent, events, stored } = fakeKafka();
  const producer = producerOn(kafka);
  const hung = watch(producer.append(records("u1", "u2")));
  await sleep(DEADLINE_MS + DEADLINE_MS / 4);
  assert.equal(hung.state, "rejected");
  assert.ok(hung.error instanceof LogUnavailableError);
  assert.match((hung.error as Error).message, new RegExp(`not acknowledged within ${DEADLINE_MS} ms`));
  const behind = watch(producer.append(records("u1")));
  await sleep(DEADLINE_MS / 2);
  // kafkajs is still retrying the first request: were the next one sent now (by a new producer),
  // the first could land after it, and u1's events would be out of order.
  assert.deepEqual(events, ["send#0 u1,u2"], "nothing newer is sent, and the producer is kept, while kafkajs retries");
  assert.equal(behind.state, "pending");
  sent[0].fail(new Error("retries exhausted"));
  await settle();
  assert.deepEqual(events, ["send#0 u1,u2", "fail#0 u1,u2", "disconnect#0", "send#1 u1"], "a fresh producer sends it");
  sent[1].ack();
  await settle();
  assert.equal(behind.state, "resolved");
  assert.deepEqual(stored, ["u1"]);
  await producer.close();
});

Deno.test("KafkaProducer keeps a key's order when a request answered at its deadline is stored after all", async () => {
  const { kafka, sent, events, stored } = fakeKafka();
  const producer = producerOn(kafka);
  const late = watch(producer.append(records("u1")));
  await sleep(DEADLINE_MS + DEADLINE_MS / 4);
  assert.equal(late.state, "rejected", "503: not acknowledged");
  const behind = watch(producer.append(records("u1", "u2")));
  await sleep(DEADLINE_MS / 2);
  assert.equal(sent.length, 1, "the next request waits for the late one");
  sent[0].ack(); // kafkajs's retry got through: the record answered 503 is stored.
  await settle();
  sent[1].ack();
  await settle();
  assert.equal(behind.state, "resolved");
  assert.deepEqual(stored, ["u1", "u1", "u2"], "the late record lands before the one acknowledged after it");
  assert.deepEqual(events, ["send#0 u1", "ack#0 u1", "send#0 u1,u2", "ack#0 u1,u2"], "same producer, no reset");
  await producer.close();
});

Deno.test("KafkaProducer sends nothing more of an append split into several requests once its deadline has passed", async () => {
  const { kafka, sent, events } = fakeKafka();
  const producer = producerOn(kafka);
  // Three records of 300 KiB: three requests under the 512 KiB cap, one after the other.
  const value = "x".repeat(300 * 1024);
  const split = watch(producer.append(["u1", "u2", "u3"].map((key) => ({ topic: "events", key, value }))));
  await sleep(DEADLINE_MS * 3 / 4);
  sent[0].ack();
  await sleep(DEADLINE_MS / 2); // the append's deadline passes while its second request is in flight
  assert.equal(split.state, "rejected");
  sent[1].ack();
  await settle();
  assert.deepEqual(events, ["send#0 u1", "ack#0 u1", "send#0 u2", "ack#0 u2"], "u3 is not sent after the 503");
  const next = watch(producer.append(records("u9")));
  await settle();
  assert.deepEqual(sent.map((s) => s.keys), [["u1"], ["u2"], ["u9"]], "the next append goes out without u3");
  sent[2].ack();
  await settle();
  assert.equal(next.state, "resolved");
  await producer.close();
});

Deno.test("KafkaProducer does not send an append answered 503 while it was connecting, once connected", async () => {
  const connected = Promise.withResolvers<void>();
  const { kafka, sent } = fakeKafka({ connect: () => connected.promise });
  const producer = producerOn(kafka);
  const waiting = watch(producer.append(records("u1")));
  await sleep(DEADLINE_MS + DEADLINE_MS / 4);
  assert.equal(waiting.state, "rejected", "the deadline counts the connect");
  connected.resolve();
  await sleep(DEADLINE_MS / 4);
  assert.equal(sent.length, 0, "u1 is not sent once the broker is reached");
  const next = watch(producer.append(records("u2")));
  await settle();
  assert.deepEqual(sent.map((s) => s.keys), [["u2"]]);
  sent[0].ack();
  await settle();
  assert.equal(next.state, "resolved");
  await producer.close();
});

Deno.test("KafkaProducer rejects the appends a failed connect was for, and connects a fresh producer for the next", async () => {
  let connects = 0;
  const { kafka, sent, events, producers } = fakeKafka({
    connect: () => ++connects === 1 ? Promise.reject(new Error("connection refused")) : Promise.resolve(),
  });
  const producer = producerOn(kafka);
  const refused = watch(producer.append(records("u1")));
  await settle();
  assert.equal(refused.state, "rejected");
  assert.ok(refused.error instanceof LogUnavailableError);
  assert.match((refused.error as Error).message, /connection refused/);
  const next = watch(producer.append(records("u2")));
  await settle();
  sent[0].ack();
  await settle();
  assert.equal(next.state, "resolved");
  assert.deepEqual(events, ["disconnect#0", "send#1 u2", "ack#1 u2"]);
  assert.equal(producers(), 2);
  await producer.close();
});

Deno.test("KafkaProducer gives an append its own deadline, for each of its requests and the broker's timeout", async () => {
  // Every request takes 300 ms, longer than the default deadline of 200 ms.
  const { kafka, sent, producers } = fakeKafka({ answerAfterMs: 300 });
  const producer = producerOn(kafka);
  const value = "x".repeat(300 * 1024);
  const started = performance.now();
  await producer.append(["c1", "c2"].map((key) => ({ topic: "outputs", key, value })), { timeoutMs: 60_000 });
  assert.ok(performance.now() - started >= 600, "two requests of 300 ms each");
  assert.deepEqual(sent.map((s) => s.keys), [["c1"], ["c2"]]);
  // kafkajs gives up on a request after KAFKA_REQUEST_TIMEOUT_MS (30 s): the broker must not hold it longer.
  const cap = KAFKA_REQUEST_TIMEOUT_MS - BROKER_TIMEOUT_MARGIN_MS;
  assert.ok(BROKER_TIMEOUT_MARGIN_MS > 0 && cap > 0);
  for (const { timeout } of sent) {
    assert.equal(timeout, cap, "a 60 s deadline gives the broker requestTimeout - margin");
  }
  assert.equal(producers(), 1, "no request failed, so the producer was not replaced");
  // An append with the default deadline gives the broker at most that.
  await assert.rejects(producer.append(records("u1")), LogUnavailableError);
  assert.ok(sent[2].timeout <= DEADLINE_MS, `${sent[2].timeout} ms`);
  // Under the cap, what is left of the deadline.
  await producer.append(records("u2"), { timeoutMs: cap - 1_000 });
  assert.ok(sent[3].timeout > cap - 2_000 && sent[3].timeout <= cap - 1_000, `${sent[3].timeout} ms`);
  await producer.close();
});

Deno.test("KafkaProducer keeps a coalesced request under its byte cap, sending an oversized record alone", async () => {
  const { kafka, sent } = fakeKafka();
  const producer = producerOn(kafka);
  const big = (key: string) => [{ topic: "events", key, value: "x".repeat(300 * 1024) }];
  // Appends made in one go (here while the producer connects) share the first request up to the cap.
  const appends = [producer.append(records("first")), producer.append(big("b1")), producer.append(big("b2"))];
  appends.push(producer.append([{ topic: "events", key: "huge", value: "y".repeat(2 * 1024 * 1024) }]));
  for (let i = 0; i < 3; i++) {
    await settle();
    sent[i].ack();
  }
  await Promise.all(appends);
  assert.deepEqual(sent.map((s) => s.keys), [["first", "b1"], ["b2"], ["huge"]]);
  await producer.close();
});

Deno.test("KafkaProducer sends the rest of a split append first, then whole appends that fit with it", async () => {
  const { kafka, sent } = fakeKafka();
  const producer = producerOn(kafka);
  const value = "x".repeat(200 * 1024);
  const split = producer.append(["s1", "s2", "s3", "s4"].map((key) => ({ topic: "outputs", key, value })));
  const small = producer.append(records("u1"));
  const whole = producer.append(["w1", "w2"].map((key) => ({ topic: "events", key, value })));
  for (let i = 0; i < 3; i++) {
    await settle();
    sent[i].ack();
  }
  await Promise.all([split, small, whole]);
  assert.deepEqual(sent.map((s) => s.keys), [["s1", "s2"], ["s3", "s4", "u1"], ["w1", "w2"]]);
  await producer.close();
});

Deno.test("KafkaProducer stops waiting for an abandoned request after ABANDONED_REQUEST_WAIT_MS: a checkpoint behind it goes out on a fresh producer", async () => {
  const { kafka, sent, events } = fakeKafka();
  const producer = producerOn(kafka);
  // A 503: kafkajs keeps the request (sleeping in its retry backoff, the broker back meanwhile).
  const answered = watch(producer.append(records("u1")));
  await sleep(DEADLINE_MS + DEADLINE_MS / 4);
  assert.equal(answered.state, "rejected");
  const answeredAt = performance.now();
  // SIGTERM: the runtime's final checkpoint, with its 60 s deadline, queues behind it.
  const checkpoint = producer.append([{ topic: "outputs", key: "c1", value: "c" }], { timeoutMs: 60_000 });
  let resent = -1;
  const done = checkpoint.then(() => performance.now());
  while (resent < 0) {
    await sleep(20);
    resent = sent.findIndex((s) => s.keys.includes("c1"));
    assert.ok(
      performance.now() - answeredAt < ABANDONED_REQUEST_WAIT_MS + 1_000,
      "the checkpoint waits no longer than the bound",
    );
  }
  assert.ok(performance.now() - answeredAt >= ABANDONED_REQUEST_WAIT_MS - DEADLINE_MS, "it did wait, for the order");
  sent[resent].ack();
  const resolvedAt = await done;
  assert.ok(resolvedAt - answeredAt < ABANDONED_REQUEST_WAIT_MS + 1_000, `${resolvedAt - answeredAt} ms after the 503`);
  assert.deepEqual(
    events,
    ["send#0 u1", "disconnect#0", "send#1 c1", "ack#1 c1"],
    "the old producer is disconnected, a new one sends",
  );
  const closing = performance.now();
  await producer.close();
  assert.ok(performance.now() - closing < 500, "close() does not wait for the abandoned request");
  // kafkajs finally gives up on the abandoned request: the old producer (which kafkajs may have
  // reconnected to retry) is disconnected again.
  sent[0].fail(new Error("retries exhausted"));
  await settle();
  assert.deepEqual(events.slice(4), ["disconnect#1", "fail#0 u1", "disconnect#0"]);
});

Deno.test("KafkaProducer close() stops waiting for an abandoned request at once, sending what was appended before it", async () => {
  const { kafka, sent, events } = fakeKafka();
  const producer = producerOn(kafka);
  await assert.rejects(producer.append(records("u1")), LogUnavailableError); // kafkajs keeps the request
  // The reviewer's scenario: the final checkpoint is appended, and close() called, while kafkajs is
  // still in its backoff on the request answered 503.
  const started = performance.now();
  const checkpoint = watch(producer.append([{ topic: "outputs", key: "c1", value: "c" }], { timeoutMs: 60_000 }));
  const closing = watch(producer.close());
  await settle();
  assert.deepEqual(events, ["send#0 u1", "disconnect#0", "send#1 c1"], "the checkpoint goes out at once");
  sent[1].ack();
  while (closing.state === "pending") await settle();
  assert.equal(checkpoint.state, "resolved");
  assert.equal(closing.state, "resolved");
  assert.ok(performance.now() - started < 500, `${performance.now() - started} ms`);
});

Deno.test("KafkaProducer does not block later appends forever on a request whose kafkajs promise never settles", async () => {
  const { kafka, sent, events } = fakeKafka();
  const producer = producerOn(kafka);
  await assert.rejects(producer.append(records("u1")), LogUnavailableError); // sent[0] is never answered
  const started = performance.now();
  // Appends made meanwhile are answered at their own deadline (they wait for the order)...
  while (performance.now() - started < ABANDONED_REQUEST_WAIT_MS - DEADLINE_MS) {
    await assert.rejects(producer.append(records("u2")), LogUnavailableError);
  }
  assert.equal(sent.length, 1);
  // ...until the bound: then a fresh producer sends them.
  await sleep(DEADLINE_MS);
  const later = watch(producer.append(records("u3")));
  await settle();
  assert.deepEqual(sent.map((s) => [s.producer, s.keys]), [[0, ["u1"]], [1, ["u3"]]]);
  sent[1].ack();
  await settle();
  assert.equal(later.state, "resolved");
  assert.ok(events.includes("disconnect#0"), "the stuck producer was disconnected");
  await producer.close();
});

Deno.test("KafkaProducer close() returns within CLOSE_TIMEOUT_MS even if kafkajs never answers a request", async () => {
  const { kafka } = fakeKafka();
  const producer = producerOn(kafka);
  const hung = watch(producer.append(records("c1"), { timeoutMs: 60_000 })); // not abandoned: still waited for
  await settle();
  const started = performance.now();
  await producer.close();
  const took = performance.now() - started;
  assert.ok(took >= CLOSE_TIMEOUT_MS - 50 && took < CLOSE_TIMEOUT_MS + 500, `${took} ms`);
  assert.equal(hung.state, "pending", "left to its own deadline");
});

Deno.test("KafkaProducer.close() that gave up sends nothing more and creates no producer, and refuses new appends", async () => {
  const { kafka, sent, events, producers } = fakeKafka();
  const producer = producerOn(kafka);
  const hung = watch(producer.append(records("u1"), { timeoutMs: 10_000 })); // kafkajs never answers in time
  await settle();
  const queued = watch(producer.append(records("u2"), { timeoutMs: 10_000 }));
  await producer.close(); // gives up at CLOSE_TIMEOUT_MS
  assert.equal(queued.state, "rejected", "what was still queued is answered");
  await assert.rejects(producer.append(records("u3")), LogUnavailableError);
  sent[0].fail(new Error("kafkajs gave up")); // its retries end after close()
  await sleep(50);
  assert.equal(producers(), 1, "no producer created after close()");
  assert.deepEqual(events.filter((e) => e.startsWith("send")), ["send#0 u1"]);
  assert.equal(
    events.filter((e) => e === "disconnect#0").length >= 2,
    true,
    "disconnected again once kafkajs was done",
  );
  await sleep(0);
  assert.notEqual(hung.state, "resolved");
});

Deno.test("KafkaProducer.close() stops waiting for a request once its appends are answered meanwhile", async () => {
  const { kafka } = fakeKafka();
  const producer = producerOn(kafka);
  const answered = watch(producer.append(records("u1"))); // DEADLINE_MS; kafkajs never answers
  await settle();
  const started = performance.now();
  await producer.close();
  const took = performance.now() - started;
  assert.equal(answered.state, "rejected");
  assert.ok(took < CLOSE_TIMEOUT_MS - 1_000, `close() waited ${Math.round(took)} ms, not stopping at the 503`);
});

Deno.test("KafkaProducer asks every in-sync replica, one idempotent request at a time, and places keys as Kafka's partitioner", async () => {
  const { kafka, sent, configs } = fakeKafka();
  const producer = producerOn(kafka);
  const appended = watch(producer.append(records("u1")));
  await settle();
  // acks=1 would answer 202 for an event a leader failover then loses; idempotence and a single request in flight
  // keep kafkajs's retries from duplicating or reordering records.
  assert.equal(sent[0].acks, -1);
  assert.equal(configs[0].idempotent, true);
  assert.equal(configs[0].maxInFlightRequests, 1);
  // Ingestion leaves the partition of a user's event to kafkajs; queries find its owner with partitionForKey.
  const partitioner = configs[0].createPartitioner!();
  for (const count of [1, 3, 12]) {
    const partitionMetadata = Array.from({ length: count }, (_, i) => ({ partitionId: i, leader: 0 }));
    for (const key of ["a", "abcd", "user-42", "produit-é", "21"]) {
      const chosen = partitioner({
        topic: "events",
        partitionMetadata: partitionMetadata as never,
        message: { key, value: null },
      });
      assert.equal(chosen, partitionForKey(key, count), `key ${key} of ${count} partitions`);
    }
  }
  sent[0].ack();
  await settle();
  assert.equal(appended.state, "resolved");
  await producer.close();
});

Deno.test("KafkaProducer gives a coalesced request the broker timeout of the latest deadline among its appends", async () => {
  const { kafka, sent } = fakeKafka();
  const producer = producerOn(kafka);
  const first = watch(producer.append(records("a1")));
  await settle();
  // While a1 is in flight: an ingestion append (the default 200 ms) and a checkpoint's outputs (10 s).
  const ingested = watch(producer.append(records("u1")));
  const outputs = watch(producer.append(records("c1"), { timeoutMs: 10_000 }));
  sent[0].ack();
  await settle();
  assert.deepEqual(sent[1].keys, ["u1", "c1"]);
  // The broker's timeout at the earliest deadline failed the outputs' request 200 ms in, far before their own.
  assert.ok(sent[1].timeout > 9_000, `${sent[1].timeout} ms`);
  sent[1].ack();
  await settle();
  assert.deepEqual([first.state, ingested.state, outputs.state], ["resolved", "resolved", "resolved"]);
  await producer.close();
});
