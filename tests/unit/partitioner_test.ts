import assert from "node:assert/strict";
import { Partitioners } from "kafkajs";
import { murmur2, partitionForKey } from "../../engine/partitioner.ts";

// Computed with org.apache.kafka.common.utils.Utils.murmur2 from kafka-clients 3.9.1.
const JAVA_VECTORS: [string, number, number][] = [
  ["", 275646681, 9],
  ["a", -1563381124, 4],
  ["ab", 316155434, 2],
  ["abc", 479470107, 3],
  ["abcd", -1323649548, 8],
  ["alice", 1951417749, 9],
  ["user-42", 1459644460, 4],
  ["produit-é", -1521745079, 9],
  ["21", -973932308, 0],
];

Deno.test("murmur2() matches Kafka's Java implementation", () => {
  for (const [key, hash, partitionOf12] of JAVA_VECTORS) {
    assert.equal(murmur2(new TextEncoder().encode(key)), hash, `hash of '${key}'`);
    assert.equal(partitionForKey(key, 12), partitionOf12, `partition of '${key}'`);
  }
});

Deno.test("partitionForKey() agrees with kafkajs's default partitioner for many keys", () => {
  const kafkajs = Partitioners.DefaultPartitioner();
  for (const count of [1, 3, 12, 50]) {
    const partitionMetadata = Array.from({ length: count }, (_, i) => ({ partitionId: i, leader: 0 }));
    for (let i = 0; i < 2000; i++) {
      // ASCII and not, short and longer than the partitioner's scratch buffer (256 bytes).
      const key = `user-${i}-${"ü".repeat(i % 4)}${"x".repeat(i % 5 === 0 ? 240 + (i % 31) : 0)}`;
      const expected = kafkajs({
        topic: "t",
        partitionMetadata: partitionMetadata as never,
        message: { key, value: null },
      });
      assert.equal(partitionForKey(key, count), expected, `key ${key}, ${count} partitions`);
    }
  }
});
