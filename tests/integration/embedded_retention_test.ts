/**
 * Retention of the embedded log in a running engine: records that are past EMBEDDED_LOG_RETENTION_HOURS
 * and consumed are deleted when the engine starts, old records it has not consumed yet are kept,
 * and the engine carries on from its checkpoints: nothing counted twice or lost, new records at
 * the next offsets.
 */
import assert from "node:assert/strict";
import type { Config } from "../../engine/config.ts";
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

/** Runs an engine until it has handled 40 views of `sku-old` (10 per user), then stops it gracefully. */
async function handleOldViews(config: Config): Promise<void> {
  const engine = await startEngine(config, silentLogger);
  try {
    await post(engine, 40, "sku-old");
    await counted(engine, 10);
  } finally {
    await engine.stop();
  }
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
      await handleOldViews(d.config);
      const before = await d.inspect(async ({ sql, records }) => {
        // A graceful stop leaves the group's offsets at the checkpoints: retention's floor is where the engine resumes.
        const lagging = await sql`
          select c.topic, c.partition, c.next_offset, g.next_offset as committed
            from partition_checkpoints c left join embedded_log_group_offsets g
              on g.group_id = c.group_id and g.topic = c.topic and g.partition = c.partition
           where c.group_id = ${d.config.GROUP_ID} and g.next_offset is distinct from c.next_offset`;
        assert.deepEqual([...lagging], []);
        // Age every record by two days, as if the engine had been stopped that long.
        await sql`update embedded_log_records set appended_at = appended_at - ${48 * HOUR}`;
        const ends = new Map<number, number>();
        for (const [partition, list] of await records(topics.events)) ends.set(partition, list.length);
        return ends;
      });
      assert.equal([...before.values()].reduce((a, b) => a + b, 0), 40);

      const engine = await startEngine(d.config, silentLogger);
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
        // The facts the first engine appended to product-events as it stopped were old but not consumed: kept, and counted now.
        const product = await eventually("sku-old's views", async () => {
          const response = await fetch(`${engine.url}/v1/products/sku-old`);
          const body = response.status === 200 ? await response.json() : (await response.body?.cancel(), undefined);
          return body?.views === 40 ? body : undefined;
        });
        assert.equal(product.views, 40);
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

onlyOn("embedded", {
  name: "a start-up refused for another GROUP_ID leaves no group behind to hold the log from retention",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("embedded", { EMBEDDED_LOG_RETENTION_HOURS: "24" });
    const { topics } = d;
    try {
      await handleOldViews(d.config);
      // A mistyped GROUP_ID is refused: the database holds the state of the engine's group.
      await assert.rejects(
        startEngine({ ...d.config, GROUP_ID: `${d.config.GROUP_ID}-typo` }, silentLogger),
        /Cannot start with GROUP_ID=/,
      );
      await d.inspect(async ({ sql }) => {
        // It used to be registered at offset 0 before the refusal, holding every record of its topics for ever.
        const groups = await sql<{ group_id: string }[]>`select distinct group_id from embedded_log_group_offsets`;
        assert.deepEqual(groups.map((g) => g.group_id), [d.config.GROUP_ID]);
        await sql`update embedded_log_records set appended_at = appended_at - ${48 * HOUR}`;
      });
      const engine = await startEngine(d.config, silentLogger);
      try {
        const purged = await eventually("the purge at start", async () => {
          const text = (await engine.metrics.render()).body;
          const line = new RegExp(`^engine_log_records_purged_total\\{topic="${topics.events}"\\} (\\d+)`, "m");
          const n = Number(line.exec(text)?.[1] ?? 0);
          return n >= 40 ? n : undefined;
        });
        assert.equal(Number(purged), 40, "every event was consumed and old");
      } finally {
        await engine.stop();
      }
    } finally {
      await remove();
    }
  },
});

