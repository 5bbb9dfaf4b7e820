/**
 * Retention of the embedded log in a running engine: records that are past EMBEDDED_LOG_RETENTION_HOURS
 * and consumed are deleted when the engine starts, and the engine carries on from its checkpoints
 * as if nothing happened: nothing counted twice or lost, new records at the next offsets.
 */
import assert from "node:assert/strict";
import { type RunningEngine, startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { deploy, onlyOn } from "../helpers/modes.ts";
import { eventually } from "../helpers/services.ts";

const USERS = ["ret-a", "ret-b", "ret-c", "ret-d"];
const HOUR = 3_600_000;

async function post(engine: RunningEngine, views: number, productId: string): Promise<void> {
  const events = Array.from({ length: views }, (_, i) => ({
    type: "product_viewed",
    userId: USERS[i % USERS.length],
    properties: { productId, price: 5 },
  }));
  const response = await fetch(`${engine.url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(events),
  });
  assert.equal(response.status, 202, await response.text());
}

/** Waits until every user shows `views` product views. */
function counted(engine: RunningEngine, views: number): Promise<true> {
  return eventually(`${views} views per user`, async () => {
    for (const user of USERS) {
      const response = await fetch(`${engine.url}/v1/users/${user}`);
      const body = await response.json();
      if (response.status !== 200 || body.productViews !== views) return undefined;
    }
    return true;
  });
}

onlyOn("embedded", {
  name: "retention deletes consumed records past EMBEDDED_LOG_RETENTION_HOURS at start; the engine resumes exactly",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("embedded", { EMBEDDED_LOG_RETENTION_HOURS: "24" });
    const { topics } = d;
    try {
      let engine = await startEngine(d.config, silentLogger);
      try {
        await post(engine, 40, "sku-old");
        await counted(engine, 10);
        await eventually("the group's committed offsets past every event", () =>
          d.inspect(async ({ sql }) => {
            const [{ n }] = await sql<{ n: string }[]>`
              select coalesce(sum(next_offset), 0) as n from embedded_log_group_offsets
               where group_id = ${d.config.GROUP_ID} and topic = ${topics.events}`;
            return Number(n) === 40 ? true : undefined;
          }, engine));
      } finally {
        await engine.stop();
      }
      // Age every record by two days, as if the engine had been stopped that long.
      const before = await d.inspect(async ({ sql, records }) => {
        await sql`update embedded_log_records set appended_at = appended_at - ${48 * HOUR}`;
        const ends = new Map<number, number>();
        for (const [partition, list] of await records(topics.events)) ends.set(partition, list.length);
        return ends;
      });
      assert.equal([...before.values()].reduce((a, b) => a + b, 0), 40);

      engine = await startEngine(d.config, silentLogger);
      try {
        const purged = await eventually("the purge at start", async () => {
          const text = (await engine.metrics.render()).body;
          const line = new RegExp(`^engine_log_records_purged_total\\{topic="${topics.events}"\\} (\\d+)`, "m");
          const n = Number(line.exec(text)?.[1] ?? 0);
          return n >= 40 ? n : undefined;
        });
        assert.equal(Number(purged), 40, "every event was consumed and old");
        await post(engine, 8, "sku-new");
        await counted(engine, 12);
        const user = await (await fetch(`${engine.url}/v1/users/${USERS[0]}`)).json();
        assert.deepEqual(user.recentProducts, ["sku-new", "sku-old"]);
      } finally {
        await engine.stop();
      }

      await d.inspect(async ({ records }) => {
        for (const [partition, list] of await records(topics.events)) {
          const end = before.get(partition)!;
          // Only the new records are left, numbered on from where the old ones ended.
          assert.deepEqual(list.map((r) => r.offset), list.map((_, i) => end + i), `events:${partition}`);
          assert.ok(list.every((r) => new TextDecoder().decode(r.value!).includes("sku-new")));
        }
      });
    } finally {
      await remove();
    }
  },
});
