/**
 * Start-up that does not complete: the HTTP address is bound before anything else is opened (a
 * busy or impossible HOST/PORT stops the engine naming both, with nothing opened and no group
 * joined), the engine answers 503 until it is ready, and a start-up that fails or is stopped by a
 * signal after it opened its backend or joined its group closes all of it (in the same process, the
 * same DATA_DIR and port can be used again at once; on Kafka, the group is left at once).
 */
import assert from "node:assert/strict";
import { AssignerProtocol, Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { type Config, consumedTopics } from "../../engine/config.ts";
import { type RunningEngine, startEngine } from "../../engine/engine.ts";
import { ConfigError, StartAbortedError } from "../../engine/errors.ts";
import { createLogger, type Logger, silentLogger } from "../../engine/logger.ts";
import { freePort, spawnEngine } from "../helpers/engine_process.ts";
import { startPrivateBroker } from "../helpers/kafka_broker.ts";
import { silentPeer } from "../helpers/silent_peer.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp_proxy.ts";
import { deploy, type Deployment, deployOnServers, forEachLog, onlyOn } from "../helpers/modes.ts";
import { eventually, freshDatabase, services, testConfig, uniqueName, within } from "../helpers/services.ts";

/** A logger that calls `onMessage` with the message of every entry at info level and above. */
function watchingLogger(onMessage: (msg: string) => void): Logger {
  return createLogger("info", (line) => onMessage(JSON.parse(line).msg));
}

/** Whether something can bind 127.0.0.1:`port` (the engine that had it closed its server). */
function portIsFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** Posts one product view of `userId` and waits until the engine has counted it. */
async function viewedOnce(engine: RunningEngine, userId: string): Promise<void> {
  const posted = await fetch(`${engine.url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: "product_viewed", userId, properties: { productId: "p1" } }),
  });
  assert.equal(posted.status, 202);
  await posted.body?.cancel();
  await eventually(`${userId}'s view`, async () => {
    const response = await fetch(`${engine.url}/v1/users/${userId}`);
    const body = response.status === 200 ? await response.json() : (await response.body?.cancel(), {});
    return body.productViews === 1 ? true : undefined;
  });
}

/** Starts an engine on `config` in this process, checks that it works, and stops it. */
async function startsAndServes(config: Config, userId: string): Promise<void> {
  const engine = await startEngine(config, silentLogger);
  try {
    await viewedOnce(engine, userId);
  } finally {
    await engine.stop();
  }
}

const BUSY_PORT = /Cannot listen on 127\.0\.0\.1:(\d+) \(HOST, PORT\): address in use/;