onlyOn("embedded", {
  name: "internal topics lose their records once the checkpoints passed them, however recent, and none at or past them",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("embedded", { EMBEDDED_LOG_RETENTION_HOURS: "24" });
    const { topics } = d;
    const internal = [topics.productEvents, topics.analytics];
    /** Per internal partition (`topic:partition`): its checkpoint, its end, and the offsets it still holds. */
    const partitions = () =>
      d.inspect(async ({ sql }) => {
        const rows = await sql<{ topic: string; partition: number; checkpoint: string; end: string }[]>`
          select p.topic, p.partition, coalesce(c.next_offset, 0) as checkpoint, p.next_offset as end
            from embedded_log_partitions p left join partition_checkpoints c
              on c.group_id = ${d.config.GROUP_ID} and c.topic = p.topic and c.partition = p.partition
           where p.topic = any(${internal}::text[])`;
        const held = await sql<{ topic: string; partition: number; offsets: string[] }[]>`
          select topic, partition, array_agg(record_offset order by record_offset) as offsets
            from embedded_log_records where topic = any(${internal}::text[]) group by topic, partition`;
        const kept = new Map(held.map((h) => [`${h.topic}:${h.partition}`, h.offsets.map(Number)]));
        return new Map(rows.map((r) => {
          const key = `${r.topic}:${r.partition}`;
          return [key, { checkpoint: Number(r.checkpoint), end: Number(r.end), kept: kept.get(key) ?? [] }];
        }));
      });
    try {
      const first = await startEngine(d.config, silentLogger);
      try {
        await post(first, 40, "sku-old");
        await counted(first, 10);
        await eventually("sku-old's views", async () => {
          const response = await fetch(`${first.url}/v1/products/sku-old`);
          const body = response.status === 200 ? await response.json() : (await response.body?.cancel(), undefined);
          return body?.views === 40 ? true : undefined;
        });
      } finally {
        await first.stop();
      }
      const before = await partitions();
      const passed = [...before.values()].reduce((n, p) => n + p.kept.filter((o) => o < p.checkpoint).length, 0);
      assert.ok(passed > 0, "the first engine checkpointed some of the internal topics' records");

      // Nothing is old: the records the checkpoints passed go at the start-up's pass all the same; events stay.
      const engine = await startEngine(d.config, silentLogger);
      try {
        await eventually("the purge at start", async () => {
          const text = (await engine.metrics.render()).body;
          const purged = internal.map((topic) => {
            const line = new RegExp(`^engine_log_records_purged_total\\{topic="${topic}"\\} (\\d+)`, "m");
            return Number(line.exec(text)?.[1] ?? 0);
          });
          return purged.reduce((a, b) => a + b, 0) >= passed ? true : undefined;
        });
        await post(engine, 8, "sku-new");
        await counted(engine, 12);
        const product = await eventually("sku-old's views after the purge", async () => {
          const response = await fetch(`${engine.url}/v1/products/sku-old`);
          const body = response.status === 200 ? await response.json() : (await response.body?.cancel(), undefined);
          return body?.views === 40 ? body : undefined;
        });
        assert.equal(product.views, 40, "nothing the purge deleted was counted again or lost");
      } finally {
        await engine.stop();
      }

      const after = await partitions();
      for (const [key, { checkpoint, end, kept }] of after) {
        const was = before.get(key)!;
        // Every record at or past the checkpoint as it stood before the purge, or now, is still there.
        const from = Math.min(was.checkpoint, checkpoint);
        assert.deepEqual(kept.filter((o) => o >= from), Array.from({ length: end - from }, (_, i) => from + i), key);
        assert.ok(kept.every((o) => o >= was.checkpoint), `${key}: ${kept} keeps records the first checkpoint passed`);
      }
      await d.inspect(async ({ records }) => {
        const events = [...(await records(topics.events)).values()].reduce((n, list) => n + list.length, 0);
        assert.equal(events, 48, "events are kept for EMBEDDED_LOG_RETENTION_HOURS");
      });
    } finally {
      await remove();
    }
  },
});
