/**
 * A database of its own for each benchmark run that starts an engine: the state in a database belongs to one consumer
 * group (sql/migrations/012_state_owner.sql), and every run uses a new group, so a second run on the same services
 * (`deno task services`, its variables exported) was refused at start-up.
 */
import postgres from "postgres";

/** A database created for this run on the server of `serverUrl`, and a function that drops it; none without a URL. */
export async function benchDatabase(
  serverUrl: string | undefined,
): Promise<{ url: string | undefined; drop: () => Promise<void> }> {
  if (!serverUrl) return { url: undefined, drop: () => Promise.resolve() };
  const name = `bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}
