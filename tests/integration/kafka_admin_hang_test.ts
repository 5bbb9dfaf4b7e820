/**
 * The Kafka admin's asks of a running engine against a hung broker (its process stopped: connections stay open, nothing
 * answers): the group's committed offset, read beside the partition's start and end when a batch shows a log shorter
 * than the partition's position, waits at most FETCH_OFFSETS_TIMEOUT_MS, as those do (LIST_OFFSETS_TIMEOUT_MS). It
 * waited for kafkajs's 30 s request timeout, holding the partition's batch, and a stop waiting for it, that long.
 */
import assert from "node:assert/strict";
import { KafkaAdmin } from "../../engine/kafka_admin.ts";
import { createKafka } from "../../engine/kafka_client.ts";
import { LogUnavailableError } from "../../engine/errors.ts";
import { silentLogger } from "../../engine/logger.ts";
import { startPrivateBroker } from "../helpers/kafka_broker.ts";
import { onlyOn } from "../helpers/modes.ts";
import { eventually, within } from "../helpers/services.ts";

onlyOn("kafka", {
  name: "a hung broker: the group's committed offset is given up after 2 s, as the partition's ends are",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const broker = await startPrivateBroker();
    const kafka = createKafka({
      brokers: [broker.brokers],
      clientId: "admin-hang-test",
      logger: silentLogger,
      publishTimeoutMs: 5_000,
    });
    const admin = new KafkaAdmin(kafka);
    const tp = { topic: "hang", partition: 0 };
    try {
      await admin.ensureTopics([{ topic: tp.topic, partitions: 1 }], 1);
      // A fresh broker answers NOT_COORDINATOR while it loads its offsets topic, for seconds on a loaded machine (the
      // test failed so under --parallel): the group's coordinator is found and connected to before the broker hangs.
      const before = await eventually(
        "the group's coordinator to answer",
        async () => ({ committed: await admin.committedOffset("g", tp) }),
        60_000,
        250,
      );
      assert.equal(before.committed, undefined);
      assert.equal(await admin.endOffset(tp), 0);

      broker.freeze();
      for (
        const [what, ask] of [["endOffset", () => admin.endOffset(tp)], [
          "committedOffset",
          () => admin.committedOffset("g", tp),
        ]] as const
      ) {
        const started = performance.now();
        const failure = await within(10_000, what, ask().then(() => undefined, (error: Error) => error));
        const ms = performance.now() - started;
        assert.ok(failure instanceof LogUnavailableError, `${what}: ${failure}`);
        assert.ok(ms < 5_000, `${what} gave up after ${Math.round(ms)} ms`);
      }
    } finally {
      broker.thaw();
      await admin.close().catch(() => {});
      await broker.destroy();
    }
  },
});
