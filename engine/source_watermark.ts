/**
 * How far the idle clock of a partition fed only through other partitions' checkpoints (the analytics partition,
 * fed by the `events` partitions' facts) may follow the wall. Such a partition hears nothing of events its sources
 * have not checkpointed yet: a source catching up a backlog after a restart, or one whose owner died and that nobody
 * has claimed again, still has facts to publish, dated after the clock of its last checkpoint. Its idle clock
 * therefore stops at the stored clock of every source with records left to handle. A source with nothing left (an
 * idle one, caught up) holds nothing back, so that on a quiet shop the clock still follows the wall and `low_traffic`
 * fires. On Kafka the logs' ends are high watermarks: a source with a transaction still open has records left to handle
 * (they come once it commits). What the sources checkpointed was appended here before: while any of it is not handled yet, the partition
 * is not idle.
 */
import type { CheckpointStore } from "./checkpoint.ts";
import type { LogConsumer, TopicPartition } from "./log.ts";

/** The topic whose partitions' checkpoints feed a partition, and how many partitions it has. */
export interface ClockSource {
  readonly topic: string;
  readonly partitions: number;
}

/**
 * The latest time (epoch ms) the idle clock of `fed`, whose next unhandled offset is `position`, may advance to:
 * Infinity when no source has records left to handle, -Infinity while records of `fed` itself wait to be handled.
 * Reads the store before the logs' ends, so that every fact a checkpoint read here published lies before them.
 */
export async function sourceWatermark(
  store: CheckpointStore,
  consumer: LogConsumer,
  groupId: string,
  source: ClockSource,
  fed: TopicPartition,
  position: number,
): Promise<number> {
  const checkpoints = await store.progress(source.topic, groupId);
  const [ends, fedEnd] = await Promise.all([consumer.endOffsets(source.topic), consumer.endOffset(fed)]);
  if (fedEnd > position) return -Infinity;
  const pending: [partition: number, clock: number][] = [];
  for (let partition = 0; partition < source.partitions; partition++) {
    const checkpoint = checkpoints.get(partition);
    if ((ends.get(partition) ?? 0) > (checkpoint?.nextOffset ?? 0)) pending.push([partition, checkpoint?.clock ?? 0]);
  }
  // The earliest clock first: the first source with records still kept is the limit.
  pending.sort((a, b) => a[1] - b[1]);
  for (const [partition, clock] of pending) {
    // Retention may have deleted what the checkpoint has not reached: nothing is left to handle then.
    if ((ends.get(partition) ?? 0) > await consumer.earliestOffset({ topic: source.topic, partition })) return clock;
  }
  return Infinity;
}
