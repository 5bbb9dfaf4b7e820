/**
 * KafkaProducer's coalescing of concurrent appends, against a fake kafkajs producer: appends made
 * while a request is in flight share the next request, in order; each resolves only after its own
 * request was acknowledged; failures and deadlines reject with LogUnavailableError; a hung request
 * does not hold back later appends beyond its deadline; big appends are not coalesced past a cap.
 */
import assert from "node:assert/strict";
import type { Kafka } from "kafkajs";
import { LogUnavailableError } from "../../engine/errors.ts";
import { KafkaProducer } from "../../engine/kafka_producer.ts";
import type { OutgoingRecord } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";

const DEADLINE_MS = 200;

/** One sendBatch call the fake received, with the means to answer it. */
interface SentRequest {
  readonly keys: string[];
  readonly ack: () => void;
  readonly fail: (error: Error) => void;
}

/** A stand-in for kafkajs whose sendBatch calls wait until the test acknowledges or fails them. */
function fakeKafka(): { kafka: Kafka; sent: SentRequest[] } {
  const sent: SentRequest[] = [];
  const producer = {
    events: { DISCONNECT: "producer.disconnect" },
    on: () => () => {},
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    sendBatch: (batch: { topicMessages: { messages: { key: string }[] }[] }) => {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      sent.push({
        keys: batch.topicMessages.flatMap((t) => t.messages.map((m) => m.key)),
        ack: resolve,
        fail: reject,
      });
      return promise;
    },
  };
  return { kafka: { producer: () => producer } as unknown as Kafka, sent };
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

Deno.test("KafkaProducer rejects a hung request's appends at their deadline, and sends the appends behind it then", async () => {
  const { kafka, sent } = fakeKafka();
  const producer = producerOn(kafka);
  const hung = watch(producer.append(records("a")));
  await new Promise((resolve) => setTimeout(resolve, DEADLINE_MS / 2));
  const behind = watch(producer.append(records("b")));
  await settle();
  assert.equal(sent.length, 1, "b waits while a is in flight");
  await new Promise((resolve) => setTimeout(resolve, DEADLINE_MS / 2 + DEADLINE_MS / 10));
  assert.equal(hung.state, "rejected");
  assert.ok(hung.error instanceof LogUnavailableError);
  assert.match((hung.error as Error).message, new RegExp(`not acknowledged within ${DEADLINE_MS} ms`));
  assert.deepEqual(sent.map((s) => s.keys), [["a"], ["b"]], "b went out once a's deadline passed");
  sent[1].ack();
  await settle();
  assert.equal(behind.state, "resolved");
  sent[0].ack(); // The hung request completing late changes nothing.
  await settle();
  assert.equal(hung.state, "rejected");
  await producer.close();
});

Deno.test("KafkaProducer keeps a coalesced request under its byte cap, sending an oversized append alone", async () => {
  const { kafka, sent } = fakeKafka();
  const producer = producerOn(kafka);
  const big = (key: string) => [{ topic: "events", key, value: "x".repeat(300 * 1024) }];
  const appends = [producer.append(records("first")), producer.append(big("b1")), producer.append(big("b2"))];
  appends.push(producer.append([{ topic: "events", key: "huge", value: "y".repeat(2 * 1024 * 1024) }]));
  for (let i = 0; i < 4; i++) {
    await settle();
    sent[i].ack();
  }
  await Promise.all(appends);
  assert.deepEqual(sent.map((s) => s.keys), [["first"], ["b1"], ["b2"], ["huge"]]);
  await producer.close();
});
