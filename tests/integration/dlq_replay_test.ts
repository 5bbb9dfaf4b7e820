/**
 * Dead-lettering and `dlq replay`, on each log: records are written beside the engine with its own
 * producer, the DLQ is read with a consumer of its own group, and the replay runs as the command
 * runs it (a consumer in `<GROUP_ID>.dlq-replay`, the log's producer, the engine's database).
 */
import assert from "node:assert/strict";
import { DLQ_HEADERS } from "../../engine/dead_letter.ts";
import { replayDlq, REPLAYED_FROM_HEADER } from "../../engine/dlq_replay.ts";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { collect, type Collector } from "../helpers/collector.ts";
import { forEachLog } from "../helpers/modes.ts";
import { eventually } from "../helpers/services.ts";

forEachLog(
  "bad records go to the DLQ with their reason; dlq replay re-injects them once, optionally by error code",
  async ({ config, topics }) => {
    const engine = await startEngine(config, silentLogger);
    const { sql, producer, createConsumer } = engine.clients;
    let dlq: Collector | undefined;
    const replay = (errorCode?: string) =>
      replayDlq({
        consumer: createConsumer(`${config.GROUP_ID}.dlq-replay`),
        producer,
        sql,
        dlqTopic: topics.dlq,
        groupId: config.GROUP_ID,
        errorCode,
        idleMs: 2_000,
      });
    const dlqRecords = () =>
      dlq!.records.map((r) => ({ key: r.key, value: new TextDecoder().decode(r.value!), headers: r.headers }));
    try {
      dlq = await collect(createConsumer(`${config.GROUP_ID}.dlq-reader`), [topics.dlq]);
      // A record the engine cannot decode.
      await producer.append([{ topic: topics.events, key: "bob", value: "{oops" }]);
      // A valid event that an earlier version rejected with a terminal error, as it sits in the DLQ.
      const event = {
        eventId: crypto.randomUUID(),
        type: "product_viewed",
        userId: "alice",
        occurredAt: "2026-11-01T10:00:00.000Z",
        receivedAt: "2026-11-01T10:00:00.000Z",
        properties: { productId: "sku-9" },
      };
      await producer.append([{
        topic: topics.dlq,
        key: "alice",
        value: JSON.stringify(event),
        headers: {
          [DLQ_HEADERS.errorCode]: "terminal",
          [DLQ_HEADERS.topic]: topics.events,
          [DLQ_HEADERS.partition]: "0",
          [DLQ_HEADERS.offset]: "0",
        },
      }]);
      const initial = await eventually("the bad record in the DLQ", () => {
        const records = dlqRecords();
        return Promise.resolve(records.length === 2 ? records : undefined);
      });
      const bad = initial.find((r) => r.key === "bob")!;
      assert.equal(bad.value, "{oops", "original bytes");
      assert.equal(bad.headers[DLQ_HEADERS.errorCode], "validation_failed");
      assert.equal(bad.headers[DLQ_HEADERS.topic], topics.events);
      assert.match(bad.headers[DLQ_HEADERS.errorMessage], /JSON/);

      const first = await replay("terminal");
      assert.equal(first.replayed, 1);
      assert.equal(first.skipped, 1);
      const alice = await eventually("alice's replayed view", async () => {
        const response = await fetch(`${engine.url}/v1/users/alice`);
        return response.status === 200 ? await response.json() : (await response.body?.cancel(), undefined);
      });
      assert.equal(alice.productViews, 1);

      const again = await replay("terminal");
      assert.equal(again.replayed, 0);
      assert.equal(again.alreadyReplayed, 1);

      const all = await replay();
      assert.equal(all.replayed, 1, "only the record not replayed yet");
      const after = await eventually("the re-failed record back in the DLQ", () => {
        const records = dlqRecords();
        return Promise.resolve(records.length >= 3 ? records : undefined);
      });
      const refailed = after.filter((r) => r.headers[REPLAYED_FROM_HEADER] !== undefined);
      assert.equal(refailed.length, 1);
      assert.equal(refailed[0].key, "bob");
      assert.match(refailed[0].headers[REPLAYED_FROM_HEADER], new RegExp(`^${topics.dlq.replaceAll(".", "\\.")}/`));
      const final = await (await fetch(`${engine.url}/v1/users/alice`)).json();
      assert.equal(final.productViews, 1, "alice's event was not re-injected twice");
      assert.equal(dlqRecords().length, 3, "nothing else was dead-lettered");
    } finally {
      await dlq?.stop();
      await engine.stop();
    }
  },
);
