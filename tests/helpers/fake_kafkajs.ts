/** Pieces of the kafkajs client fakes that unit tests drive KafkaConsumer with (no broker). */

/** The consumer event names KafkaConsumer subscribes to, as kafkajs 2.2.4 spells them. */
export const CONSUMER_EVENTS = {
  GROUP_JOIN: "group_join",
  CRASH: "crash",
  HEARTBEAT: "heartbeat",
  REBALANCING: "rebalancing",
  REQUEST: "request",
  START_BATCH_PROCESS: "start_batch_process",
} as const;
