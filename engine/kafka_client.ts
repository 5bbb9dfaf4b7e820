/**
 * The kafkajs client, shared by the Kafka adapter's producer, consumer and admin
 * (kafka_producer.ts, kafka_consumer.ts, kafka_admin.ts with kafka_high_watermarks.ts). These, and the three
 * runtime patches to kafkajs (kafkajs_encoder.ts, kafkajs_request_queue.ts, kafkajs_crc32c.ts), are the only
 * modules that import kafkajs; swapping the client means rewriting them, nothing else.
 */
import { Kafka, logLevel } from "kafkajs";
import type { Logger } from "./logger.ts";
import { installFastCrc32c } from "./kafkajs_crc32c.ts";
import { installFastEncoder } from "./kafkajs_encoder.ts";
import { installRequestQueueFix } from "./kafkajs_request_queue.ts";
import { JOIN_REFUSED } from "./kafka_group_leave.ts";

/** Settings the Kafka adapter needs, taken from the engine's Config. */
export interface KafkaOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly logger: Logger;
  /** Deadline for an append to be acknowledged by all in-sync replicas, unless the append gives its own. */
  readonly publishTimeoutMs: number;
}

const KAFKAJS_LEVEL_NAMES: Record<number, "debug" | "info" | "warn" | "error"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/**
 * kafkajs warnings that describe a choice this adapter made on purpose, logged at debug level so
 * that every start does not print them: retries are bounded because a failed idempotent producer
 * is replaced (see KafkaProducer), which is what keeps the guarantee the warning is about.
 */
const EXPECTED_KAFKAJS_WARNINGS = new Set([
  "Limiting retries for the idempotent producer may invalidate EoS guarantees",
]);

/**
 * Broker errors kafkajs logs at error level although it retries them: a broker whose
 * __consumer_offsets does not exist yet (a fresh deployment) answers every client's first group
 * request with the first, a freshly started broker answers the first producer-id request of every
 * client with the second for a moment, every member's heartbeat during a routine rebalance (an
 * instance joining or leaving the group) is answered with the third, and instances started together
 * on fresh topics ask for offsets of partitions whose leader is still being elected (the fourth);
 * the consumer logs the assignment that follows at info ("assignment changed"). One that lasts
 * (a broker down) still shows where kafkajs gives up: /readyz, 503 answers and the engine's own logs.
 */
const RETRIED_KAFKAJS_ERRORS = new Set([
  "The group coordinator is not available",
  "The coordinator is loading and hence can't process requests for this group",
  "The group is rebalancing, so a rejoin is needed",
  "This server is not the leader for that topic-partition",
]);

/**
 * What kafkajs logs at error level when a stop leaves the group during a join (engine/kafka_group_leave.ts): the
 * LeaveGroup sent from aside has the waiting JoinGroup answered as an unknown member, and the join kafkajs tries next is
 * refused, which ends its consumer. A SIGTERM during a rolling restart's rebalance logged both, though it exits 0.
 * A heartbeat answered "not aware of this member" (a member dropped after a stall) stays an error.
 */
function causedByLeavingDuringJoin(message: string, error: unknown): boolean {
  return (message.startsWith("Response JoinGroup") && error === "The coordinator is not aware of this member") ||
    message.includes(JOIN_REFUSED);
}

/**
 * Patches kafkajs (idempotent; before creating clients): faster varints and CRC-32C, no idle 1 ms
 * polling loop. Returns false if the CRC-32C came too late (kafkajs then keeps its own).
 */
export function patchKafkajs(): boolean {
  installFastEncoder();
  installRequestQueueFix();
  return installFastCrc32c();
}

/**
 * How long kafkajs waits for a broker's answer to a request before giving up on it (kafkajs's
 * default, set explicitly because KafkaProducer gives the broker a produce timeout below it).
 */
export const KAFKA_REQUEST_TIMEOUT_MS = 30_000;

/**
 * kafkajs's retries of a failed request, 8 from 100 ms doubling (with jitter): how long an unreachable broker is tried,
 * about 25–45 s (README), before start-up stops naming KAFKA_BROKERS.
 */
const KAFKA_RETRY = { initialRetryTime: 100, retries: 8 };

/** Creates a kafkajs client whose own logs go through our structured logger. */
export function createKafka(options: KafkaOptions): Kafka {
  const log = options.logger.child({ component: "kafkajs" });
  if (!patchKafkajs()) log.debug("kafkajs's record batch encoder was loaded before; it keeps its own CRC-32C");
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    logLevel: logLevel.WARN,
    requestTimeout: KAFKA_REQUEST_TIMEOUT_MS,
    retry: KAFKA_RETRY,
    logCreator: () => ({ namespace, level, log: entry }) => {
      const { message, ...fields } = entry;
      const error = (fields as { error?: unknown }).error;
      const expected = EXPECTED_KAFKAJS_WARNINGS.has(String(message)) || RETRIED_KAFKAJS_ERRORS.has(String(error)) ||
        causedByLeavingDuringJoin(String(message), error);
      const name = expected ? "debug" : KAFKAJS_LEVEL_NAMES[level] ?? "info";
      log[name](String(message), { namespace, ...fields });
    },
  });
}
