/**
 * A plain kafkajs member of a consumer group in a process of its own, for tests that stop it (SIGSTOP) to make the
 * group's next join wait for its session timeout, as a frozen or partitioned instance of another deployment does.
 * Run as a script, it joins and prints each member id it joined with on stdout, one a line.
 */
import { Kafka, logLevel } from "kafkajs";

/** Settings passed to the member's process through its environment. */
export interface GroupMemberOptions {
  readonly brokers: string;
  readonly groupId: string;
  readonly topics: readonly string[];
  /** The group drops the member this long after it stopped answering (and a join waits for it as long). */
  readonly sessionTimeoutMs: number;
}

/** A running member process. */
export interface GroupMember {
  readonly pid: number;
  /** Its member id, once it has joined the group. */
  readonly joined: Promise<string>;
  /** Ends the process (SIGKILL, also when it is stopped) and waits for it. */
  kill(): Promise<void>;
}

/** Spawns a member; `joined` settles with its member id when the group has accepted it. */
export function spawnGroupMember(options: GroupMemberOptions): GroupMember {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", new URL(import.meta.url).pathname],
    env: {
      MEMBER_BROKERS: options.brokers,
      MEMBER_GROUP_ID: options.groupId,
      MEMBER_TOPICS: options.topics.join(","),
      MEMBER_SESSION_TIMEOUT_MS: String(options.sessionTimeoutMs),
    },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const joined = Promise.withResolvers<string>();
  // Awaited by the test until it joined; an exit after that (the kill at its end) is no failure.
  joined.promise.catch(() => {});
  const decoder = new TextDecoder();
  let out = "";
  const read = child.stdout.pipeTo(
    new WritableStream({
      write: (chunk) => {
        out += decoder.decode(chunk, { stream: true });
        const line = out.split("\n").find((l) => l.startsWith("joined "));
        if (line) joined.resolve(line.slice("joined ".length));
      },
    }),
  ).catch(() => {});
  const status = child.status.then(async (s) => {
    await read;
    joined.reject(new Error(`the group member exited (${JSON.stringify(s)}) before it joined`));
  });
  return {
    pid: child.pid,
    joined: joined.promise,
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await status;
    },
  };
}

if (import.meta.main) {
  const kafka = new Kafka({
    clientId: "stopped-member",
    brokers: Deno.env.get("MEMBER_BROKERS")!.split(","),
    logLevel: logLevel.NOTHING,
  });
  const sessionTimeout = Number(Deno.env.get("MEMBER_SESSION_TIMEOUT_MS"));
  const consumer = kafka.consumer({
    groupId: Deno.env.get("MEMBER_GROUP_ID")!,
    sessionTimeout,
    rebalanceTimeout: 2 * sessionTimeout,
    heartbeatInterval: 500,
  });
  const out = new TextEncoder();
  consumer.on(
    consumer.events.GROUP_JOIN,
    (event) => Deno.stdout.writeSync(out.encode(`joined ${event.payload.memberId}\n`)),
  );
  await consumer.connect();
  await consumer.subscribe({ topics: Deno.env.get("MEMBER_TOPICS")!.split(","), fromBeginning: true });
  await consumer.run({ eachBatch: async () => {} });
}
