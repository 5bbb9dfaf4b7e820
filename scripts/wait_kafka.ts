/** Exits 0 once the broker at argv[0] answers a metadata request listing itself; used by services.sh. */
import { Kafka, logLevel } from "kafkajs";

const brokers = Deno.args[0];
if (!brokers) {
  throw new Error("usage: wait_kafka.ts HOST:PORT");
}
const admin = new Kafka({
  clientId: "wait-kafka",
  brokers: brokers.split(","),
  logLevel: logLevel.NOTHING,
  retry: { retries: 0 },
  connectionTimeout: 1000,
}).admin();
try {
  await admin.connect();
  const cluster = await admin.describeCluster();
  Deno.exit(cluster.brokers.length > 0 ? 0 : 1);
} catch {
  Deno.exit(1);
}
