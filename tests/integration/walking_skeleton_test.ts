/**
 * The walking skeleton, on each log: POST an event → log (Kafka with acks=all, or the embedded log
 * in PGlite) → consumer → user actor → checkpoint (state + next offset, one transaction) → GET;
 * then a restart resumes from the checkpoint without counting twice.
 */
import assert from "node:assert/strict";
import { type RunningEngine, startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { forEachLog, type LogView } from "../helpers/modes.ts";
import { eventually } from "../helpers/services.ts";

const view = (userId: string, productId: string) => ({
  type: "product_viewed",
  userId,
  occurredAt: "2026-11-01T10:00:00.000Z",
  properties: { productId, price: 19.99, category: "shoes" },
});

async function post(engine: RunningEngine, event: unknown): Promise<{ eventIds: string[]; accepted: number }> {
  const response = await fetch(`${engine.url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(event),
  });
  assert.equal(response.status, 202);
  return await response.json();
}

forEachLog(
  "walking skeleton: POST → log → user actor → checkpoint → GET, resumed after a restart",
  { sanitizeOps: true, sanitizeResources: true },
  async (d) => {
    const { config, topics } = d;
    const partition = partitionForKey("alice", config.PARTITIONS);
    const checkpointOf = async ({ sql }: LogView) => {
      const [row] = await sql`
        select c.next_offset, s.state from partition_checkpoints c, actor_states s
         where c.topic = ${topics.events} and c.partition = ${partition}
           and s.kind = 'user' and s.key = 'alice' and c.next_offset > 0`;
      return row;
    };
    let engine = await startEngine(config, silentLogger);
    let running = true;
    try {
      const accepted = await post(engine, view("alice", "sku-1"));
      assert.equal(accepted.accepted, 1);
      assert.equal(accepted.eventIds.length, 1);

      // The log holds the event keyed by its user, with the server-assigned id, where Kafka's partitioner puts it.
      const [record] = await d.inspect(async (log) => (await log.records(topics.events)).get(partition)!, engine);
      assert.equal(record.key, "alice");
      assert.equal(record.offset, 0);
      const stored = JSON.parse(new TextDecoder().decode(record.value!));
      assert.equal(stored.eventId, accepted.eventIds[0]);
      assert.equal(stored.type, "product_viewed");

      // The actor handled it and GET answers from live state.
      const user = await eventually("alice's state", async () => {
        const response = await fetch(`${engine.url}/v1/users/alice`);
        const body = await response.json();
        return response.status === 200 && body.productViews === 1 ? body : undefined;
      });
      assert.deepEqual(user.recentProducts, ["sku-1"]);
      assert.equal(user.source, "memory");

      // The checkpoint holds the state and the partition's next offset, while running and after a stop.
      await eventually("the checkpoint", () => d.inspect(checkpointOf, engine));
      await engine.stop();
      running = false;
      const checkpoint = await d.inspect(checkpointOf);
      assert.ok(checkpoint, "a checkpoint was written");
      assert.equal(Number(checkpoint.next_offset), 1);
      assert.equal(checkpoint.state.productViews, 1);

      // A restarted engine resumes from the checkpoint: the first event is not counted twice.
      engine = await startEngine(config, silentLogger);
      running = true;
      await post(engine, view("alice", "sku-2"));
      const after = await eventually("alice's second view", async () => {
        const body = await (await fetch(`${engine.url}/v1/users/alice`)).json();
        return body.productViews >= 2 && body.source === "memory" ? body : undefined;
      });
      assert.equal(after.productViews, 2);
      assert.deepEqual(after.recentProducts, ["sku-2", "sku-1"]);

      const missing = await fetch(`${engine.url}/v1/users/nobody`);
      assert.equal(missing.status, 404);
      assert.equal(missing.headers.get("content-type"), "application/problem+json");
      await missing.body?.cancel();
    } finally {
      if (running) await engine.stop();
    }
  },
);
