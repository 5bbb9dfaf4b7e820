/**
 * Read-only access to actor state for queries: live memory first (unless another instance has claimed the key's
 * partition since); then, for a key whose partition another instance owns, that instance's answer (the query is
 * forwarded once); else the last checkpoint.
 * The analytics queries, computed from the global actor's memory, are routed whole (`QueryRouter`)
 * to the owner of its partition, by the same means: one forward, the same header, timeout and limits.
 */
import { answeredWithin, sharedRuns } from "./bounded_query.ts";
import type { CheckpointStore } from "./checkpoint.ts";
import { DatabaseUnavailableError, NotFoundError, problemType } from "./errors.ts";
import { parseJson } from "./json_parse.ts";
import type { InstanceRegistry } from "./instance_registry.ts";
import { type LogAdmin, tpKey } from "./log.ts";
import type { Logger } from "./logger.ts";
import type { Topics } from "./config.ts";
import { FORWARDED_HEADER } from "./forward_secret.ts";
import { partitionForKey } from "./partitioner.ts";
import type { ActorRuntime } from "./runtime.ts";

/**
 * Request header marking a query forwarded by another instance (engine/forward_secret.ts): such a query is never
 * forwarded again, and is answered with the stored state (the asking instance makes the public view of it).
 */
export { FORWARDED_HEADER } from "./forward_secret.ts";
/** Response header naming the instance that answered a state query. */
export const INSTANCE_HEADER = "x-engine-instance";
/** A forwarded query slower than this is answered from the checkpoint instead. */
export const FORWARD_TIMEOUT_MS = 1_000;
/**
 * How long a partition's owner, once looked up, is reused before asking PostgreSQL again. Saves a
 * database round trip per routed query; after a rebalance a query may reach the previous owner
 * for this long, which then answers from the checkpoint (with `asOf`), never with stale live state: it checks that
 * it still owns the key, as for a client's query.
 */
export const OWNER_CACHE_MS = 1_000;
/**
 * How long the owner a lookup found confirms a memory answer without waiting for the next lookup. Well under the
 * group's session timeout: an instance idle or frozen (SIGSTOP, a paused VM) for longer may have lost the partition
 * meanwhile, so its next memory answer waits for PostgreSQL's word (within the forward timeout); the owner found
 * before the stall used to be trusted, and the first answers after waking were the stale memory.
 */
export const OWNER_TRUSTED_MS = 5_000;

/**
 * OWNER_TRUSTED_MS for a group whose session times out after `sessionTimeoutMs`: at most half of it, so that a stall
 * long enough to lose the partition (a session timeout at least) always outlasts the trust in the owner found before.
 */
export function ownerTrustedMs(sessionTimeoutMs: number): number {
  return Math.min(OWNER_TRUSTED_MS, Math.floor(sessionTimeoutMs / 2));
}
/**
 * How long a query waits for PostgreSQL (its key's partition owner, its checkpoint) before answering 503 naming the
 * database: on a frozen database (connections open, no answers) it used to wait until the database answered.
 */
export const QUERY_DATABASE_TIMEOUT_MS = 2_000;
/**
 * Forwarded queries in flight at most; beyond it a query is answered from the checkpoint. Each
 * forward holds a connection to the owner, so a slow owner must not pile up connections until
 * the process runs out of file descriptors.
 */
export const MAX_FORWARDS_IN_FLIGHT = 64;
/**
 * A failed forward is logged at most once per owner in this long: queries to an owner that is down
 * or registered at a wrong ADVERTISED_URL would otherwise write a line each.
 */
export const FORWARD_FAILURE_LOG_MS = 10_000;

/** A state as a query sees it. */
export interface ReadState {
  readonly state: unknown;
  /** `memory` when live; `checkpoint` when read from PostgreSQL, with `asOf` its time. */
  readonly source: "memory" | "checkpoint";
  readonly asOf?: string;
  /** The instance that answered: this one, or the owner the query was forwarded to. */
  readonly instance?: string;
}

/** How a state route asks: `forwarded` when the request came from another instance. */
export interface ReadOptions {
  readonly forwarded: boolean;
}

/** What query routes use to see actor state; there is no path from it back into actors. */
export interface StateReader {
  /** The instance this reader answers as (none without routing): a forwarded query's 404 names it (see forwardRead). */
  readonly instance?: string;
  /**
   * Without `options` the read is local (memory, then checkpoint); with them a read is not answered from the memory of
   * a partition claimed elsewhere since (its checkpoint answers a forwarded one), and a client's may be forwarded (a
   * kind with a `path`).
   */
  read(kind: string, key: string, options?: ReadOptions): Promise<ReadState | null>;
}

