/**
 * Assembles a running engine from a Config: database and migrations, the log, the actor runtime,
 * and the HTTP server. `stop()` shuts down in the reverse order.
 */
import { productLogic } from "../actors/product.ts";
import { userLogic } from "../actors/user.ts";
import { eventsRoute } from "../http/events_route.ts";
import type { Route } from "../http/router.ts";
import { createHandler } from "../http/server.ts";
import { stateRoute } from "../http/state_route.ts";
import { migrate } from "../sql/migrations.ts";
import { type Config, topicNames } from "./config.ts";
import type { AnyActorLogic } from "./actor.ts";
import { SqlCheckpointStore } from "./checkpoint.ts";
import { connectDatabase } from "./database.ts";
import { ConfigError } from "./errors.ts";
import { createKafka, KafkaAdmin, KafkaConsumer, KafkaProducer } from "./kafka_log.ts";
import type { Logger } from "./logger.ts";
import { ActorRuntime } from "./runtime.ts";
import { createStateReader } from "./state_reader.ts";

/** Connections the engine keeps open. */
const DATABASE_POOL_SIZE = 10;

/** A started engine. */
export interface RunningEngine {
  /** Base URL of the HTTP server. */
  readonly url: string;
  /** This instance's id, recorded as the owner of its partitions. */
  readonly instanceId: string;
  readonly runtime: ActorRuntime;
  /** Graceful shutdown: stop HTTP, leave the group, final checkpoints, close connections. */
  stop(): Promise<void>;
}

/** Starts the engine described by `config`. */
export async function startEngine(config: Config, logger: Logger): Promise<RunningEngine> {
  if (config.mode !== "production" || !config.KAFKA_BROKERS || !config.DATABASE_URL) {
    throw new ConfigError(
      "Cannot start: embedded mode is not available yet; set KAFKA_BROKERS and DATABASE_URL (see README)",
    );
  }
  const instanceId = `${Deno.hostname()}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const log = logger.child({ instance: instanceId });
  const topics = topicNames(config);

  const sql = connectDatabase({ url: config.DATABASE_URL, maxConnections: DATABASE_POOL_SIZE });
  const applied = await migrate(sql);
  log.info("database ready", { migrationsApplied: applied });

  const kafka = createKafka({
    brokers: config.KAFKA_BROKERS.split(",").map((b) => b.trim()),
    clientId: config.KAFKA_CLIENT_ID,
    logger: log,
    publishTimeoutMs: config.PUBLISH_TIMEOUT_MS,
  });
  const admin = new KafkaAdmin(kafka);
  await admin.ensureTopics(Object.values(topics), config.PARTITIONS, config.REPLICATION_FACTOR);
  const producer = new KafkaProducer(kafka, {
    brokers: [],
    clientId: config.KAFKA_CLIENT_ID,
    logger: log,
    publishTimeoutMs: config.PUBLISH_TIMEOUT_MS,
  });
  const consumer = new KafkaConsumer(kafka, { groupId: config.GROUP_ID }, log);
  const store = new SqlCheckpointStore(sql);
  const runtime = new ActorRuntime({
    store,
    producer,
    consumer,
    topics,
    groupId: config.GROUP_ID,
    owner: instanceId,
    logger: log,
    logics: new Map<string, AnyActorLogic>([[topics.events, userLogic], [topics.productEvents, productLogic]]),
    checkpointIntervalMs: config.CHECKPOINT_INTERVAL_MS,
    checkpointMaxMessages: config.CHECKPOINT_MAX_MESSAGES,
  });
  runtime.start();
  await consumer.start([topics.events, topics.productEvents], runtime);

  const reader = createStateReader(runtime, store);
  const routes: Route[] = [
    {
      method: "POST",
      path: "/v1/events",
      handler: eventsRoute({
        producer,
        topics,
        rules: { maxFutureMs: config.MAX_EVENT_FUTURE_MS },
        maxEvents: config.MAX_BATCH_EVENTS,
        maxBodyBytes: config.MAX_BODY_BYTES,
        now: Date.now,
      }),
    },
    { method: "GET", path: "/v1/users/:id", handler: stateRoute(reader, "user") },
    { method: "GET", path: "/v1/products/:id", handler: stateRoute(reader, "product") },
    { method: "GET", path: "/healthz", handler: () => Response.json({ status: "ok" }) },
  ];
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { port: config.PORT, hostname: config.HOST, onListen: (addr) => listening.resolve(addr) },
    createHandler(routes, log),
  );
  const addr = await listening.promise;
  const url = `http://${addr.hostname === "0.0.0.0" ? "127.0.0.1" : addr.hostname}:${addr.port}`;
  log.info("engine started", { mode: config.mode, url, topics });

  return {
    url,
    instanceId,
    runtime,
    async stop() {
      log.info("engine stopping");
      await server.shutdown();
      await consumer.stop();
      await runtime.stop();
      await producer.close();
      await admin.close();
      await sql.end({ timeout: 5 });
      log.info("engine stopped");
    },
  };
}
