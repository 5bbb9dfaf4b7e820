/**
 * A private PostgreSQL server for tests that must stop and restart PostgreSQL without touching the
 * shared server of scripts/services.sh: a throwaway cluster made with Debian's `initdb` on a free
 * loopback port, started and stopped with `pg_ctl`, restarted on the same port and data so that
 * clients see the same server come back. As root, the server runs as the `postgres` user (it
 * refuses to run as root), as scripts/services.sh does.
 */
import { freePort } from "./engine_process.ts";

const STARTUP_TIMEOUT_S = 60;

/** A server this test owns. */
export interface PrivatePostgres {
  /** The `postgres` database's URL, the same across restarts. */
  readonly url: string;
  /** True while the server runs. */
  readonly running: boolean;
  /**
   * Stops the server: "immediate" ends every backend at once, without a shutdown checkpoint (a crash,
   * as far as its clients and its recovery can tell); "fast" is a clean shutdown.
   */
  stop(mode?: "immediate" | "fast"): Promise<void>;
  /** Starts it again on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it and deletes its data. */
  destroy(): Promise<void>;
}

/** The server binaries of the newest installed Debian `postgresql`. */
function binaries(): string {
  const versions: number[] = [];
  try {
    for (const entry of Deno.readDirSync("/usr/lib/postgresql")) {
      if (/^\d+$/.test(entry.name)) versions.push(Number(entry.name));
    }
  } catch {
    // not installed
  }
  const newest = versions.sort((a, b) => b - a)[0];
  if (newest === undefined) {
    throw new Error(
      "Cannot start a private PostgreSQL: no /usr/lib/postgresql/<version>/bin (scripts/services.sh installs it)",
    );
  }
  return `/usr/lib/postgresql/${newest}/bin`;
}

const isRoot = () => Deno.uid() === 0;

/** Runs a server binary as the cluster's owner; throws with its output when it fails. */
async function run(binary: string, args: string[]): Promise<void> {
  const [command, commandArgs] = isRoot() ? ["runuser", ["-u", "postgres", "--", binary, ...args]] : [binary, args];
  const result = await new Deno.Command(command, { args: commandArgs, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  if (!result.success) {
    const output = new TextDecoder().decode(result.stderr) + new TextDecoder().decode(result.stdout);
    throw new Error(`${binary} ${args.join(" ")} failed: ${output.trim()}`);
  }
}

/** Makes a cluster and starts it; resolves once it accepts connections. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binaries();
  const dir = await Deno.makeTempDir({ prefix: "postgres-server-" });
  await Deno.chmod(dir, 0o755);
  const data = `${dir}/data`;
  const sockets = `${dir}/sockets`;
  await Deno.mkdir(data);
  await Deno.mkdir(sockets);
  if (isRoot()) {
    const uid = await postgresUid();
    for (const path of [dir, data, sockets]) await Deno.chown(path, uid, null);
  }
  await run(`${bin}/initdb`, ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"]);
  const port = freePort();
  const options = `-p ${port} -k ${sockets} -c listen_addresses=127.0.0.1 -c fsync=off`;
  let running = false;
  const server: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    get running() {
      return running;
    },
    async start() {
      if (running) return;
      await run(`${bin}/pg_ctl`, [
        "-D",
        data,
        "-l",
        `${dir}/server.log`,
        "-w",
        "-t",
        String(STARTUP_TIMEOUT_S),
        "-o",
        options,
        "start",
      ]);
      running = true;
    },
    async stop(mode = "immediate") {
      if (!running) return;
      await run(`${bin}/pg_ctl`, ["-D", data, "-m", mode, "-w", "stop"]);
      running = false;
    },
    async destroy() {
      await server.stop("immediate").catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
  await server.start();
  return server;
}

/** The uid of the `postgres` user, who owns the cluster when the tests run as root. */
async function postgresUid(): Promise<number> {
  const id = await new Deno.Command("id", { args: ["-u", "postgres"], stdout: "piped", stderr: "piped" }).output();
  const uid = Number(new TextDecoder().decode(id.stdout).trim());
  if (!id.success || !Number.isInteger(uid)) {
    throw new Error("Cannot start a private PostgreSQL as root: no postgres user");
  }
  return uid;
}
