/**
 * ROLE=ingest on real Kafka and PostgreSQL: an ingest-only instance accepts events and answers
 * state queries, but never joins the consumer group; the processing instance (ROLE=all) owns every
 * partition and holds the state, and the ingest instance forwards queries to it.
 */
import assert from "node:assert/strict";
import { type Config, parseConfig } from "../../engine/config.ts";
import { type RunningEngine, startEngine } from "../../engine/engine.ts";
import { ConfigError } from "../../engine/errors.ts";
import { silentLogger } from "../../engine/logger.ts";
import { onlyOn } from "../helpers/modes.ts";
import { ODD_IDS } from "../helpers/odd_ids.ts";
import { eventually, freshDatabase, testConfig } from "../helpers/services.ts";

const USERS = 20;
const VIEWS_PER_USER = 3;

/** `config` as the environment it was parsed from, with `changes`: another instance of the same deployment. */
function variant(config: Config, changes: Record<string, string>): Config {
  return parseConfig({ ...Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)])), ...changes });
}

/** Asserts that an engine with `config` does not start, with a ConfigError naming every one of `named`. */
async function refusedAtStart(config: Config, named: readonly string[]): Promise<void> {
  await assert.rejects(
    async () => {
      const started = await startEngine(config, silentLogger);
      await started.stop();
    },
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      for (const text of named) assert.ok(error.message.includes(text), error.message);
      return true;
    },
  );
}

/** Runs `fn` beside a processing instance (ROLE=all) on a fresh database, then stops it and drops the database. */
async function withProcessing(fn: (processing: Config, worker: RunningEngine) => Promise<void>): Promise<void> {
  const db = await freshDatabase();
  const processing = testConfig(db.url);
  const worker = await startEngine(processing, silentLogger);
  try {
    await fn(processing, worker);
  } finally {
    await worker.stop();
    await db.drop();
  }
}

