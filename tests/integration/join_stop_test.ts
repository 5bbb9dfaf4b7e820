/**
 * A SIGTERM while the engine's consumer is joining its group, and the join waits for a member that stopped answering
 * (another process frozen with SIGSTOP: the group coordinator holds every join until that member's session times
 * out). The stop must not wait for the join: it used to, and main.ts's 10 s deadline ended the process with exit code 1.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { KafkaAdmin } from "../../engine/kafka_admin.ts";
import { type EngineProcess, spawnEngine, startEngineProcess } from "../helpers/engine_process.ts";
import { type GroupMember, spawnGroupMember } from "../helpers/group_member.ts";
import { deploy, type Deployment, onlyOn } from "../helpers/modes.ts";
import { eventually, within } from "../helpers/services.ts";

/** The frozen member's session timeout: the join waits this long for it, past main.ts's 10 s deadline. */
const STOPPED_MEMBER_SESSION_MS = 30_000;
/** Well within main.ts's 10 s deadline. */
const STOP_WITHIN_MS = 5_000;

/** The group's state and its members' ids (those in a join in progress included). */
async function describe(kafka: Kafka, groupId: string): Promise<{ state: string; members: string[] }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { groups: [group] } = await admin.describeGroups([groupId]);
    return { state: group.state, members: group.members.map((m) => m.memberId) };
  } finally {
    await admin.disconnect();
  }
}

/** The engine's members among `members` (kafkajs starts a member id with the client id). */
function engineMembers(members: readonly string[], clientId: string): string[] {
  return members.filter((m) => m.startsWith(`${clientId}-`));
}

/** The lines of `logs` logged at error level. */
function errorLines(logs: string): string[] {
  return logs.split("\n").filter((l) => l.includes('"level":"error"'));
}

/** A member of the group that joins, then is frozen (SIGSTOP) so that the next join waits for its session timeout. */
async function frozenMember(brokers: string, groupId: string, topics: readonly string[]): Promise<GroupMember> {
  const member = spawnGroupMember({ brokers, groupId, topics, sessionTimeoutMs: STOPPED_MEMBER_SESSION_MS });
  await within(60_000, "the member's join", member.joined);
  return member;
}

/** What each scenario works in: a Kafka deployment, a client to describe its group, and the members it spawned. */
interface GroupScene {
  readonly d: Deployment;
  readonly kafka: Kafka;
  readonly groupId: string;
  /** Members the scenario spawned: killed when it ends. */
  readonly members: GroupMember[];
}

/** Runs `scenario` on a fresh Kafka deployment; its members are killed and the deployment removed afterwards. */
async function inGroup(scenario: (scene: GroupScene) => Promise<void>): Promise<void> {
  const { deployment: d, remove } = await deploy("kafka");
  const kafka = new Kafka({ clientId: "join-stop-test", brokers: [d.kafkaBrokers!], logLevel: logLevel.NOTHING });
  const members: GroupMember[] = [];
  try {
    await scenario({ d, kafka, groupId: d.config.GROUP_ID, members });
  } finally {
    for (const member of members) await member.kill();
    await remove();
  }
}

onlyOn("kafka", {
  name: "SIGTERM while start-up's join waits for a frozen member: exit code 0 at once, the group left",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    inGroup(async ({ d, kafka, groupId, members }) => {
      let engine: EngineProcess | undefined;
      try {
        // The member subscribes before the engine ever ran: its topic is created here (the engine keeps it).
        // Through the engine's admin, which waits out the broker's "does not host this topic-partition" after creating
        // one (kafkajs's createTopics gave up on it: CI at a8f1826's merges).
        const admin = new KafkaAdmin(kafka);
        await admin.ensureTopics([{ topic: d.topics.events, partitions: d.config.PARTITIONS }], 1);
        await admin.close();
        const frozen = await frozenMember(d.kafkaBrokers!, groupId, [d.topics.events]);
        members.push(frozen);
        Deno.kill(frozen.pid, "SIGSTOP");
        const starting = engine = spawnEngine({ dataDir: d.dataDir, env: d.env });
        // The engine's join started a rebalance, which waits for the frozen member.
        await eventually(
          "the engine's join to wait for the frozen member",
          async () => (await describe(kafka, groupId)).state === "PreparingRebalance" || undefined,
          60_000,
        );
        const signalled = performance.now();
        const status = await starting.kill("SIGTERM");
        const ms = performance.now() - signalled;
        assert.doesNotMatch(starting.logs(), /shutdown deadline passed/, starting.logs());
        assert.equal(status.code, 0, starting.logs());
        assert.ok(ms < STOP_WITHIN_MS, `exited ${Math.round(ms)} ms after SIGTERM`);
        // Its join was left (it had a member id already: the broker hands one out before a first join waits), not left
        // in place for the group to complete the join with it and wait a session timeout more.
        const after = await describe(kafka, groupId);
        assert.deepEqual(engineMembers(after.members, d.config.KAFKA_CLIENT_ID), [], JSON.stringify(after));
        assert.doesNotMatch(starting.logs(), /leaving the group did not finish in time/, starting.logs());
        assert.deepEqual(errorLines(starting.logs()), [], "a stop during a join is no error");
      } finally {
        await engine?.kill("SIGKILL");
      }
    }),
});

