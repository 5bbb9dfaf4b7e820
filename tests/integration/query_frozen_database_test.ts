/**
 * State queries while PostgreSQL is frozen (connections open, no answers), on real Kafka and PostgreSQL behind
 * tests/helpers/tcp_proxy.ts: a 503 naming the database within QUERY_DATABASE_TIMEOUT_MS, and the queries abandoned
 * meanwhile share one owner lookup and one checkpoint read instead of queueing one each; the routes' own SQL (alerts,
 * rankings) is bounded alike.
 */
import assert from "node:assert/strict";
import { topicNames } from "../../engine/config.ts";
import { startEngine } from "../../engine/engine.ts";
import { silentLogger } from "../../engine/logger.ts";
import { partitionForKey } from "../../engine/partitioner.ts";
import { QUERY_DATABASE_TIMEOUT_MS } from "../../engine/state_reader.ts";
import { onlyOn } from "../helpers/modes.ts";
import { eventually, freshDatabase, testConfig, uniqueName, within } from "../helpers/services.ts";
import { startTcpProxy } from "../helpers/tcp_proxy.ts";

/** An ingest-only instance, owning no partition, looks each key's owner up; one of the group owns the user's partition. */
for (const role of ["ingest", "all"] as const) {
  onlyOn("kafka", {
    name: role === "ingest"
      ? "a user query on an instance owning no partition, PostgreSQL frozen: a 503 naming the database in bounded time, one owner lookup and one checkpoint read for all"
      : "a user query on the instance owning its partition, PostgreSQL frozen: a 503 naming the database in bounded time, one checkpoint read for all",
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const db = await freshDatabase();
      const real = new URL(db.url);
      // An ingest-only instance owns no partition: each user query looks up its partition's owner, then (none found) reads
      // the checkpoint; the owner reads it at once (the key is not in memory). Each is counted by a parameter only it
      // binds: the events topic (on an ingest-only instance: the owner's checkpoints bind it too), the user id.
      const userId = uniqueName("frozen-user");
      let lookupMarker: RegExp | undefined;
      const seen = { lookups: 0, reads: 0 };
      const text = new TextDecoder();
      const proxy = startTcpProxy({ hostname: real.hostname, port: Number(real.port) }, (chunk) => {
        const sent = text.decode(chunk);
        if (lookupMarker) seen.lookups += sent.split(lookupMarker).length - 1;
        seen.reads += sent.split(userId).length - 1;
        return { action: "forward" };
      });
      const viaProxy = new URL(db.url);
      viaProxy.port = String(proxy.port);
      const config = testConfig(viaProxy.toString(), { ROLE: role });
      const topic = topicNames(config).events;
      if (role === "ingest") lookupMarker = new RegExp(`${topic.replaceAll(".", "\\.")}(?!\\.dlq)`);
      const engine = await startEngine(config, silentLogger);
      let asks = 0;
      const ask = async () => {
        asks++;
        const response = await fetch(`${engine.url}/v1/users/${userId}`);
        return {
          status: response.status,
          retryAfter: response.headers.get("retry-after"),
          body: await response.json(),
        };
      };
      try {
        if (role === "all") {
          const partition = `${topic}:${partitionForKey(userId, config.PARTITIONS)}`;
          await eventually(
            "the user's partition owned",
            () => Promise.resolve(engine.runtime.owned().includes(partition) || undefined),
          );
        }
        assert.equal((await ask()).status, 404, "an unknown user, PostgreSQL answering");
        assert.ok(seen.reads >= 1, `the read is seen: ${JSON.stringify(seen)}`);
        if (role === "ingest") assert.ok(seen.lookups >= 1, `the lookup is seen: ${JSON.stringify(seen)}`);
        // Every answer of PostgreSQL held back from now on: its queries neither succeed nor fail.
        proxy.freeze();
        const before = { ...seen };
        const frozenQueries = 3;
        for (let n = 1; n <= frozenQueries; n++) {
          const answer = await within(QUERY_DATABASE_TIMEOUT_MS + 3_000, `query ${n}`, ask());
          assert.equal(answer.status, 503, `query ${n}: ${JSON.stringify(answer.body)}`);
          assert.match(answer.retryAfter ?? "", /^[1-9]\d*$/, `query ${n}: Retry-After`);
          assert.equal(answer.body.type, "urn:actor-engine:problem:database_unavailable", `query ${n}`);
        }
        proxy.thaw();
        const asksBefore = asks;
        await eventually("the user's 404 again", async () => ((await ask()).status === 404 ? true : undefined), 30_000);
        // Each frozen query used to leave a lookup or read of its own waiting on the frozen server (on a pool whose
        // connections all waited, in front of the checkpoints), all run once it answered. Now the frozen queries share
        // one, and each later query runs at most one.
        const later = asks - asksBefore;
        const ran = { lookups: seen.lookups - before.lookups, reads: seen.reads - before.reads };
        const what = `${JSON.stringify(ran)} for ${frozenQueries} queries while frozen and ${later} after`;
        assert.ok(ran.reads <= 1 + later, `checkpoint reads: ${what}`);
        if (role === "ingest") assert.ok(ran.lookups <= 1 + later, `owner lookups: ${what}`);
      } finally {
        proxy.thaw();
        await engine.stop();
        proxy.close();
        await db.drop();
      }
    },
  });
}

onlyOn("kafka", {
  name: "alerts and all-time top products, PostgreSQL frozen: 503s naming the database in bounded time",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await freshDatabase();
    const real = new URL(db.url);
    // The routes' own SQL, not a state read: each used to wait until PostgreSQL answered.
    const proxy = startTcpProxy({ hostname: real.hostname, port: Number(real.port) }, () => ({ action: "forward" }));
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    const engine = await startEngine(testConfig(viaProxy.toString()), silentLogger);
    const paths = ["/v1/alerts", "/v1/alerts?order=stored", "/v1/analytics/top-products?window=all"];
    const ask = async (path: string) => {
      const response = await fetch(`${engine.url}${path}`);
      return { status: response.status, retryAfter: response.headers.get("retry-after"), body: await response.json() };
    };
    try {
      for (const path of paths) assert.equal((await ask(path)).status, 200, `${path}, PostgreSQL answering`);
      proxy.freeze();
      for (const path of paths) {
        const answer = await within(QUERY_DATABASE_TIMEOUT_MS + 3_000, path, ask(path));
        assert.equal(answer.status, 503, `${path}: ${JSON.stringify(answer.body)}`);
        assert.match(answer.retryAfter ?? "", /^[1-9]\d*$/, `${path}: Retry-After`);
        assert.equal(answer.body.type, "urn:actor-engine:problem:database_unavailable", path);
      }
      proxy.thaw();
      for (const path of paths) {
        await eventually(
          `${path} answered again`,
          async () => ((await ask(path)).status === 200 ? true : undefined),
          30_000,
        );
      }
    } finally {
      proxy.thaw();
      await engine.stop();
      proxy.close();
      await db.drop();
    }
  },
});
