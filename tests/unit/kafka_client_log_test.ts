import assert from "node:assert/strict";
import { createKafka } from "../../engine/kafka_client.ts";
import { createLogger } from "../../engine/logger.ts";

/** What kafkajs's own logger writes through the engine's logger, as JSON lines. */
function kafkajsLines(): {
  log: ReturnType<ReturnType<typeof createKafka>["logger"]>;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("debug", (line) => void lines.push(JSON.parse(line)));
  const kafka = createKafka({ brokers: ["127.0.0.1:9"], clientId: "log-test", logger, publishTimeoutMs: 1_000 });
  return { log: kafka.logger(), lines };
}

Deno.test("kafkajs: the errors it retries on a fresh broker, fresh topics or in a routine rebalance are logged at debug", () => {
  const { log, lines } = kafkajsLines();
  const connection = log.namespace("Connection");
  for (
    const error of [
      // Every client's first group request to a broker whose __consumer_offsets is not created yet (a fresh
      // deployment: `docker compose up`, services.sh): three error lines on a normal first start.
      "The group coordinator is not available",
      "The coordinator is loading and hence can't process requests for this group",
      "The group is rebalancing, so a rejoin is needed",
      // Instances started together on fresh topics (the compose stack's first start): one creates them, the
      // others find them and ask for offsets before their leaders are known; 31 error lines from three instances.
      "This server is not the leader for that topic-partition",
    ]
  ) {
    connection.error("Response GroupCoordinator(key: 10, version: 2)", { error, correlationId: 2, size: 55 });
  }
  assert.deepEqual(lines.map((line) => [line.level, line.error]), [
    ["debug", "The group coordinator is not available"],
    ["debug", "The coordinator is loading and hence can't process requests for this group"],
    ["debug", "The group is rebalancing, so a rejoin is needed"],
    ["debug", "This server is not the leader for that topic-partition"],
  ]);
});

Deno.test("kafkajs: any other error it logs stays at error level", () => {
  const { log, lines } = kafkajsLines();
  log.namespace("Connection").error("Response Produce(key: 0, version: 7)", { error: "The request timed out" });
  assert.deepEqual(lines.map((line) => [line.level, line.msg, line.namespace]), [
    ["error", "Response Produce(key: 0, version: 7)", "Connection"],
  ]);
});

Deno.test("kafkajs: its warning about the producer's bounded retries is at debug (a choice made on purpose), other warnings at warn", () => {
  const { log, lines } = kafkajsLines();
  const producer = log.namespace("Producer");
  producer.warn("Limiting retries for the idempotent producer may invalidate EoS guarantees");
  producer.warn("Failed to send messages", { error: "The request timed out" });
  assert.deepEqual(lines.map((line) => [line.level, line.msg]), [
    ["debug", "Limiting retries for the idempotent producer may invalidate EoS guarantees"],
    ["warn", "Failed to send messages"],
  ]);
});

Deno.test("kafkajs: what a stop during a join makes it log (the join answered as an unknown member, its refused retry) is at debug", () => {
  const { log, lines } = kafkajsLines();
  // The stop's LeaveGroup from aside (engine/kafka_group_leave.ts) answers the waiting JoinGroup so, and kafkajs's next
  // join is refused, ending the consumer: a SIGTERM during a rolling restart's rebalance logged both at error.
  log.namespace("Connection").error("Response JoinGroup(key: 11, version: 5)", {
    error: "The coordinator is not aware of this member",
    correlationId: 29,
    size: 24,
  });
  log.namespace("Consumer").error(
    "Crash: KafkaJSNonRetriableError: the consumer is leaving the group: no join",
    { groupId: "g", stack: "KafkaJSNonRetriableError: the consumer is leaving the group: no join\n    at …" },
  );
  log.namespace("Consumer").error("Crash: ConsumerLeavingError: the consumer is leaving the group: no join", {
    groupId: "g",
  });
  // A heartbeat answered so is a member the group dropped (a stall past the session timeout): still an error.
  log.namespace("Connection").error("Response Heartbeat(key: 12, version: 3)", {
    error: "The coordinator is not aware of this member",
  });
  assert.deepEqual(lines.map((line) => [line.level, line.msg]), [
    ["debug", "Response JoinGroup(key: 11, version: 5)"],
    ["debug", "Crash: KafkaJSNonRetriableError: the consumer is leaving the group: no join"],
    ["debug", "Crash: ConsumerLeavingError: the consumer is leaving the group: no join"],
    ["error", "Response Heartbeat(key: 12, version: 3)"],
  ]);
});