/** Routes a whole query about a key to the instance owning the key's partition. */
export interface QueryRouter {
  /**
   * The owner's answer to the GET `request` about `kind`'s `key`, asked once; undefined when this instance answers
   * it: it owns the key's partition, the request was forwarded here, or the owner cannot be asked or failed (the
   * caller then answers from the checkpoint, marked with `asOf`). DatabaseUnavailableError when PostgreSQL does not
   * name the owner within QUERY_DATABASE_TIMEOUT_MS.
   */
  route(kind: string, key: string, request: Request): Promise<Response | undefined>;
}

/** Where a routable kind's keys live and where its owner serves them over HTTP. */
export interface RoutedKind {
  /** The topic feeding the kind. */
  readonly topic: string;
  /** The topic's partition count as the log has it (not as configured: an existing topic keeps its own). */
  readonly partitions: number;
  /** The GET path of a key's state on any instance; none for the global actor, whose queries are routed whole. */
  readonly path?: (key: string) => string;
}

/**
 * The kinds a query is forwarded for, users, products and the global actor (analytics), each with the partition count
 * the log has for its topic: a key's owner is found by the partition the log puts it in, and an existing topic keeps
 * its count whatever PARTITIONS says now (the configured count sent queries to the owner of another partition, or to
 * none).
 */
export async function routedKinds(
  topics: Pick<Topics, "events" | "productEvents" | "analytics">,
  admin: Pick<LogAdmin, "partitionCount">,
): Promise<Record<string, RoutedKind>> {
  const [users, products, analytics] = await Promise.all(
    [topics.events, topics.productEvents, topics.analytics].map((t) => admin.partitionCount(t)),
  );
  return {
    global: { topic: topics.analytics, partitions: analytics },
    user: { topic: topics.events, partitions: users, path: (key) => `/v1/users/${encodeURIComponent(key)}` },
    product: {
      topic: topics.productEvents,
      partitions: products,
      path: (key) => `/v1/products/${encodeURIComponent(key)}`,
    },
  };
}

/** What forwarding needs: the registry and the routable kinds. */
export interface StateRouting {
  readonly registry: Pick<InstanceRegistry, "instanceId" | "owner">;
  readonly kinds: Readonly<Record<string, RoutedKind>>;
  /** The group's forward secret, the header's value: the owner takes the query as forwarded only with it. */
  readonly forwardSecret: string;
  readonly timeoutMs?: number;
  /** Defaults to OWNER_CACHE_MS; 0 looks the owner up for every query (but shares a lookup still unanswered). */
  readonly ownerCacheMs?: number;
  /** Defaults to OWNER_TRUSTED_MS; 0 makes every memory answer wait for a lookup. */
  readonly ownerTrustedMs?: number;
  /** Defaults to MAX_FORWARDS_IN_FLIGHT. */
  readonly maxForwards?: number;
  /** Injected in unit tests. */
  readonly fetch?: typeof fetch;
  /** Where a forward that failed is reported (answered from the checkpoint instead). */
  readonly logger?: Logger;
}

/**
 * Reads live state from the runtime, asks the owning instance if routing is given, else the checkpoint; routes
 * whole queries to the owner too (without routing, never).
 */
