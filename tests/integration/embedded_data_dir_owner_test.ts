/**
 * A DATA_DIR whose database belongs to another user (a `sudo deno task start` on one's own DATA_DIR, or the other way
 * round) is refused at start-up, naming it and the remedy, and nothing is written into it: an engine run as root used
 * to start on it and leave root-owned files behind, after which its owner's engine could not open the database at all
 * ("Aborted(). Build with -sASSERTIONS for more info").
 */
import assert from "node:assert/strict";
import { spawnEngine, startEngineProcess } from "../helpers/engine_process.ts";
import { eventually } from "../helpers/services.ts";
import { onlyOn } from "../helpers/modes.ts";

/** The user id the database is given to: `nobody` on Debian, never the one running the tests. */
const OTHER_UID = 65534;

/** Every file and directory under `dir` (itself included) with its owner. */
function owners(dir: string): Map<string, number | null> {
  const found = new Map<string, number | null>([[dir, Deno.statSync(dir).uid]]);
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) { for (const [p, uid] of owners(path)) found.set(p, uid); }
    else found.set(path, Deno.lstatSync(path).uid);
  }
  return found;
}

function chownAll(dir: string, uid: number): void {
  for (const path of owners(dir).keys()) Deno.chownSync(path, uid, null);
}

// Giving DATA_DIR's database to another user takes chown, so root (as CI and this machine run the suite); under
// another user the check itself is covered by tests/unit/pgdata_owner_test.ts, which passes in the user id.
onlyOn("embedded", {
  name: "a database under DATA_DIR that belongs to another user is refused, named, and left untouched",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const dataDir = await Deno.realPath(await Deno.makeTempDir({ prefix: "embedded-owner-" }));
    const pgdata = `${dataDir}/pgdata`;
    try {
      const first = await startEngineProcess({ dataDir });
      const posted = await fetch(`${first.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "product_viewed", userId: "owner-user", properties: { productId: "sku-1" } }),
      });
      assert.equal(posted.status, 202);
      await posted.body?.cancel();
      assert.equal((await first.kill("SIGTERM")).code, 0, first.logs());

      chownAll(pgdata, OTHER_UID);
      const before = owners(pgdata);
      const refused = spawnEngine({ dataDir });
      let guard: ReturnType<typeof setTimeout> | undefined;
      const status = await Promise.race([
        refused.exited,
        new Promise<null>((resolve) => guard = setTimeout(() => resolve(null), 30_000)),
      ]);
      clearTimeout(guard);
      if (status === null) await refused.kill("SIGKILL");
      assert.equal(status?.code, 2, `the engine did not stop at start-up:\n${refused.logs()}`);
      assert.equal(
        refused.logs().trim(),
        `Cannot start: the embedded database in DATA_DIR ${dataDir} belongs to user id ${OTHER_UID} (${pgdata}), and ` +
          `the engine runs as user id 0: PostgreSQL's files must belong to the user that runs it. Run the engine as ` +
          `user id ${OTHER_UID}, or give DATA_DIR to this one (chown -R 0 ${dataDir})`,
      );
      assert.deepEqual(owners(pgdata), before, "no file was created or given to another owner in the refused database");

      // Given back, the database opens with what it had accepted.
      chownAll(pgdata, 0);
      const again = await startEngineProcess({ dataDir });
      try {
        await eventually("the view accepted before to be there", async () => {
          const response = await fetch(`${again.url}/v1/users/owner-user`);
          const body = await response.json();
          return body.productViews === 1 ? true : undefined;
        });
      } finally {
        assert.equal((await again.kill("SIGTERM")).code, 0, again.logs());
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
