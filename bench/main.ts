// deno-lint-ignore-file no-console
/**
 * `deno task bench NAME`: runs one benchmark against the local services (scripts/services.sh).
 * Benchmarks print their figures; they are never part of the test suite.
 */
const BENCHMARKS: Record<string, string> = {
  ingest: "./ingest.ts",
  engine: "./engine.ts",
  domain: "./domain.ts",
  compare: "./compare.ts",
  worker: "./worker.ts",
  produce: "./produce.ts",
  store: "./store.ts",
  claim: "./claim.ts",
  query: "./query.ts",
};

const name = Deno.args[0];
if (!name || !(name in BENCHMARKS)) {
  console.error(`usage: deno task bench <${Object.keys(BENCHMARKS).join("|")}> [options]`);
  Deno.exit(2);
}
const module = await import(BENCHMARKS[name]);
await module.run(Deno.args.slice(1));