onlyOn("kafka", {
  name: "SIGTERM during a rebalance a new member started while another is frozen: exit code 0 at once, the group left",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    inGroup(async ({ d, kafka, groupId, members }) => {
      // Debug: kafkajs's "re-joining" shows the engine's rejoin has started.
      const engine = await startEngineProcess({ dataDir: d.dataDir, env: { ...d.env, LOG_LEVEL: "debug" } });
      try {
        const { members: [own] } = await eventually(
          "the engine alone in its group",
          async () => {
            const group = await describe(kafka, groupId);
            return group.state === "Stable" && group.members.length === 1 ? group : undefined;
          },
        );
        const frozen = await frozenMember(d.kafkaBrokers!, groupId, [d.topics.events]);
        members.push(frozen);
        await eventually("the engine and the member in a stable group", async () => {
          const group = await describe(kafka, groupId);
          return group.state === "Stable" && group.members.length === 2 || undefined;
        });
        Deno.kill(frozen.pid, "SIGSTOP");
        const rejoins = () => engine.logs().split("The group is rebalancing, re-joining").length - 1;
        const rejoinsBefore = rejoins();
        // A new instance joining (a rolling restart's next one): the engine rejoins, and the join waits for the frozen one.
        const newcomer = spawnGroupMember({
          brokers: d.kafkaBrokers!,
          groupId,
          topics: [d.topics.events],
          sessionTimeoutMs: 10_000,
        });
        members.push(newcomer);
        await eventually(
          "the engine to rejoin",
          () => Promise.resolve(rejoins() > rejoinsBefore || undefined),
          60_000,
        );
        const during = await describe(kafka, groupId);
        assert.equal(during.state, "PreparingRebalance");
        assert.ok(during.members.includes(own), `the engine is in the join: ${JSON.stringify(during)}`);
        const signalled = performance.now();
        const status = await engine.kill("SIGTERM");
        const ms = performance.now() - signalled;
        const ownLogs = engine.logs().split("\n").filter((l) =>
          l.includes('"level":"warn"') || l.includes('"level":"error"')
        );
        assert.doesNotMatch(engine.logs(), /shutdown deadline passed/, ownLogs.join("\n"));
        assert.equal(status.code, 0, ownLogs.join("\n"));
        assert.ok(ms < STOP_WITHIN_MS, `exited ${Math.round(ms)} ms after SIGTERM`);
        // Left: a member that vanished without leaving stays in the join until its session times out, and the join
        // then waits for it (or, once the frozen member is dropped, the group completes it and waits again).
        const after = await describe(kafka, groupId);
        assert.ok(!after.members.includes(own), `the engine's member is still in the group: ${JSON.stringify(after)}`);
        // Nor did kafkajs, its join answered "unknown member", join again as a new member before the process ended.
        assert.deepEqual(engineMembers(after.members, d.config.KAFKA_CLIENT_ID), [], JSON.stringify(after));
        assert.doesNotMatch(engine.logs(), /leaving the group did not finish in time/, ownLogs.join("\n"));
        assert.deepEqual(errorLines(engine.logs()), [], "a stop during a rebalance is no error");
      } finally {
        await engine.kill("SIGKILL");
      }
    }),
});
