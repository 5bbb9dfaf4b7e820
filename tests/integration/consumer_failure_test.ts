/**
 * An engine whose Kafka consumer kafkajs gives up on (a CRASH it does not restart) stops and exits with code 1 naming
 * the cause, for its supervisor to restart it. It used to stay up for good, unready, its partition workers holding
 * their partitions, actors and timers while the group gave them to other instances.
 */
import assert from "node:assert/strict";
import { AssignerProtocol, Kafka, logLevel, PartitionAssigners } from "kafkajs";
import { TOPIC_LEADERS_TIMEOUT_MS, waitForLeaders } from "../../engine/kafka_admin.ts";
import { type EngineProcess, spawnEngine } from "../helpers/engine_process.ts";
import { deploy, onlyOn } from "../helpers/modes.ts";
import { eventually, within } from "../helpers/services.ts";

onlyOn("kafka", {
  name: "a consumer kafkajs gives up on stops the engine: exit code 1, naming the cause",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka");
    const kafka = new Kafka({ brokers: [d.kafkaBrokers!], clientId: "foreign", logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    const foreignTopic = `${d.topics.events}.foreign`;
    // Another application's consumer in the engine's GROUP_ID, with an assignor the engine does not know: kafkajs
    // answers the engine's join with INCONSISTENT_GROUP_PROTOCOL, which it does not retry.
    const foreign = kafka.consumer({
      groupId: d.config.GROUP_ID,
      partitionAssigners: [(config) => {
        const roundRobin = PartitionAssigners.roundRobin(config);
        return {
          ...roundRobin,
          name: "ForeignAssigner",
          protocol: ({ topics }: { topics: string[] }) => ({
            name: "ForeignAssigner",
            metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }),
          }),
        };
      }],
    });
    let engine: EngineProcess | undefined;
    try {
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: foreignTopic, numPartitions: 1 }], waitForLeaders: false });
      await waitForLeaders(
        (topics) => admin.fetchTopicMetadata({ topics: [...topics] }),
        [foreignTopic],
        TOPIC_LEADERS_TIMEOUT_MS,
      );
      let joined = false;
      foreign.on(foreign.events.GROUP_JOIN, () => joined = true);
      await foreign.connect();
      await foreign.subscribe({ topics: [foreignTopic] });
      await foreign.run({ eachMessage: async () => {} });
      await eventually("the foreign consumer in the group", () => Promise.resolve(joined || undefined));
      engine = spawnEngine({ dataDir: d.dataDir, env: d.env });

      const running = engine;
      const status = await within(30_000, "the engine's exit", running.exited).catch((error) => {
        throw new Error(`${error.message}; its logs:\n${running.logs()}`);
      });
      const logs = running.logs();
      assert.equal(status.code, 1, `exit code 1 (a failure), got ${status.code}:\n${logs}`);
      assert.match(logs, /stopped for good: .*incompatible/, "the cause is logged");
      assert.match(logs, /engine stopped|stopping, to be restarted/);
    } finally {
      await engine?.kill("SIGKILL");
      await foreign.disconnect().catch(() => {});
      await admin.deleteTopics({ topics: [foreignTopic] }).catch(() => {});
      await admin.disconnect();
      await remove();
    }
  },
});
