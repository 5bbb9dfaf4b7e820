/**
 * A SIGTERM while the engine's consumer is joining its group, and the join waits for a member that stopped answering
 * (another process frozen with SIGSTOP: the group coordinator holds every join until that member's session times
 * out). The stop must not wait for the join: it used to, and main.ts's 10 s deadline ended the process with exit code 1.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { type EngineProcess, spawnEngine } from "../helpers/engine_process.ts";
import { type GroupMember, spawnGroupMember } from "../helpers/group_member.ts";
import { deploy, onlyOn } from "../helpers/modes.ts";
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

/** A member of the group that joins, then is frozen (SIGSTOP) so that the next join waits for its session timeout. */
async function frozenMember(brokers: string, groupId: string, topics: readonly string[]): Promise<GroupMember> {
  const member = spawnGroupMember({ brokers, groupId, topics, sessionTimeoutMs: STOPPED_MEMBER_SESSION_MS });
  await within(60_000, "the member's join", member.joined);
  return member;
}

onlyOn("kafka", {
  name: "SIGTERM while start-up's join waits for a frozen member: exit code 0 at once, not the 10 s deadline",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { deployment: d, remove } = await deploy("kafka");
    const kafka = new Kafka({ clientId: "join-stop-test", brokers: [d.kafkaBrokers!], logLevel: logLevel.NOTHING });
    const groupId = d.config.GROUP_ID;
    const members: GroupMember[] = [];
    let engine: EngineProcess | undefined;
    try {
      // The member subscribes before the engine ever ran: its topic is created here (the engine keeps it).
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: d.topics.events, numPartitions: d.config.PARTITIONS }] });
      await admin.disconnect();
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
    } finally {
      await engine?.kill("SIGKILL");
      for (const member of members) await member.kill();
      await remove();
    }
  },
});