onlyOn("no log", "a busy PORT or an unknown HOST stops the process at once, naming HOST and PORT", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "startup-" });
  const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (holder.addr as Deno.NetAddr).port;
    const busy = spawnEngine({ dataDir, port });
    assert.notEqual((await busy.exited).code, 0);
    assert.equal(BUSY_PORT.exec(busy.logs())?.[1], String(port), busy.logs());

    const unknown = spawnEngine({ dataDir, env: { HOST: "nonexistent.invalid" } });
    assert.notEqual((await unknown.exited).code, 0);
    assert.match(unknown.logs(), /Cannot listen on nonexistent\.invalid:\d+ \(HOST, PORT\): /);
  } finally {
    holder.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

onlyOn(
  "no log",
  "while start-up waits for a database that does not answer: /healthz 200, /readyz 503, the API 503; SIGTERM exits 0 at once",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "startup-" });
    // A "database" that accepts connections and never answers: start-up waits on it (up to the URL's
    // connect_timeout) before it tries the broker, on which nothing listens.
    const silent = silentPeer();
    const engine = spawnEngine({
      dataDir,
      env: {
        KAFKA_BROKERS: `127.0.0.1:${freePort()}`,
        DATABASE_URL: `postgres://u:p@127.0.0.1:${silent.port}/db?connect_timeout=120`,
        LOG_LEVEL: "info",
      },
    });
    try {
      await eventually(
        "the engine to answer /healthz",
        async () => {
          const response = await fetch(`${engine.url}/healthz`);
          await response.body?.cancel();
          return response.status === 200 ? true : undefined;
        },
        15_000,
        25,
      );

      const ready = await fetch(`${engine.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.deepEqual(await ready.json(), {
        status: "not ready",
        checks: { database: "not open yet (starting up)", log: "not open yet (starting up)", consumer: "starting up" },
      });
      for (
        const request of [
          new Request(`${engine.url}/v1/users/u1`),
          new Request(`${engine.url}/v1/events`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ type: "product_viewed", userId: "u1", properties: { productId: "p1" } }),
          }),
        ]
      ) {
        const response = await fetch(request);
        assert.equal(response.status, 503, request.url);
        assert.equal(response.headers.get("retry-after"), "5");
        assert.equal((await response.json()).type, "urn:actor-engine:problem:starting");
      }
      // What the running engine refuses is refused alike, not told to retry: a wrong method, a path no route serves.
      const wrongMethod = await fetch(`${engine.url}/v1/users/u1`, { method: "DELETE" });
      assert.equal(wrongMethod.status, 405);
      assert.equal(wrongMethod.headers.get("allow"), "GET, HEAD");
      await wrongMethod.body?.cancel();
      const noRoute = await fetch(`${engine.url}/v1/user/u1`);
      assert.equal(noRoute.status, 404);
      assert.equal((await noRoute.json()).type, "about:blank");

      const signalled = performance.now();
      const status = await engine.kill("SIGTERM");
      const ms = performance.now() - signalled;
      assert.equal(status.code, 0, engine.logs());
      assert.ok(ms < 3_000, `exited ${Math.round(ms)} ms after SIGTERM`);
      assert.match(engine.logs(), /start-up stopped by the signal/);
    } finally {
      await engine.kill("SIGKILL");
      await silent.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

onlyOn(
  "no log",
  "a DATABASE_URL at a server that is not PostgreSQL (it closes the connection) stops start-up naming DATABASE_URL",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "startup-" });
    // An HTTP server answers PostgreSQL's start-up message with a 400 and closes the connection; the engine used to
    // connect to it again at once, for ever, and never exited.
    const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => new Response("hello"));
    const engine = spawnEngine({
      dataDir,
      env: {
        KAFKA_BROKERS: `127.0.0.1:${freePort()}`,
        DATABASE_URL: `postgres://u:secret@127.0.0.1:${http.addr.port}/db`,
      },
    });
    try {
      const status = await within(20_000, "the engine's exit", engine.exited);
      assert.equal(status.code, 2, engine.logs());
      assert.match(
        engine.logs(),
        new RegExp(
          `Cannot start: PostgreSQL at DATABASE_URL="postgres://u:\\*\\*\\*@127\\.0\\.0\\.1:${http.addr.port}/db" ` +
            `cannot be used: write CONNECTION_CLOSED 127\\.0\\.0\\.1:${http.addr.port}`,
        ),
      );
    } finally {
      await engine.kill("SIGKILL");
      await http.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

onlyOn(
  "postgresql",
  "a PostgreSQL that accepts connections but never completes their start-up stops start-up after connect_timeout",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "startup-" });
    const url = new URL(services().databaseUrl);
    // The real server behind a proxy that delivers none of its answers: the TCP connection is made, the
    // authentication never completes.
    const proxy = startTcpProxy({ hostname: url.hostname, port: Number(url.port) });
    proxy.freeze();
    url.port = String(proxy.port);
    const engine = spawnEngine({
      dataDir,
      env: { KAFKA_BROKERS: `127.0.0.1:${freePort()}`, DATABASE_URL: url.toString() },
    });
    try {
      const started = performance.now();
      const status = await within(20_000, "the engine's exit", engine.exited);
      const ms = performance.now() - started;
      assert.equal(status.code, 2, engine.logs());
      assert.match(
        engine.logs(),
        new RegExp(
          `Cannot start: PostgreSQL at DATABASE_URL="[^"]*127\\.0\\.0\\.1:${proxy.port}[^"]*" cannot be used: ` +
            `write CONNECT_TIMEOUT 127\\.0\\.0\\.1:${proxy.port}`,
        ),
      );
      // The URL's connect_timeout, 5 s by default, and the process's own start.
      assert.ok(ms >= 5_000, `exited ${Math.round(ms)} ms after its start, before connect_timeout`);
    } finally {
      await engine.kill("SIGKILL");
      proxy.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

/** A fresh database, made refusable by `prepare` (as its superuser), that the engine is started on; its logs and status. */
async function startOnDatabase(
  prepare: (admin: postgres.Sql, name: string, url: URL) => Promise<URL>,
): Promise<{ code: number; logs: string; url: URL }> {
  const dataDir = await Deno.makeTempDir({ prefix: "startup-" });
  const db = await freshDatabase();
  const name = new URL(db.url).pathname.slice(1);
  const admin = postgres(services().databaseUrl, { max: 1, onnotice: () => {} });
  const url = await prepare(admin, name, new URL(db.url));
  const id = uniqueName("t");
  const engine = spawnEngine({
    dataDir,
    env: {
      KAFKA_BROKERS: services().kafkaBrokers,
      DATABASE_URL: url.toString(),
      TOPIC_PREFIX: `${id}.`,
      GROUP_ID: `${id}-group`,
      PARTITIONS: "1",
    },
  });
  try {
    const status = await within(60_000, "the engine's exit", engine.exited);
    return { code: status.code, logs: engine.logs(), url };
  } finally {
    await engine.kill("SIGKILL");
    await db.drop();
    await admin.end();
    await Deno.remove(dataDir, { recursive: true });
  }
}

onlyOn(
  "postgresql",
  "a DATABASE_URL whose role may not create the engine's tables stops start-up naming DATABASE_URL (exit code 2)",
  async () => {
    const role = uniqueName("reader");
    const { code, logs, url } = await startOnDatabase(async (admin, _name, url) => {
      // PostgreSQL 15 and later: only the database's owner creates tables in its public schema.
      await admin.unsafe(`create role ${role} login`);
      url.username = role;
      return url;
    });
    try {
      assert.equal(code, 2, logs);
      assert.match(
        logs,
        new RegExp(
          `Cannot start: PostgreSQL at DATABASE_URL="${url.toString().replaceAll(".", "\\.")}" refused start-up ` +
            `\\(migrations\\): permission denied for schema public \\(the role of DATABASE_URL must own the database`,
        ),
      );
    } finally {
      const admin = postgres(services().databaseUrl, { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop role if exists ${role}`);
      await admin.end();
    }
  },
);

onlyOn(
  "postgresql",
  "a DATABASE_URL at a PostgreSQL that takes no writes stops start-up naming DATABASE_URL (exit code 2)",
  async () => {
    const { code, logs } = await startOnDatabase(async (admin, name, url) => {
      await admin.unsafe(`alter database ${name} set default_transaction_read_only = on`);
      return url;
    });
    assert.equal(code, 2, logs);
    assert.match(
      logs,
      /Cannot start: PostgreSQL at DATABASE_URL="[^"]*" refused start-up \(migrations\): cannot execute .* in a read-only transaction \(the server takes no writes/,
    );
  },
);

onlyOn("postgresql", {
  name: "a PostgreSQL that stops answering during the migrations stops start-up naming DATABASE_URL",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const database = await freshDatabase();
    const url = new URL(database.url);
    // The real server behind a proxy that holds back all its answers from the migration lock's statement on, as a
    // server frozen (or a network path gone silent) just after start-up's first query.
    const text = new TextDecoder();
    const proxy: TcpProxy = startTcpProxy({ hostname: url.hostname, port: Number(url.port) }, (chunk) => {
      if (text.decode(chunk).includes("pg_advisory_xact_lock")) proxy.freeze();
      return { action: "forward" };
    });
    url.port = String(proxy.port);
    const config = testConfig(url.toString());
    try {
      let started: RunningEngine | undefined;
      const failure = await within(
        60_000,
        "the start-up",
        startEngine(config, silentLogger).then((engine) => (started = engine, undefined), (error: Error) => error),
      );
      await started?.stop();
      assert.ok(failure instanceof ConfigError, String(failure));
      // It used to wait for good.
      assert.match(
        failure.message,
        new RegExp(
          `^Cannot start: PostgreSQL at DATABASE_URL="[^"]*127\\.0\\.0\\.1:${proxy.port}[^"]*" stopped answering ` +
            "during start-up \\(migrations\\)",
        ),
      );
    } finally {
      proxy.close();
      await database.drop();
    }
  },
});

/**
 * A KAFKA_BROKERS that never answers, or that is not Kafka: start-up stops in bounded time naming it (kafkajs's 30 s
 * request timeout, or its retries of a closed connection: about 25–45 s).
 */
async function brokerNeverAnswers(): Promise<void> {
  const { kafkaBrokers } = services();
  const [hostname, port] = kafkaBrokers.split(",")[0].split(":");
  // The real broker behind a proxy that delivers none of its answers, and an HTTP server (it answers 400 and closes).
  const silent = startTcpProxy({ hostname, port: Number(port) });
  silent.freeze();
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => new Response("hello"));
  const database = await freshDatabase();
  const dataDir = await Deno.makeTempDir({ prefix: "startup-" });
  const engines = [`127.0.0.1:${silent.port}`, `127.0.0.1:${http.addr.port}`].map((brokers) => ({
    brokers,
    engine: spawnEngine({ dataDir, env: { KAFKA_BROKERS: brokers, DATABASE_URL: database.url } }),
  }));
  try {
    // kafkajs's 30 s request timeout, or its retries of a closed connection (about 25–45 s).
    const statuses = await within(90_000, "the engines' exits", Promise.all(engines.map((e) => e.engine.exited)));
    engines.forEach(({ brokers, engine }, i) => {
      assert.equal(statuses[i].code, 2, engine.logs());
      assert.ok(
        engine.logs().includes(`Cannot start: Kafka at KAFKA_BROKERS="${brokers}" cannot be used: `),
        engine.logs(),
      );
      // The silent one: what happened, where kafkajs's own error said only "Broker not connected" (of a broker that did
      // connect). The HTTP server closes the connection: "Closed connection".
      assert.match(
        engine.logs(),
        i === 0
          ? /cannot be used: the broker took the connection but did not answer its first request \(ApiVersions\) within 30000 ms/
          : /cannot be used: Closed connection/,
      );
    });
  } finally {
    for (const { engine } of engines) await engine.kill("SIGKILL");
    silent.close();
    await http.shutdown();
    await database.drop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

/** A broker that hangs once start-up created the topics: start-up stops naming KAFKA_BROKERS. */
async function brokerHangsAfterTopics(): Promise<void> {
  const broker = await startPrivateBroker();
  const database = await freshDatabase();
  const { deployment: d, remove } = await deployOnServers({
    kafkaBrokers: broker.brokers,
    databaseUrl: database.url,
  });
  try {
    // Frozen once the database is migrated: the topics exist, and the broker's next answers never come.
    const logger = watchingLogger((msg) => msg === "database ready" && broker.freeze());
    let started: RunningEngine | undefined;
    const failure = await within(
      90_000,
      "the start-up",
      startEngine(d.config, logger).then((engine) => (started = engine, undefined), (error: Error) => error),
    );
    await started?.stop();
    assert.ok(failure instanceof ConfigError, `kafkajs's bare error, exit code 1: ${failure}`);
    // It used to end with kafkajs's "Request Metadata(key: 3, version: 6) timed out", naming neither.
    assert.match(
      failure.message,
      new RegExp(`^Cannot start: Kafka at KAFKA_BROKERS="${broker.brokers}" cannot be used: .*timed out`),
    );
  } finally {
    broker.thaw();
    await remove();
    await database.drop();
    await broker.destroy();
  }
}

// One test for both, run at once: each waits out kafkajs's 30 s request timeout.
onlyOn("kafka", {
  name:
    "a KAFKA_BROKERS that never answers, is not Kafka, or hangs once the topics exist stops start-up in bounded time naming it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await Promise.all([brokerNeverAnswers(), brokerHangsAfterTopics()]);
  },
});

/** Runs `fn` on a fresh embedded deployment, removed afterwards. */
async function onEmbedded(fn: (d: Deployment) => Promise<void>): Promise<void> {
  const { deployment, remove } = await deploy("embedded");
  try {
    await fn(deployment);
  } finally {
    await remove();
  }
}

onlyOn(
  "embedded",
  "a start on a busy port names HOST and PORT and leaves nothing: the same DATA_DIR starts again in the same process",
  () =>
    onEmbedded(async (d) => {
      const holder = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (holder.addr as Deno.NetAddr).port;
      let failure: unknown;
      try {
        await assert.rejects(
          startEngine({ ...d.config, PORT: port }, silentLogger),
          (error) => (failure = error, true),
        );
      } finally {
        holder.close();
      }
      // It used to fail with "DATA_DIR … is in use by another engine (pid <this process>)".
      await startsAndServes(d.config, "after-busy-port");
      assert.ok(failure instanceof ConfigError, String(failure));
      assert.equal(BUSY_PORT.exec(failure.message)?.[1], String(port));
    }),
);

onlyOn(
  "embedded",
  "a start-up failing after the backend opened (a migration fails) releases DATA_DIR, PGlite and the port",
  () =>
    onEmbedded(async (d) => {
      // A schema_migrations table without its `name` column: recording the first migration fails.
      await d.inspect(({ sql }) => sql`create table schema_migrations (id integer primary key)`);
      const port = freePort();
      await assert.rejects(startEngine({ ...d.config, PORT: port }, silentLogger), /column "name"/);
      assert.ok(portIsFree(port), "the HTTP server was shut down");
      // inspect takes the DATA_DIR lock and opens PGlite: both must have been released.
      await d.inspect(({ sql }) => sql`drop table schema_migrations`);
      await startsAndServes({ ...d.config, PORT: port }, "after-failed-migration");
    }),
);

for (const when of ["database ready", "partitions assigned"]) {
  onlyOn(
    "embedded",
    `a start-up aborted after "${when}" rejects, closing everything: the same DATA_DIR and port start again`,
    () =>
      onEmbedded(async (d) => {
        const abort = new AbortController();
        const logger = watchingLogger((msg) => msg === when && abort.abort("SIGTERM"));
        const port = freePort();
        await assert.rejects(
          startEngine({ ...d.config, PORT: port }, logger, { signal: abort.signal }),
          StartAbortedError,
        );
        assert.ok(portIsFree(port), "the HTTP server was shut down");
        await startsAndServes({ ...d.config, PORT: port }, "after-abort");
      }),
  );
}

/**
 * The state of `groupId` and its members with the partitions of each (decoded), by member id. Kafka describes the
 * assignments of a Stable group only: during a rebalance every member is listed with none.
 */
async function describeGroup(
  kafka: Kafka,
  groupId: string,
): Promise<{ state: string; members: Map<string, Record<string, number[]>> }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { groups: [group] } = await admin.describeGroups([groupId]);
    return {
      state: group.state,
      members: new Map(group.members.map((m) => [
        m.memberId,
        m.memberAssignment.length > 0 ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment)!.assignment : {},
      ])),
    };
  } finally {
    await admin.disconnect();
  }
}

