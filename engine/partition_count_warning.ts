/** The warning a start-up logs for a consumed topic that exists with another partition count than it would be created with. */
import { type Config, type Topics, topicSpecs } from "./config.ts";
import type { Logger } from "./logger.ts";

/**
 * PARTITIONS applies only to topics created at start-up: a topic that already exists keeps its count (changing it
 * would move keys away from their checkpointed state), so a changed setting is named instead of silently ignored.
 * The analytics topic is created with one partition whatever PARTITIONS says, and is named against that one.
 */
export function warnOfIgnoredPartitions(
  log: Logger,
  config: Config,
  topics: Topics,
  counts: ReadonlyMap<string, number>,
): void {
  for (const { topic, partitions } of topicSpecs(config, topics)) {
    const existing = counts.get(topic);
    if (existing === undefined || existing === partitions) continue;
    if (topic === topics.analytics) {
      // Its global actor lives on one of them (the one its key hashes to); the others stay empty.
      log.warn("the analytics topic exists with more than the one partition it is created with; it keeps its own", {
        topic,
        partitions: existing,
        created: partitions,
      });
      continue;
    }
    log.warn("topic exists with another partition count than PARTITIONS; it keeps its own", {
      topic,
      partitions: existing,
      PARTITIONS: config.PARTITIONS,
    });
  }
}
