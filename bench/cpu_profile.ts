// deno-lint-ignore-file no-console
/**
 * A V8 CPU profile of one stretch of a benchmark (`--cpu-profile FILE`), through `node:inspector`, since Deno has no
 * `--cpu-prof`: the file opens in Chrome DevTools, and a summary by self time is printed, so that a run says where its
 * time went without a second tool. Line numbers are those of the JavaScript Deno compiled each module to, which may sit a
 * few lines off the TypeScript's; function names are exact.
 */
import { Session } from "node:inspector";

/** The project's root as a URL: functions under it are named by their path in it. */
const PROJECT = new URL("../", import.meta.url).href;

/** One node of V8's profile tree (Profiler.Profile in the DevTools protocol). */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** What `Profiler.stop` returns: the tree, and which node was on the stack at each sample. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** A running profile: `stop` ends it and returns it. */
export interface Profiler {
  stop(): Promise<CpuProfile>;
}

/** Starts V8's sampling profiler in this process; `intervalUs` is the sampling period. */
export async function startProfiler(intervalUs = 200): Promise<Profiler> {
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve, reject) =>
      session.post(method, params, (error, result) => error ? reject(error) : resolve(result as T))
    );
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: intervalUs });
  await post("Profiler.start");
  return {
    async stop() {
      const { profile } = await post<{ profile: CpuProfile }>("Profiler.stop");
      await post("Profiler.disable");
      session.disconnect();
      return profile;
    },
  };
}

/** Where a function lives, shortened to the part a reader recognises (a project path, or an npm package). */
function place(url: string, line: number): string {
  if (url === "") return "";
  const npm = url.match(/node_modules\/\.deno\/([^/]+)\/node_modules\/(.*)$/);
  const path = npm ? npm[2] : url.startsWith(PROJECT) ? url.slice(PROJECT.length) : url;
  return `${path}:${line + 1}`;
}

/** Self time by function, largest first, as shares of the profile's samples. */
export function selfTimes(profile: CpuProfile): { name: string; share: number }[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const counts = new Map<string, number>();
  for (const id of profile.samples) {
    const frame = byId.get(id)!.callFrame;
    const where = place(frame.url, frame.lineNumber);
    const name = `${frame.functionName || "(anonymous)"}${where ? ` ${where}` : ""}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const total = profile.samples.length || 1;
  return [...counts].map(([name, count]) => ({ name, share: count / total })).sort((a, b) => b.share - a.share);
}

/** Self time by source (a project folder, an npm package, or V8's own: GC, idle, native), largest first. */
export function sourceTimes(profile: CpuProfile): { name: string; share: number }[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const counts = new Map<string, number>();
  for (const id of profile.samples) {
    const { functionName, url } = byId.get(id)!.callFrame;
    let source: string;
    if (url === "") source = functionName.startsWith("(") ? functionName : "(native)";
    else if (url.startsWith("ext:deno_node/")) source = "(deno's node: modules)";
    else if (url.startsWith("ext:")) source = "(deno runtime)";
    else {
      // Deno keeps npm packages in node_modules/.deno/<name>@<version>, a scope's "/" written as "+".
      const npm = url.match(/node_modules\/\.deno\/(@?[^/@]+)@/);
      const project = url.startsWith(PROJECT) ? url.slice(PROJECT.length).match(/^([^/]+)\//) : null;
      source = npm ? `npm:${npm[1].replace("+", "/")}` : project ? `${project[1]}/` : url;
    }
    counts.set(source, (counts.get(source) ?? 0) + 1);
  }
  const total = profile.samples.length || 1;
  return [...counts].map(([name, count]) => ({ name, share: count / total })).sort((a, b) => b.share - a.share);
}

/** Writes the profile for DevTools and prints its largest self times. */
export async function report(profile: CpuProfile, file: string, top = 30): Promise<void> {
  await Deno.writeTextFile(file, JSON.stringify(profile));
  const seconds = (profile.endTime - profile.startTime) / 1e6;
  const percent = (share: number) => `${(100 * share).toFixed(1).padStart(5)}%`;
  console.log(
    `\nCPU profile: ${file} (${profile.samples.length} samples over ${
      seconds.toFixed(1)
    } s; shares of all samples, idle ones included)`,
  );
  console.log("self time by source:");
  for (const { name, share } of sourceTimes(profile).filter(({ share }) => share >= 0.005)) {
    console.log(`  ${percent(share)}  ${name}`);
  }
  console.log(`self time by function (top ${top}):`);
  for (const { name, share } of selfTimes(profile).slice(0, top)) console.log(`  ${percent(share)}  ${name}`);
}