export function createStateReader(
  runtime: ActorRuntime,
  store: CheckpointStore,
  routing?: StateRouting,
): StateReader & QueryRouter {
  const self = routing?.registry.instanceId;
  const owners = routing ? ownerCache(routing) : undefined;
  const failures = routing ? failureLog(routing) : undefined;
  const maxForwards = routing?.maxForwards ?? MAX_FORWARDS_IN_FLIGHT;
  let forwarding = 0;
  /**
   * Whether PostgreSQL names another instance as the owner of a partition this runtime still holds: another claimed it
   * while this one stalled (a pause, Kafka out of reach past the session timeout), and this one has not heard of it
   * yet. Its memory is then stale: it used to answer from it, as `memory`, for as long as the stall's news took. The
   * latest owner found, if found within OWNER_TRUSTED_MS, is used without waiting for the database (a memory answer
   * must not stall with it); an older one is looked up again first (this instance may have stalled since); one other
   * than this instance is looked up again (this one may have claimed the partition since). A database that fails or
   * does not answer within the forward timeout leaves the runtime's word.
   */
  const claimedElsewhere = async (topic: string, partition: number): Promise<boolean> => {
    const elsewhere = (owner: PartitionOwnerRow | null | undefined) => !!owner && owner.instanceId !== self;
    const timeoutMs = routing!.timeoutMs ?? FORWARD_TIMEOUT_MS;
    // Looked up again when due, for this answer if none has answered yet, else for the next ones.
    const lookup = owners!.get(topic, partition);
    const known = owners!.latest(topic, partition) ?? await within(lookup, timeoutMs);
    if (!elsewhere(known)) return false;
    owners!.forget(topic, partition);
    return elsewhere(await within(owners!.get(topic, partition), timeoutMs));
  };
  /** Whether this instance owns `topic`'s `partition`: its runtime holds it, and no later claim took it elsewhere. */
  const ownsHere = async (topic: string, partition: number): Promise<boolean> =>
    runtime.owned().includes(tpKey({ topic, partition })) && !(await claimedElsewhere(topic, partition));
  /** `ask` run against the owner of `key`'s partition, if another instance owns it and a forward is allowed. */
  const viaOwner = async <T>(
    routed: RoutedKind,
    key: string,
    ask: (to: Forward) => Promise<T | undefined>,
  ): Promise<T | undefined> => {
    const partition = partitionForKey(key, routed.partitions);
    if (forwarding >= maxForwards || await ownsHere(routed.topic, partition)) return undefined;
    forwarding++;
    try {
      return await ask({ routing: routing!, owners: owners!, failed: failures!, topic: routed.topic, partition });
    } finally {
      forwarding--;
    }
  };
  /** Checkpoint reads in flight, by kind and key: a query abandoned on a frozen database leaves its read to the next. */
  const reading = sharedRuns();
  /**
   * `kind`'s `key` as last checkpointed, sharing a read still unanswered (each is a query on the pool: one per client
   * query piled up on a frozen database, all run once it answered); DatabaseUnavailableError if it fails or takes
   * longer than QUERY_DATABASE_TIMEOUT_MS.
   */
  const readCheckpoint = async (kind: string, key: string) => {
    const read = reading(JSON.stringify([kind, key]), () => store.read(kind, key));
    try {
      return await answeredWithin(read, QUERY_DATABASE_TIMEOUT_MS, "the checkpoint");
    } catch (error) {
      if (error instanceof DatabaseUnavailableError) throw error;
      throw new DatabaseUnavailableError("cannot read the checkpoint", { cause: error });
    }
  };
  return {
    instance: self,
    async read(kind, key, options) {
      const routed = routing?.kinds[kind];
      const path = routed?.path;
      // A routed kind's owner is checked for a client's query and for one another instance forwarded here: the
      // forwarder's owner, reused for OWNER_CACHE_MS, may name this instance after the partition left it, and its stale
      // memory answered such a query. Only a client's query is forwarded.
      const checked = routed && options ? routed : undefined;
      const live = runtime.lookup(kind, key);
      // Not from the memory of a partition claimed elsewhere since: its owner, or else the checkpoint, answers. So for
      // the global actor too, whose queries are routed whole (`route`): one its owner did not answer used to be
      // answered from that stale memory.
      if (live && !(checked && await claimedElsewhere(checked.topic, live.partition))) {
        return { state: live.state, source: "memory", instance: self };
      }
      const routable = checked && path && !options?.forwarded;
      if (routable) {
        const answer = await viaOwner(routed, key, (to) => forwardRead(to, path(key)));
        if (answer !== undefined) return answer;
      }
      const stored = await readCheckpoint(kind, key);
      return stored
        ? { state: stored.state, source: "checkpoint", asOf: stored.updatedAt.toISOString(), instance: self }
        : null;
    },
    route(kind, key, request) {
      const routed = routing?.kinds[kind];
      if (!routed || request.headers.has(FORWARDED_HEADER)) return Promise.resolve(undefined);
      const url = new URL(request.url);
      return viaOwner(routed, key, (to) => forwardQuery(to, url.pathname + url.search));
    },
  };
}