/** The members of `groupId` with the partitions of each (decoded), by member id. */
async function groupMembers(kafka: Kafka, groupId: string): Promise<Map<string, Record<string, number[]>>> {
  return (await describeGroup(kafka, groupId)).members;
}

/** Settles once `member` is the group's only member and holds every partition of `topics` (`partitions` each). */
function soleOwner(kafka: Kafka, groupId: string, topics: readonly string[], partitions: Record<string, number>) {
  return eventually(`one member holding every partition of ${groupId}`, async () => {
    const members = await groupMembers(kafka, groupId);
    if (members.size !== 1) return undefined;
    const [[member, assignment]] = members;
    const complete = topics.every((t) => (assignment[t] ?? []).length === partitions[t]);
    return complete ? { member, assignment } : undefined;
  });
}

onlyOn("kafka", {
  name: "a second instance on a busy port never joins the group: the first keeps its assignment throughout",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka", { PARTITIONS: "6" });
    const kafka = new Kafka({ clientId: "startup-test", brokers: [d.kafkaBrokers!], logLevel: logLevel.NOTHING });
    const port = freePort();
    let first: RunningEngine | undefined;
    try {
      first = await startEngine({ ...d.config, PORT: port }, silentLogger);
      const topics = consumedTopics(d.topics);
      const counts = Object.fromEntries(topics.map((t) => [t, t === d.topics.analytics ? 1 : 6]));
      const before = await soleOwner(kafka, d.config.GROUP_ID, topics, counts);

      const second = spawnEngine({ dataDir: d.dataDir, port, env: d.env });
      let exited = false;
      const status = second.exited.finally(() => exited = true);
      const seen: { state: string; members: Map<string, Record<string, number[]>> }[] = [];
      // Watched while the second instance runs and for 2 s after: it used to join, take some partitions, and
      // exit without leaving, so that they stalled until the session timeout.
      let after = Infinity;
      while (performance.now() < after) {
        seen.push(await describeGroup(kafka, d.config.GROUP_ID));
        if (exited && after === Infinity) after = performance.now() + 2_000;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      for (const { state, members } of seen) {
        assert.deepEqual([...members.keys()], [before.member], `no other member, ever (${state})`);
        // kafkajs may rejoin on its own (for fresh topics' metadata: CI at 2af78aa saw one 34 ms after an assignment):
        // that rebalance moves nothing, but while it runs Kafka describes no assignment, so only a Stable one is read.
        if (state === "Stable") assert.deepEqual(members.get(before.member), before.assignment, "the same assignment");
      }
      const settled = await soleOwner(kafka, d.config.GROUP_ID, topics, counts);
      assert.deepEqual(settled, before, "the first instance still holds every partition");
      assert.notEqual((await status).code, 0);
      assert.equal(BUSY_PORT.exec(second.logs())?.[1], String(port), second.logs());
    } finally {
      await first?.stop();
      await remove();
    }
  },
});

