/**
 * CPU time of the services beside the engine (the PostgreSQL server and the Kafka broker), read from Linux's `/proc`,
 * so that a benchmark can say what one event costs the whole machine and not only the engine's process. A service is
 * found by the TCP port it listens on; its CPU is its own plus its children's (PostgreSQL runs a process per
 * connection), counting children that ended through the parent's `cutime`/`cstime`.
 */

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on every Linux build in practice). */
const TICKS_PER_SECOND = 100;

/** One process's fields of `/proc/<pid>/stat` that matter here. */
interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  /** utime + stime, in ticks. */
  readonly own: number;
  /** cutime + cstime: children that ended and were waited for, in ticks. */
  readonly reaped: number;
}

function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null; // ended meanwhile
  }
  // The command name (field 2) is in parentheses and may hold spaces: fields are counted after its ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const field = (n: number) => Number(fields[n - 3]);
  return { pid, ppid: field(4), own: field(14) + field(15), reaped: field(16) + field(17) };
}

function allStats(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = readStat(Number(entry.name));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** Seconds of CPU used so far by `pid` and every process below it. */
export function treeCpuSeconds(pid: number): number {
  const stats = allStats();
  const children = new Map<number, ProcStat[]>();
  for (const stat of stats) children.set(stat.ppid, [...children.get(stat.ppid) ?? [], stat]);
  const root = stats.find((stat) => stat.pid === pid);
  if (!root) return NaN;
  let ticks = 0;
  const pending = [root];
  while (pending.length > 0) {
    const stat = pending.pop()!;
    ticks += stat.own + stat.reaped;
    pending.push(...children.get(stat.pid) ?? []);
  }
  return ticks / TICKS_PER_SECOND;
}

/** The process listening on TCP `port` on this machine, or null (a remote service, or no permission to see it). */
export function listenerPid(port: number): number | null {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 10 is the socket's inode.
      if (fields.length < 10 || fields[3] !== "0A") continue;
      if (parseInt(fields[1].split(":")[1], 16) === port) inodes.add(fields[9]);
    }
  }
  if (inodes.size === 0) return null;
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let fds: Deno.DirEntry[];
    try {
      fds = [...Deno.readDirSync(`/proc/${entry.name}/fd`)];
    } catch {
      continue; // not ours to read, or ended meanwhile
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = Deno.readLinkSync(`/proc/${entry.name}/fd/${fd.name}`);
      } catch {
        continue; // closed meanwhile
      }
      const inode = target.match(/^socket:\[(\d+)\]$/)?.[1];
      if (inode && inodes.has(inode)) return Number(entry.name);
    }
  }
  return null;
}

/** PostgreSQL's port when a URL names none. */
const POSTGRES_DEFAULT_PORT = 5432;

/** The port of a `host:port` address or a `postgres://` URL (5432 when it names none), or null. */
export function portOf(address: string): number | null {
  if (/^postgres(ql)?:\/\//.test(address)) {
    try {
      return Number(new URL(address).port || POSTGRES_DEFAULT_PORT);
    } catch {
      return null;
    }
  }
  const match = address.match(/:(\d+)$/);
  return match ? Number(match[1]) : null;
}
