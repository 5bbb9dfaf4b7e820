/**
 * The JSON Schema checker that integration tests hold real answers to /openapi.json with (tests/helpers/json_schema.ts)
 * finds what breaks the served document's schemas, so a test using it cannot pass by checking nothing.
 */
import assert from "node:assert/strict";
import { schemaProblems } from "../helpers/json_schema.ts";
import { BASE, httpFixture } from "./http_fixture.ts";

Deno.test("the schema checker flags undocumented, missing, mistyped and out-of-range fields of a served schema", async () => {
  const { handle } = await httpFixture();
  const doc = await (await handle(new Request(`${BASE}/openapi.json`))).json();
  const alertList = { $ref: "#/components/schemas/AlertList" };
  const alert = {
    alertId: "a1",
    type: "out_of_stock",
    severity: "critical",
    subject: { kind: "product", id: "p1" },
    occurredAt: "2026-11-22T11:00:00.000Z",
    details: {},
  };
  assert.deepEqual(schemaProblems({ items: [alert] }, alertList, doc), []);
  const broken = [
    { items: [{ ...alert, extra: 1 }] },
    { items: [{ ...alert, alertId: undefined }] },
    { items: [{ ...alert, severity: "fatal" }] },
    { items: [{ ...alert, occurredAt: "yesterday" }] },
    { items: [{ ...alert, subject: { kind: "product", id: 7 } }] },
    { items: {} },
  ];
  for (const body of broken) {
    assert.notDeepEqual(schemaProblems(JSON.parse(JSON.stringify(body)), alertList, doc), [], JSON.stringify(body));
  }
  assert.notDeepEqual(schemaProblems({ status: "ok" }, { $ref: "#/components/schemas/Nothing" }, doc), []);
  assert.notDeepEqual(schemaProblems("x", { unevaluatedProperties: false }, doc), []);
  assert.notDeepEqual(schemaProblems({ eventCount: -1 }, { $ref: "#/components/schemas/User" }, doc), []);
});
