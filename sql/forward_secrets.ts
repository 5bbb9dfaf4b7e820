/** The per-group secret of forwarded queries (sql/migrations/017_forward_secrets.sql). Tagged templates only. */
import type { Sql } from "../engine/database.ts";
import { READ_COMMITTED } from "./isolation.ts";

/**
 * The secret of `groupId`'s forwarded queries: the one recorded, else `candidate`, recorded now. Two start-ups at once
 * agree: the second insert waits for the first and then updates nothing, returning the first one's secret (read
 * committed: in a snapshot taken before, a database defaulting to repeatable read failed it).
 */
export async function groupForwardSecret(sql: Sql, groupId: string, candidate: string): Promise<string> {
  return await sql.begin(READ_COMMITTED, async (tx) => {
    const [row] = await tx<{ secret: string }[]>`
      insert into forward_secrets (group_id, secret) values (${groupId}, ${candidate})
      on conflict (group_id) do update set secret = forward_secrets.secret
      returning secret`;
    return row.secret;
  });
}
