/** The group's forward secret: created once per group in the database, and what tells a forwarded request. */
import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { FORWARDED_HEADER, isForwarded, loadForwardSecret } from "../../engine/forward_secret.ts";
import { silentLogger } from "../../engine/logger.ts";
import { migrate } from "../../sql/migrations.ts";

Deno.test("a group's forward secret is created once, random, and read back by every later start-up of the group", async () => {
  const dir = await Deno.makeTempDir({ prefix: "forward-secret-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    const [first, again] = await Promise.all([loadForwardSecret(db.sql, "g1"), loadForwardSecret(db.sql, "g1")]);
    assert.equal(again, first, "two start-ups at once agree");
    assert.equal(await loadForwardSecret(db.sql, "g1"), first);
    assert.match(first, /^[0-9a-f]{64}$/);
    const other = await loadForwardSecret(db.sql, "g2");
    assert.notEqual(other, first, "each group its own");
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a request is forwarded only when its header carries the secret exactly", () => {
  const request = (value?: string) =>
    new Request(
      "http://engine.test/v1/users/u1",
      value === undefined ? {} : { headers: { [FORWARDED_HEADER]: value } },
    );
  assert.equal(isForwarded(request("s3cret"), "s3cret"), true);
  for (const value of [undefined, "", "1", "s3cre", "s3cret2", "S3CRET", "s3crét"]) {
    assert.equal(isForwarded(request(value), "s3cret"), false, JSON.stringify(value));
  }
});
