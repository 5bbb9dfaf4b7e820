/**
 * The engine: how storefront events become per-key state, checkpoints and outputs.
 *
 *   HTTP (http/)  ──append, acks=all──▶  log: Kafka or embedded (log.ts, kafka_*.ts)
 *                                          │ consumer group: partitions assigned to this instance;
 *                                          │ each partition's batches in a lane of their own (at most
 *                                          │ two; the partition paused while full), so one slow
 *                                          │ partition does not hold up kafkajs's next fetch
 *                                          ▼
 *   ActorRuntime (runtime.ts): one PartitionWorker per owned partition (partition_worker.ts)
 *     · claims the partition in PostgreSQL (epoch fencing) and resumes at its checkpointed offset
 *     · activates actors on demand (state batch-loaded from PostgreSQL), one per key
 *     · runs each key's messages in order through its ActorLogic (actor.ts, logic in actors/)
 *     · records are parsed by json_parse.ts (exact property names on this Deno's V8) and validated
 *       with zod, through a compiled fast path for values zod would return unchanged
 *       (schema_check.ts); bad records go to the DLQ (dead_letter.ts)
 *     · handlers emit outputs through ctx
 *     · pending timers live in a TimerTable (timer_table.ts); idle actors are packed into compact
 *       strings (state_packer.ts) and unpacked by their next message
 *     · beyond MAX_ACTORS the instance's least recently used clean actors are passivated, wherever
 *       they are (lru_cut.ts merges the partitions' use orders, reading only as far as the excess)
 *   Facts for product and global actors are published in bundles, one record per target partition
 *     per checkpoint (fact_bundle.ts), and expanded back into one message each when consumed.
 *   Checkpoint: outputs appended and acknowledged first (the "publish" phase of
 *     engine_checkpoint_phase_seconds), then dirty states + next offset in one
 *     transaction (sql/checkpoints.ts), with the query projections: alerts, latest recommendations,
 *     the global actor's finished analytics minutes (a stored output, sql/analytics_minutes.ts), and
 *     the product actors' per-minute counts, added up (product_minutes.ts, sql/product_minutes.ts);
 *     a replay from it re-produces identical outputs and recounts only what was not committed.
 *   Queries read state through state_reader.ts: live memory, else the last checkpoint (`asOf`).
 *   Embedded mode's log drops records past its retention once every group has consumed them
 *     (embedded_log_retention.ts); Kafka's retention is the broker's.
 *
 * Configuration (config.ts) is parsed once and passed down; errors are typed (errors.ts);
 * logs are structured JSON (logger.ts). `startEngine` (engine.ts) wires it all together.
 */
export { type Config, loadConfig, parseConfig, topicNames, type Topics } from "./config.ts";
export { type RunningEngine, startEngine } from "./engine.ts";
export type { ActorContext, ActorLogic, Emitted, OutputTopic } from "./actor.ts";
export type {
  LogConsumer,
  LogProducer,
  LogRecord,
  OutgoingRecord,
  PartitionListener,
  RecordBatch,
  TopicPartition,
} from "./log.ts";
export { createLogger, type Logger } from "./logger.ts";
export * from "./errors.ts";
