/**
 * The start-up warning for consumed topics that exist with another partition count than they would be created with:
 * PARTITIONS for `events` and `product-events`, always 1 for the internal `analytics` topic.
 */
import assert from "node:assert/strict";
import { parseConfig, topicNames } from "../../engine/config.ts";
import { createLogger } from "../../engine/logger.ts";
import { warnOfIgnoredPartitions } from "../../engine/partition_count_warning.ts";

function warnings(partitions: string, counts: Record<"events" | "productEvents" | "analytics", number>) {
  const config = parseConfig({ PARTITIONS: partitions });
  const topics = topicNames(config);
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("warn", (line) => lines.push(JSON.parse(line)));
  warnOfIgnoredPartitions(
    log,
    config,
    topics,
    new Map([
      [topics.events, counts.events],
      [topics.productEvents, counts.productEvents],
      [topics.analytics, counts.analytics],
    ]),
  );
  return { topics, lines };
}

Deno.test("a consumed topic with another count than PARTITIONS is named with both counts", () => {
  const { topics, lines } = warnings("12", { events: 6, productEvents: 12, analytics: 1 });
  assert.equal(lines.length, 1);
  assert.equal(lines[0].topic, topics.events);
  assert.equal(lines[0].partitions, 6);
  assert.equal(lines[0].PARTITIONS, 12);
});

Deno.test("an analytics topic of several partitions is named against its one partition, not against PARTITIONS", () => {
  // Every topic created by hand with PARTITIONS partitions (a provisioning script): only analytics differs.
  const { topics, lines } = warnings("12", { events: 12, productEvents: 12, analytics: 12 });
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.equal(line.topic, topics.analytics);
  assert.equal(line.partitions, 12);
  // It said "another partition count than PARTITIONS" with partitions 12 and PARTITIONS 12: a contradiction.
  assert.doesNotMatch(String(line.msg), /PARTITIONS/);
  assert.equal(line.PARTITIONS, undefined);
  assert.equal(line.created, 1);
});
