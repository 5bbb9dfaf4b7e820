/**
 * KafkaConsumer's stop against a stand-in for kafkajs's client, down to the group coordinator it joins through (the
 * private cluster factory and broker that engine/kafka_group_leave.ts relies on): a stop while a JoinGroup waits for the
 * group must leave with that join's member id from a connection of its own, whatever made kafkajs join again.
 */
import assert from "node:assert/strict";
import type { Kafka } from "kafkajs";
import { KafkaConsumer } from "../../engine/kafka_consumer.ts";
import type { PartitionListener } from "../../engine/log.ts";
import { silentLogger } from "../../engine/logger.ts";
import { CONSUMER_EVENTS } from "../helpers/fake_kafkajs.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** kafkajs 2.2.4's PRIVATE.CREATE_CLUSTER and Broker PRIVATE.SEND_REQUEST (src/index.js, src/broker/index.js). */
const CREATE_CLUSTER = Symbol("private:Kafka:createCluster");
const SEND_REQUEST = Symbol("private:Broker:sendRequest");

/** What the group coordinator was asked, across every connection to it. */
interface Group {
  /** Member ids of the LeaveGroup requests it answered. */
  readonly left: string[];
}

/** A group coordinator (a kafkajs Broker) whose JoinGroup waits for the group, as one waiting for a frozen member does. */
class FakeCoordinator {
  constructor(private readonly group: Group) {}

  [SEND_REQUEST](request: { apiName: string; memberId?: string }): Promise<unknown> {
    if (request.apiName === "LeaveGroup") {
      this.group.left.push(request.memberId!);
      return Promise.resolve({});
    }
    return new Promise(() => {}); // a JoinGroup: the group waits for a member that stopped answering
  }

  /** As kafkajs's: sent through SEND_REQUEST. */
  joinGroup(request: { groupId: string; memberId: string }): Promise<unknown> {
    return this[SEND_REQUEST]({ apiName: "JoinGroup", memberId: request.memberId });
  }

  leaveGroup(request: { groupId: string; memberId: string }): Promise<unknown> {
    return this[SEND_REQUEST]({ apiName: "LeaveGroup", memberId: request.memberId });
  }
}

/** A kafkajs client whose consumer the test drives: its GROUP_JOIN, REBALANCING, and the joins kafkajs sends. */
function fakeKafka() {
  const group: Group = { left: [] };
  const handlers = new Map<string, (e: Any) => void>();
  let consumerCluster: Any;
  const consumer = {
    events: CONSUMER_EVENTS,
    on: (name: string, fn: (e: Any) => void) => handlers.set(name, fn),
    connect: () => Promise.resolve(),
    subscribe: () => Promise.resolve(),
    run: () => Promise.resolve(),
    seek: () => {},
    pause: () => {},
    resume: () => {},
    disconnect: () => Promise.resolve(),
  };
  const kafka = {
    [CREATE_CLUSTER]: () => ({
      connect: () => Promise.resolve(),
      disconnect: () => Promise.resolve(),
      findGroupCoordinator: () => Promise.resolve(new FakeCoordinator(group)),
    }),
    consumer(this: Any) {
      // As kafkajs's: the consumer's cluster comes from the client's private factory.
      consumerCluster = this[CREATE_CLUSTER]({});
      return consumer;
    },
    admin: () => ({}),
  };
  return {
    kafka: kafka as unknown as Kafka,
    group,
    /** The group's assignment reached the member (kafkajs's GROUP_JOIN, once its join and sync ended). */
    joined: (memberId: string, assignment: Record<string, number[]>) =>
      handlers.get("group_join")!({ payload: { memberId, memberAssignment: assignment } }),
    /** kafkajs sends a JoinGroup as `memberId`, as its PRIVATE.JOIN does: the coordinator looked up, then asked. */
    async sendJoin(memberId: string): Promise<void> {
      const coordinator = await consumerCluster.findGroupCoordinator({ groupId: "g" });
      void coordinator.joinGroup({ groupId: "g", memberId }).catch(() => {});
    },
  };
}

const listener: PartitionListener = {
  assigned: () => Promise.resolve(new Map()),
  revoked: () => Promise.resolve(),
  batch: () => Promise.resolve(),
};

Deno.test("a stop during a join kafkajs starts on its own (stale metadata, partitions added) leaves that join", async () => {
  const fake = fakeKafka();
  const member = new KafkaConsumer(fake.kafka, { groupId: "g" }, silentLogger);
  await member.start(["t"], listener);
  fake.joined("member-1", { t: [0] });
  // kafkajs's fetch met stale metadata (or a topic with partitions added) and joins again: no REBALANCING event.
  await fake.sendJoin("member-1");
  await member.stop();
  // It used to leave only joins a REBALANCING event announced: the process exited still in this one, and the group
  // completed it with the dead member, then waited its session timeout for it.
  assert.deepEqual(fake.group.left, ["member-1"]);
});

Deno.test("a stop with no join in progress leaves nothing from aside: kafkajs's own disconnect leaves the group", async () => {
  const fake = fakeKafka();
  const member = new KafkaConsumer(fake.kafka, { groupId: "g" }, silentLogger);
  await member.start(["t"], listener);
  await fake.sendJoin("member-1");
  fake.joined("member-1", { t: [0] });
  await member.stop();
  assert.deepEqual(fake.group.left, []);
});