/** Partition owners looked up in PostgreSQL, each reused for `ownerCacheMs`. */
interface OwnerCache {
  get(topic: string, partition: number): Promise<PartitionOwnerRow | null>;
  /**
   * The owner the latest lookup that answered found, without waiting for one; undefined before any did, or when that
   * lookup began more than `ownerTrustedMs` ago.
   */
  latest(topic: string, partition: number): PartitionOwnerRow | null | undefined;
  /** Forgets an owner that could not be reached, so the next query looks again (or shares the look in flight). */
  forget(topic: string, partition: number): void;
}

type PartitionOwnerRow = Awaited<ReturnType<InstanceRegistry["owner"]>>;
type PartitionOwner = NonNullable<PartitionOwnerRow>;

function ownerCache(routing: StateRouting): OwnerCache {
  const ttl = routing.ownerCacheMs ?? OWNER_CACHE_MS;
  const trusted = routing.ownerTrustedMs ?? OWNER_TRUSTED_MS;
  const entries = new Map<string, { owner: Promise<PartitionOwnerRow | null>; at: number; pending: boolean }>();
  /** Each partition's latest owner found, with when the lookup that found it began. */
  const answered = new Map<string, { owner: PartitionOwnerRow | null; at: number }>();
  return {
    get(topic, partition) {
      const k = tpKey({ topic, partition });
      const now = performance.now();
      const hit = entries.get(k);
      // One still unanswered is shared, however old: each is a query on the pool, and one asked per period while
      // PostgreSQL was frozen queued one more per partition for every period, all run once it answered.
      if (hit && (hit.pending || now - hit.at < ttl)) return hit.owner;
      const owner = routing.registry.owner(topic, partition);
      const entry = { owner, at: now, pending: true };
      entries.set(k, entry);
      owner.then((found) => {
        entry.pending = false;
        // Only a newer lookup's answer replaces one: lookups may answer out of order.
        if ((answered.get(k)?.at ?? -Infinity) <= now) answered.set(k, { owner: found, at: now });
      }, () => {
        entry.pending = false;
        if (entries.get(k) === entry) entries.delete(k);
      });
      return owner;
    },
    latest(topic, partition) {
      const found = answered.get(tpKey({ topic, partition }));
      return found && performance.now() - found.at < trusted ? found.owner : undefined;
    },
    forget(topic, partition) {
      // A lookup still unanswered began after the owner being forgotten was found: it is the next look already.
      const k = tpKey({ topic, partition });
      if (!entries.get(k)?.pending) entries.delete(k);
    },
  };
}

/** `promise`'s value, or undefined if it fails or takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms));
  try {
    return await Promise.race([promise.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reports a forward that failed, at most once per owner per FORWARD_FAILURE_LOG_MS. */
type FailureLog = (owner: PartitionOwner, topic: string, partition: number, reason: unknown) => void;

function failureLog(routing: StateRouting): FailureLog {
  const loggedAt = new Map<string, number>();
  return (owner, topic, partition, reason) => {
    const now = performance.now();
    const last = loggedAt.get(owner.instanceId);
    if (!routing.logger || (last !== undefined && now - last < FORWARD_FAILURE_LOG_MS)) return;
    loggedAt.set(owner.instanceId, now);
    routing.logger.warn("cannot forward a query to the partition's owner; answering from the checkpoint", {
      owner: owner.instanceId,
      url: owner.httpUrl,
      topic,
      partition,
      error: reason,
      quietForMs: FORWARD_FAILURE_LOG_MS,
    });
  };
}

/**
 * Why a redirect is no owner's answer: an instance's routes never redirect, so its address leads to something else (a
 * proxy, another server); not followed, since the forward carries the group's secret, which only instances may hold.
 */
const OWNER_REDIRECTED = "the owner's address answered with a redirect, not followed; check the owner's ADVERTISED_URL";

/** One forward: to the owner of `topic`'s `partition`, with what it needs to find it and report a failure. */
interface Forward {
  readonly routing: StateRouting;
  readonly owners: OwnerCache;
  readonly failed: FailureLog;
  readonly topic: string;
  readonly partition: number;
}

/**
 * GET `path` of the partition's owner, marked as forwarded and within the forward timeout, its response read by
 * `answer` (which throws when it is unusable); undefined when there is no other owner to ask, or it failed.
 */
