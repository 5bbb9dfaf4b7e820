/** Pieces of the kafkajs client fakes that unit tests drive KafkaConsumer with (no broker). */
import type { OffsetCluster } from "../../engine/kafka_high_watermarks.ts";

/** The consumer event names KafkaConsumer subscribes to, as kafkajs 2.2.4 spells them. */
export const CONSUMER_EVENTS = {
  GROUP_JOIN: "group_join",
  CRASH: "crash",
  HEARTBEAT: "heartbeat",
  REBALANCING: "rebalancing",
  REQUEST: "request",
  START_BATCH_PROCESS: "start_batch_process",
} as const;

/** kafkajs's private cluster factory (src/index.js), which engine/kafka_high_watermarks.ts lists the log's ends with. */
export const CREATE_CLUSTER = Symbol("private:Kafka:createCluster");

/**
 * A stand-in for the cluster that factory makes: lists the ends (high watermarks) in `ends` (partition → offset), and a
 * start of 0; a partition missing from `ends` is not listed.
 */
export function fakeOffsetCluster(ends: ReadonlyMap<number, number>): OffsetCluster {
  return {
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    addTargetTopic: () => Promise.resolve(),
    refreshMetadata: () => Promise.resolve(),
    refreshMetadataIfNecessary: () => Promise.resolve(),
    findTopicPartitionMetadata: () => [...ends.keys()].map((partitionId) => ({ partitionId })),
    fetchTopicsOffset: (topics) =>
      Promise.resolve(topics.map(({ topic, fromBeginning, partitions }) => ({
        topic,
        partitions: partitions.filter(({ partition }) => ends.has(partition)).map(({ partition }) => ({
          partition,
          offset: String(fromBeginning ? 0 : ends.get(partition)),
        })),
      }))),
  };
}