onlyOn("kafka", {
  name: "an ingest-only instance publishes events and forwards queries; the processing instance owns the state",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const processing = testConfig(db.url);
    const ingestConfig = variant(processing, { ROLE: "ingest" });
    const worker = await startEngine(processing, silentLogger);
    const ingest = await startEngine(ingestConfig, silentLogger);
    try {
      await eventually(
        "the processing instance to own every partition",
        () => Promise.resolve(worker.runtime.owned().length >= processing.PARTITIONS * 2 ? true : undefined),
      );
      const at = new Date(Date.now() - 60_000).toISOString();
      const events = [];
      for (let u = 0; u < USERS; u++) {
        for (let k = 0; k < VIEWS_PER_USER; k++) {
          events.push({
            type: "product_viewed",
            userId: `ing-${u}`,
            occurredAt: at,
            properties: { productId: `sku-${k}`, price: 5 },
          });
        }
      }
      const posted = await fetch(`${ingest.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(events),
      });
      assert.equal(posted.status, 202);
      assert.equal((await posted.json()).accepted, USERS * VIEWS_PER_USER);

      for (let u = 0; u < USERS; u++) {
        const body = await eventually(`user ing-${u} on the ingest instance`, async () => {
          const response = await fetch(`${ingest.url}/v1/users/ing-${u}`);
          const json = await response.json();
          return response.status === 200 && json.productViews === VIEWS_PER_USER ? json : undefined;
        });
        assert.equal(body.instance, worker.instanceId, "answered by the owner, through the ingest instance");
        assert.equal(body.source, "memory");
        assert.ok(worker.runtime.lookup("user", `ing-${u}`), "the state lives on the processing instance");
      }
      assert.deepEqual(ingest.runtime.owned(), [], "the ingest instance owns no partition");
      assert.equal(ingest.runtime.actorCount, 0);
      const ready = await fetch(`${ingest.url}/readyz`);
      assert.equal(ready.status, 200);
      await ready.body?.cancel();
    } finally {
      await ingest.stop();
      await worker.stop();
      await db.drop();
    }
  },
});

onlyOn("kafka", {
  name: "an ingest-only instance with another GROUP_ID than the state's owner is refused at start-up, naming both",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // It found no owner under its own group for any partition, so it never forwarded a query: every user, product and
    // analytics answer came from the last checkpoint (`source: checkpoint`), however far the owner's memory was ahead.
    await withProcessing(async (processing) => {
      const typo = variant(processing, { ROLE: "ingest", GROUP_ID: `${processing.GROUP_ID}-typo` });
      await refusedAtStart(typo, [`GROUP_ID="${typo.GROUP_ID}"`, `"${processing.GROUP_ID}"`]);
      // The processing group's own ingest instance still starts.
      const ingest = await startEngine(variant(processing, { ROLE: "ingest" }), silentLogger);
      await ingest.stop();
    });
  },
});

onlyOn("kafka", {
  name: "an ingest-only instance with another TOPIC_PREFIX than its group processes is refused at start-up",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // It created its own topics and answered 202 to events appended where no instance of the group reads: never
    // processed, and never seen in any query.
    await withProcessing(async (processing, worker) => {
      await eventually(
        "the processing instance to own every partition",
        () => Promise.resolve(worker.runtime.owned().length >= processing.PARTITIONS * 2 ? true : undefined),
      );
      const typo = variant(processing, { ROLE: "ingest", TOPIC_PREFIX: `${processing.TOPIC_PREFIX}typo.` });
      await refusedAtStart(typo, [`TOPIC_PREFIX="${typo.TOPIC_PREFIX}"`, `"${processing.TOPIC_PREFIX}events"`]);
      const ingest = await startEngine(variant(processing, { ROLE: "ingest" }), silentLogger);
      await ingest.stop();
    });
  },
});

onlyOn("kafka", {
  name: "an ingest-only instance forwards queries for ids with unusual characters to the same key on the owner",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const processing = testConfig(db.url);
    const worker = await startEngine(processing, silentLogger);
    const ingest = await startEngine(variant(processing, { ROLE: "ingest" }), silentLogger);
    try {
      await eventually(
        "the processing instance to own every partition",
        () => Promise.resolve(worker.runtime.owned().length >= processing.PARTITIONS * 2 ? true : undefined),
      );
      const at = new Date(Date.now() - 60_000).toISOString();
      // Each user views the product of its own id as many times as its place in the list plus one, so that `Bob` and
      // `bob`, or the NFC and NFD forms of one text, each show their own count.
      const events = ODD_IDS.flatMap((id, i) =>
        Array.from({ length: i + 1 }, () => ({
          type: "product_viewed",
          userId: id,
          occurredAt: at,
          properties: { productId: id, price: 5 },
        }))
      );
      const posted = await fetch(`${ingest.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(events),
      });
      assert.equal(posted.status, 202, await posted.text());
      for (const [i, id] of ODD_IDS.entries()) {
        for (const kind of ["users", "products"] as const) {
          const body = await eventually(`${kind} ${JSON.stringify(id)} through the ingest instance`, async () => {
            const response = await fetch(`${ingest.url}/v1/${kind}/${encodeURIComponent(id)}`);
            const json = await response.json();
            const count = kind === "users" ? json.productViews : json.views;
            return response.status === 200 && count === i + 1 ? json : undefined;
          });
          assert.equal(kind === "users" ? body.userId : body.productId, id);
          assert.equal(body.instance, worker.instanceId, `${kind} ${id} answered by the owner`);
        }
        assert.ok(worker.runtime.lookup("user", id), `user ${id} lives on the processing instance`);
      }
      // A key the owner does not hold is the owner's 404, passed on: not another key's state.
      const unknown = await fetch(`${ingest.url}/v1/users/${encodeURIComponent("BOB")}`);
      assert.equal(unknown.status, 404);
      assert.equal((await unknown.json()).type, "urn:actor-engine:problem:not_found");
    } finally {
      await ingest.stop();
      await worker.stop();
      await db.drop();
    }
  },
});