async function askOwner<T>(
  { routing, owners, failed, topic, partition }: Forward,
  path: string,
  answer: (response: Response, owner: PartitionOwner) => Promise<T>,
): Promise<T | undefined> {
  let owner: PartitionOwner | null;
  try {
    owner = await answeredWithin(owners.get(topic, partition), QUERY_DATABASE_TIMEOUT_MS, "the partition's owner");
  } catch (error) {
    // No answer in time (PostgreSQL frozen): a 503 now, not after the checkpoint's read has waited as long again.
    if (error instanceof DatabaseUnavailableError) throw error;
    // The database is unavailable: so is the checkpoint, whose read reports it.
    return undefined;
  }
  if (!owner?.httpUrl || owner.instanceId === routing.registry.instanceId) return undefined;
  try {
    const response = await (routing.fetch ?? fetch)(new URL(path, owner.httpUrl), {
      headers: { [FORWARDED_HEADER]: routing.forwardSecret, accept: "application/json" },
      signal: AbortSignal.timeout(routing.timeoutMs ?? FORWARD_TIMEOUT_MS),
      // Followed, a redirect would carry the group's secret to wherever it points (fetch keeps custom headers).
      redirect: "manual",
    });
    if (response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400)) {
      await response.body?.cancel();
      throw new Error(`${OWNER_REDIRECTED} (${response.status} to ${response.headers.get("location") ?? "?"})`);
    }
    // The body is read under the same timeout: an owner stalling mid-answer is a failure too.
    return await answer(response, owner);
  } catch (error) {
    // Unreachable, timed out, failing, or not JSON: the checkpoint answers instead.
    owners.forget(topic, partition);
    failed(owner, topic, partition, error);
    return undefined;
  }
}

/**
 * Why an answer from this instance itself is no owner's answer: the owner's registered address leads back here (a
 * wrong ADVERTISED_URL, e.g. localhost on every host), and this instance read its own checkpoint unannounced.
 */
const ANSWERED_BY_SELF = "the owner's address reached this instance itself; check the owner's ADVERTISED_URL";

/** The owner's state of a key (null: it has no such key), or undefined when it cannot be asked or failed. */
function forwardRead(to: Forward, path: string): Promise<ReadState | null | undefined> {
  return askOwner(to, path, async (response, owner) => {
    if (response.status === 404) {
      // This instance's own route answered the forward (it names itself on a forwarded 404): no owner's answer.
      if (response.headers.get(INSTANCE_HEADER) === to.routing.registry.instanceId) {
        await response.body?.cancel();
        throw new Error(ANSWERED_BY_SELF);
      }
      // Only the owner's own "no such key" says so; any other 404 (a wrong ADVERTISED_URL reaching another server, a
      // path the owner has no route for) is no answer about the key: the checkpoint answers, and the failure is logged.
      const text = await response.text();
      if (isNotFoundProblem(text)) return null;
      throw new Error(`answered 404 without the engine's not-found problem: ${text.slice(0, 200)}`);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(`answered ${response.status}`);
    }
    const { source, asOf, instance, ...state } = parseJson(await response.text()) as Record<string, unknown>;
    if (source !== "memory" && source !== "checkpoint") throw new Error("answered without a state source");
    const answeredBy = typeof instance === "string" ? instance : owner.instanceId;
    if (answeredBy === to.routing.registry.instanceId) throw new Error(ANSWERED_BY_SELF);
    return { state, source, ...(typeof asOf === "string" ? { asOf } : {}), instance: answeredBy };
  });
}

/** The `type` of the problem the owner answers an unknown key with. */
const NOT_FOUND_TYPE = problemType(new NotFoundError("").code);

/** Whether a 404's body is the engine's not-found problem. */
function isNotFoundProblem(text: string): boolean {
  try {
    return (parseJson(text) as { type?: unknown } | null)?.type === NOT_FOUND_TYPE;
  } catch {
    return false;
  }
}

/**
 * The owner's answer to a whole query, passed on as it came (JSON, naming the instance that answered), or undefined
 * when it cannot be asked or did not answer 200 with JSON.
 */
function forwardQuery(to: Forward, path: string): Promise<Response | undefined> {
  return askOwner(to, path, async (response, owner) => {
    const type = response.headers.get("content-type") ?? "";
    if (response.status !== 200 || !type.includes("json")) {
      await response.body?.cancel();
      throw new Error(`answered ${response.status} ${type}`.trim());
    }
    const instance = response.headers.get(INSTANCE_HEADER) ?? owner.instanceId;
    if (instance === to.routing.registry.instanceId) {
      await response.body?.cancel();
      throw new Error(ANSWERED_BY_SELF);
    }
    const body = await response.text();
    return new Response(body, { headers: { "content-type": type, [INSTANCE_HEADER]: instance } });
  });
}
