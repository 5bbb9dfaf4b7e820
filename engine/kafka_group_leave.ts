/**
 * Leaving a consumer group while the member's join is still waiting (engine/kafka_consumer.ts's stop). The broker
 * answers a member's requests one at a time on each connection, so a LeaveGroup kafkajs sends on the member's own
 * connection waits behind its JoinGroup, which waits for every member of the group: one that stopped answering holds it
 * until its session timeout. The leave is therefore sent from a connection of its own (a kafkajs Cluster made with the
 * Kafka client's private factory, as engine/kafka_high_watermarks.ts does), and the member's own next join is refused:
 * the broker answers the waiting JoinGroup with UNKNOWN_MEMBER_ID, after which kafkajs would join again as a new member.
 * Every JoinGroup the consumer sends is reported with its member id (kafkajs also joins again on its own, after a fetch
 * met stale metadata or a topic with partitions added, announcing no rebalance); a first join's member id is the one
 * the broker hands out with MEMBER_ID_REQUIRED (KIP-394) before the join waits, which kafkajs keeps to itself until the
 * join ends, so it is read off that answer.
 */
import type { Consumer, ConsumerConfig, Kafka } from "kafkajs";
import { ConsumerLeavingError, KafkaClientMismatchError } from "./errors.ts";

/** The description of kafkajs's PRIVATE.CREATE_CLUSTER symbol (src/index.js). */
const CREATE_CLUSTER = "private:Kafka:createCluster";
/** The description of kafkajs's Broker PRIVATE.SEND_REQUEST symbol (src/broker/index.js): every request goes through it. */
const SEND_REQUEST = "private:Broker:sendRequest";

/** The part of kafkajs's Cluster (src/cluster/index.js) a leave uses. */
interface GroupCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  findGroupCoordinator(request: { groupId: string }): Promise<GroupCoordinator>;
}

/** The part of kafkajs's Broker (src/broker/index.js) a leave uses. */
interface GroupCoordinator {
  joinGroup(request: { groupId: string; memberId: string }): Promise<unknown>;
  leaveGroup(request: { groupId: string; memberId: string }): Promise<unknown>;
}

/** The message of the error a refused join fails with (kafkajs logs it as the consumer's crash). */
export const JOIN_REFUSED = "the consumer is leaving the group: no join";

/** What a consumer made by consumerForLeaving asks of its owner. */
export interface LeavingHooks {
  /** Once true, the consumer's joins are refused. */
  refused(): boolean;
  /** A JoinGroup goes out as `memberId` ("" for a new member: the broker hands it one, see memberIdAssigned). */
  joinSent(memberId: string): void;
  /** The member id the broker handed out for a join that now waits (MEMBER_ID_REQUIRED). */
  memberIdAssigned(memberId: string): void;
}

type ClusterFactory = (options: Record<string, unknown>) => GroupCluster;

/** The Kafka client's private cluster factory, or undefined (a stand-in client in unit tests). */
function clusterFactory(kafka: Kafka): { symbol: symbol; factory: ClusterFactory } | undefined {
  const symbol = Object.getOwnPropertySymbols(kafka).find((s) => s.description === CREATE_CLUSTER);
  const factory = symbol === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[symbol];
  return symbol !== undefined && typeof factory === "function"
    ? { symbol, factory: factory as ClusterFactory }
    : undefined;
}

/**
 * kafka.consumer(config), whose joins are refused once `hooks.refused()` is true: its join first looks up the group's
 * coordinator, which then fails for good (kafkajs bails out of the join; with restartOnFailure refusing, the consumer
 * ends). Nothing else of the consumer looks the coordinator up (its heartbeats, commits and leave use the one it joined).
 * The coordinator found reports the joins sent to it and the member ids it hands out (see `joinsReported`).
 */
export function consumerForLeaving(kafka: Kafka, config: ConsumerConfig, hooks: LeavingHooks): Consumer {
  const found = clusterFactory(kafka);
  if (!found) return kafka.consumer(config);
  const { symbol, factory } = found;
  const slot = kafka as unknown as Record<symbol, unknown>;
  slot[symbol] = (options: Record<string, unknown>) => {
    const cluster = factory(options);
    const find = cluster.findGroupCoordinator.bind(cluster);
    cluster.findGroupCoordinator = async (request) => {
      if (hooks.refused()) throw new ConsumerLeavingError(JOIN_REFUSED);
      const coordinator = await find(request);
      joinsReported(coordinator, hooks);
      return coordinator;
    };
    return cluster;
  };
  try {
    return kafka.consumer(config);
  } finally {
    slot[symbol] = factory;
  }
}

/** Coordinators (kafkajs Broker objects) whose answers are already watched. */
const watched = new WeakSet<object>();

/**
 * Watches `coordinator` (once): each JoinGroup sent goes to `hooks.joinSent`, and a MEMBER_ID_REQUIRED answer's member id
 * to `hooks.memberIdAssigned`.
 */
function joinsReported(coordinator: GroupCoordinator, hooks: LeavingHooks): void {
  if (watched.has(coordinator)) return;
  watched.add(coordinator);
  const join = coordinator.joinGroup;
  coordinator.joinGroup = function (this: unknown, request) {
    hooks.joinSent(request.memberId ?? "");
    return join.call(this, request);
  };
  let proto: object | null = coordinator;
  let symbol: symbol | undefined;
  while (proto && !symbol) {
    symbol = Object.getOwnPropertySymbols(proto).find((s) => s.description === SEND_REQUEST);
    proto = Object.getPrototypeOf(proto);
  }
  const slot = coordinator as unknown as Record<symbol, unknown>;
  const send = symbol === undefined ? undefined : slot[symbol];
  // Without it (another kafkajs) a first join is not left, as before: the group drops the member after its session.
  if (symbol === undefined || typeof send !== "function") return;
  slot[symbol] = async function (this: unknown, ...args: unknown[]) {
    try {
      return await send.apply(this, args);
    } catch (error) {
      const { name, memberId } = error as { name?: unknown; memberId?: unknown };
      if (name === "KafkaJSMemberIdRequired" && typeof memberId === "string") hooks.memberIdAssigned(memberId);
      throw error;
    }
  };
}

/** Sends `memberId`'s LeaveGroup to the group's coordinator from a connection of its own. */
export async function leaveFromAside(kafka: Kafka, groupId: string, memberId: string): Promise<void> {
  const found = clusterFactory(kafka);
  if (!found) {
    throw new KafkaClientMismatchError(
      "kafkajs has no private cluster factory (Symbol(private:Kafka:createCluster)): engine/kafka_group_leave.ts " +
        "needs kafkajs 2.2.4",
    );
  }
  const cluster = found.factory({ allowAutoTopicCreation: false });
  try {
    await cluster.connect();
    const coordinator = await cluster.findGroupCoordinator({ groupId });
    await coordinator.leaveGroup({ groupId, memberId });
  } finally {
    await cluster.disconnect().catch(() => {});
  }
}
