/** The alerts route on a fresh embedded database, each answer checked against /openapi.json (alerts paging tests). */
import assert from "node:assert/strict";
import type { Sql } from "../../engine/database.ts";
import { openEmbeddedDatabase } from "../../engine/embedded_database.ts";
import { silentLogger } from "../../engine/logger.ts";
import type { QueryDeps } from "../../http/query_routes.ts";
import { migrate } from "../../sql/migrations.ts";
import { type JsonSchema, schemaProblems } from "../helpers/json_schema.ts";
import { BASE, httpFixture } from "./http_fixture.ts";

/** GET on the alerts route whose answer was checked against /openapi.json: its status and body. */
// deno-lint-ignore no-explicit-any
export type AlertsGet = (path: string) => Promise<Record<string, any>>;

/**
 * Runs `fn` on a fresh embedded database (migrated, then `arrange`d) behind the real routes, with a GET that checks
 * every answer of `/v1/alerts` against the served /openapi.json.
 */
export async function withAlertsRoute(
  options: {
    readonly arrange?: (sql: Sql) => Promise<void>;
    readonly query?: Partial<Pick<QueryDeps, "alertRetentionDays">>;
  },
  fn: (sql: Sql, get: AlertsGet) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "alerts-route-" });
  const db = await openEmbeddedDatabase(dir, { logger: silentLogger, vacuumIntervalMs: 0 });
  try {
    await migrate(db.sql);
    await options.arrange?.(db.sql);
    const { handle } = await httpFixture(undefined, undefined, db.sql, options.query);
    const doc = await (await handle(new Request(`${BASE}/openapi.json`))).json();
    const get: AlertsGet = async (path) => {
      const response = await handle(new Request(`${BASE}${path}`));
      const body = await response.json();
      const media = doc.paths["/v1/alerts"].get.responses[String(response.status)]?.content?.[
        (response.headers.get("content-type") ?? "").split(";")[0]
      ];
      assert.ok(media, `${path} answered ${response.status}, undocumented: ${JSON.stringify(body)}`);
      assert.deepEqual(schemaProblems(body, media.schema as JsonSchema, doc), [], `${path}: ${JSON.stringify(body)}`);
      return { status: response.status, ...body };
    };
    await fn(db.sql, get);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
}