onlyOn("kafka", {
  name: "a start-up aborted after joining the group leaves it at once: the first instance gets every partition back",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka", { PARTITIONS: "6" });
    const kafka = new Kafka({ clientId: "startup-test", brokers: [d.kafkaBrokers!], logLevel: logLevel.NOTHING });
    let first: RunningEngine | undefined;
    try {
      first = await startEngine(d.config, silentLogger);
      const topics = consumedTopics(d.topics);
      const counts = Object.fromEntries(topics.map((t) => [t, t === d.topics.analytics ? 1 : 6]));
      const before = await soleOwner(kafka, d.config.GROUP_ID, topics, counts);

      // Stopped (as by SIGTERM) once the group has given it partitions: it is in the group, claiming them. (Not at
      // its first "partition claimed": claims go on after the consumer has joined, so start-up could be over by then,
      // and the test failed about one run in four.)
      const abort = new AbortController();
      const logger = watchingLogger((msg) => msg === "assignment changed" && abort.abort("SIGTERM"));
      await assert.rejects(startEngine(d.config, logger, { signal: abort.signal }), StartAbortedError);
      // Left, not crashed: a member that vanished without leaving stays listed until the session timeout (10 s).
      const members = await groupMembers(kafka, d.config.GROUP_ID);
      assert.deepEqual([...members.keys()], [before.member]);
      const started = performance.now();
      const after = await soleOwner(kafka, d.config.GROUP_ID, topics, counts);
      assert.equal(after.member, before.member);
      const ms = performance.now() - started;
      assert.ok(ms < 5_000, `the first instance held every partition again ${Math.round(ms)} ms later`);
      await viewedOnce(first, "after-aborted-peer");
    } finally {
      await first?.stop();
      await remove();
    }
  },
});

