/**
 * A private single-node KRaft broker for tests that must stop and restart Kafka without touching
 * the shared broker of scripts/services.sh. It runs from the jars services.sh caches in
 * .cache/kafka/<version>/libs, on free loopback ports with a temporary data dir, and restarts on
 * the same ports and data, so that clients see the same broker come back.
 */
import { Kafka, logLevel } from "kafkajs";
import { freePort } from "./engine_process.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const READY_TIMEOUT_MS = 60_000;
const READY_POLL_MS = 250;
const STOP_GRACE_MS = 15_000;
const PROBE_CONNECT_TIMEOUT_MS = 1_000;
/**
 * After a SIGKILL the restarted controller waits for the dead incarnation's session to lapse
 * before the broker is unfenced (9 s by default); a short session keeps restarts quick.
 */
const HEARTBEAT_MS = 500;
const SESSION_TIMEOUT_MS = 2_000;
const JVM_OPTIONS = ["-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"];

/** A broker this test owns. */
export interface PrivateBroker {
  /** `host:port` for KAFKA_BROKERS; the same across restarts. */
  readonly brokers: string;
  /** True while the broker process is running. */
  readonly running: boolean;
  /** Stops the broker: SIGTERM (controlled shutdown, SIGKILL after a grace period) or SIGKILL (a crash). */
  stop(signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /**
   * Stops the broker's process (SIGSTOP) without closing anything: a hung broker, whose kernel still accepts connections
   * and requests, which nothing answers until `thaw` (SIGCONT).
   */
  freeze(): void;
  thaw(): void;
  /** Starts it again on the same ports and data dir; resolves once it answers metadata requests. */
  start(): Promise<void>;
  /** Stops it and deletes its data. */
  destroy(): Promise<void>;
}

/** The Kafka version pinned in scripts/kafka/pom.xml. */
export function kafkaVersion(): string {
  const pom = Deno.readTextFileSync(`${ROOT}scripts/kafka/pom.xml`);
  const version = pom.match(/<kafka\.version>([^<]+)<\/kafka\.version>/)?.[1];
  if (!version) throw new Error("Cannot find <kafka.version> in scripts/kafka/pom.xml");
  return version;
}

/** The cached jar folder, or a clear error telling how to fill it. */
function kafkaLibs(version: string): string {
  const home = `${ROOT}.cache/kafka/${version}`;
  try {
    Deno.statSync(`${home}/.complete`);
    return `${home}/libs`;
  } catch {
    throw new Error(
      `Cannot start a private Kafka broker: the Kafka ${version} jars are missing from ${home}/libs. ` +
        "Run the tests through `deno task test` (scripts/services.sh resolves the jars with mvn once).",
    );
  }
}

/** A KRaft cluster id: 16 random bytes, URL-safe base64 without padding, as Kafka's Uuid prints it. */
function clusterId(): string {
  while (true) {
    const text = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))))
      .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    if (!text.startsWith("-")) return text;
  }
}

function serverProperties(dir: string, port: number, controller: number): string {
  return `process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controller}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=${dir}/data
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=${HEARTBEAT_MS}
broker.session.timeout.ms=${SESSION_TIMEOUT_MS}
`;
}

function log4jProperties(dir: string): string {
  return `log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${dir}/logs/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
`;
}

/** The last lines of the broker's log, for failure messages. */
function tail(dir: string, lines = 15): string {
  try {
    return Deno.readTextFileSync(`${dir}/logs/server.log`).split("\n").slice(-lines).join("\n");
  } catch {
    return "(no server.log)";
  }
}

/** True once the broker answers a metadata request listing itself. */
async function answers(brokers: string): Promise<boolean> {
  const admin = new Kafka({
    clientId: "private-broker-probe",
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: PROBE_CONNECT_TIMEOUT_MS,
  }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Formats a data dir and starts a broker on it; resolves once it is ready. */
export async function startPrivateBroker(): Promise<PrivateBroker> {
  const libs = kafkaLibs(kafkaVersion());
  const dir = await Deno.makeTempDir({ prefix: "kafka-broker-" });
  await Deno.mkdir(`${dir}/logs`);
  const port = freePort();
  const controller = freePort();
  const brokers = `127.0.0.1:${port}`;
  await Deno.writeTextFile(`${dir}/server.properties`, serverProperties(dir, port, controller));
  await Deno.writeTextFile(`${dir}/log4j.properties`, log4jProperties(dir));
  const java = (mainClass: string, args: string[], output: "piped" | "null") =>
    new Deno.Command("java", {
      args: [
        ...JVM_OPTIONS,
        `-Dlog4j.configuration=file:${dir}/log4j.properties`,
        "-cp",
        `${libs}/*`,
        mainClass,
        ...args,
      ],
      stdin: "null",
      stdout: output,
      stderr: output,
    });

  const format = await java("kafka.tools.StorageTool", [
    "format",
    "-t",
    clusterId(),
    "-c",
    `${dir}/server.properties`,
  ], "piped").output();
  if (!format.success) {
    const output = new TextDecoder().decode(format.stderr) + new TextDecoder().decode(format.stdout);
    throw new Error(`Cannot format the private Kafka broker's storage: ${output.trim()}`);
  }

  let child: Deno.ChildProcess | null = null;
  let exited: Promise<Deno.CommandStatus> | null = null;

  const broker: PrivateBroker = {
    brokers,
    get running() {
      return child !== null;
    },
    async start() {
      if (child) return;
      // The broker logs to server.log through log4j; its own stdout and stderr are not needed.
      const process = java("kafka.Kafka", [`${dir}/server.properties`], "null").spawn();
      child = process;
      exited = process.status;
      let dead = false;
      exited.then(() => (dead = true));
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while (!(await answers(brokers))) {
        if (dead) {
          child = null;
          throw new Error(`The private Kafka broker exited during start-up:\n${tail(dir)}`);
        }
        if (Date.now() > deadline) {
          await broker.stop("SIGKILL");
          throw new Error(`The private Kafka broker was not ready within ${READY_TIMEOUT_MS} ms:\n${tail(dir)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
      }
    },
    freeze() {
      child?.kill("SIGSTOP");
    },
    thaw() {
      child?.kill("SIGCONT");
    },
    async stop(signal = "SIGTERM") {
      if (!child || !exited) return;
      const process = child;
      child = null;
      try {
        // A frozen broker handles no SIGTERM until it runs again.
        process.kill("SIGCONT");
        process.kill(signal);
      } catch {
        // Already gone.
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const graceOver = new Promise<"timeout">((
        resolve,
      ) => (timer = setTimeout(() => resolve("timeout"), STOP_GRACE_MS)));
      const outcome = await Promise.race([exited, graceOver]);
      clearTimeout(timer);
      if (outcome === "timeout") {
        process.kill("SIGKILL");
        await exited;
      }
    },
    async destroy() {
      await broker.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    await broker.start();
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
  return broker;
}