onlyOn("kafka", {
  name: "two start-ups at once on a fresh database with different GROUP_IDs: exactly one starts, the other is refused",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka");
    const groups = [`${d.config.GROUP_ID}-engine`, `${d.config.GROUP_ID}-engin`];
    const started: RunningEngine[] = [];
    try {
      // Neither group has a checkpoint yet when the other checks: the first claim lands seconds after start-up.
      const outcomes = await Promise.allSettled(
        groups.map((GROUP_ID) => startEngine({ ...d.config, GROUP_ID }, silentLogger)),
      );
      for (const outcome of outcomes) if (outcome.status === "fulfilled") started.push(outcome.value);
      assert.equal(started.length, 1, "both groups started on one database and would fold the log into the same state");
      const winner = outcomes.findIndex((o) => o.status === "fulfilled");
      const refused = outcomes[1 - winner] as PromiseRejectedResult;
      assert.ok(refused.reason instanceof ConfigError, String(refused.reason));
      assert.match(refused.reason.message, new RegExp(`^Cannot start with GROUP_ID="${groups[1 - winner]}"`));
      assert.ok(refused.reason.message.includes(`"${groups[winner]}"`), refused.reason.message);
      await viewedOnce(started[0], "raced-user");
    } finally {
      for (const engine of started) await engine.stop();
      await remove();
    }
  },
});

onlyOn(
  "kafka",
  "topics the broker refuses to create stop start-up with the broker's reason, naming KAFKA_BROKERS",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "startup-" });
    try {
      const { kafkaBrokers, databaseUrl } = services();
      // One broker cannot hold three replicas: every topic is refused.
      const engine = spawnEngine({
        dataDir,
        env: {
          KAFKA_BROKERS: kafkaBrokers,
          DATABASE_URL: databaseUrl,
          TOPIC_PREFIX: `${uniqueName("rf")}-`,
          REPLICATION_FACTOR: "3",
        },
      });
      const status = await engine.exited;
      assert.equal(status.code, 2, engine.logs());
      // It used to end with kafkajs's bare "Topic creation errors", which says neither which topics nor why.
      assert.match(
        engine.logs(),
        new RegExp(
          `Cannot start: Kafka at KAFKA_BROKERS="${kafkaBrokers}" cannot be used: Topic creation errors: ` +
            `Replication-factor is invalid \\(rf_\\w+-alerts, [^)]*rf_\\w+-events, [^)]*\\) ` +
            `\\(the missing topics are created with PARTITIONS=12, REPLICATION_FACTOR=3\\)`,
        ),
      );
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

onlyOn(
  "kafka",
  "a KAFKA_SESSION_TIMEOUT_MS the broker refuses stops start-up naming the setting and its value",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "startup-" });
    const database = await freshDatabase();
    const { kafkaBrokers } = services();
    // Under the broker's group.min.session.timeout.ms (6000 by default): its JoinGroup is refused.
    const engine = spawnEngine({
      dataDir,
      env: {
        KAFKA_BROKERS: kafkaBrokers,
        DATABASE_URL: database.url,
        TOPIC_PREFIX: `${uniqueName("session")}.`,
        GROUP_ID: uniqueName("session"),
        KAFKA_SESSION_TIMEOUT_MS: "3000",
      },
    });
    try {
      const status = await within(60_000, "the engine's exit", engine.exited);
      // It used to start, then exit 1 with kafkajs's words, naming neither the setting nor its value.
      assert.equal(status.code, 2, engine.logs());
      assert.match(
        engine.logs(),
        new RegExp(
          `^Cannot start: Kafka at KAFKA_BROKERS="${kafkaBrokers}" refused KAFKA_SESSION_TIMEOUT_MS=3000: ` +
            "The session timeout is not within the range allowed by the broker .*; set KAFKA_SESSION_TIMEOUT_MS " +
            "within the broker's range \\(6000 to 1800000 unless its settings change it\\)$",
          "m",
        ),
      );
    } finally {
      await engine.kill("SIGKILL");
      await database.drop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

forEachLog("a changed PARTITIONS on existing topics is named in a warning; the topics keep their count", async (d) => {
  await startsAndServes(d.config, "first");
  const changed = { ...d.config, PARTITIONS: d.config.PARTITIONS + 2 };
  const warnings: { msg: string; topic?: string; partitions?: number; PARTITIONS?: number }[] = [];
  const engine = await startEngine(
    changed,
    createLogger("warn", (line) => void warnings.push(JSON.parse(line))),
  );
  try {
    await viewedOnce(engine, "second");
  } finally {
    await engine.stop();
  }
  const named = warnings.filter((w) => w.msg.includes("PARTITIONS"));
  assert.deepEqual(
    named.map((w) => [w.topic, w.partitions, w.PARTITIONS]).sort(),
    [d.topics.events, d.topics.productEvents].map((topic) => [topic, d.config.PARTITIONS, changed.PARTITIONS]).sort(),
  );
});
