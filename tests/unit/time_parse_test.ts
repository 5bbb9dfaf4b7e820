import assert from "node:assert/strict";
import fc from "fast-check";
import { parseTime } from "../../actors/time_parse.ts";
import { iso } from "../../actors/alerts.ts";

/** Object.is, so that NaN answers compare equal. */
function same(text: string): void {
  assert.ok(Object.is(parseTime(text), Date.parse(text)), `${text}: ${parseTime(text)} against ${Date.parse(text)}`);
}

Deno.test("parseTime() gives Date.parse's value for every instant as iso() and toISOString write it", () => {
  fc.assert(
    fc.property(fc.integer({ min: -62_167_219_200_000, max: 253_402_300_799_999 }), (ms) => {
      assert.equal(parseTime(new Date(ms).toISOString()), ms);
      if (ms >= 0) assert.equal(parseTime(iso(ms)), ms);
    }),
    { numRuns: 20_000 },
  );
  for (const text of ["0000-01-01T00:00:00.000Z", "1970-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"]) same(text);
  for (const text of ["2024-02-29T12:00:00.000Z", "2000-02-29T00:00:00.000Z", "1969-12-31T23:59:59.999Z"]) same(text);
});

Deno.test("parseTime() leaves other text to Date.parse: other forms, impossible dates and times, non-digits", () => {
  const texts = [
    "2026-02-29T00:00:00.000Z", // not a leap year
    "1900-02-29T00:00:00.000Z",
    "2026-04-31T00:00:00.000Z",
    "2026-00-10T00:00:00.000Z",
    "2026-13-10T00:00:00.000Z",
    "2026-01-00T00:00:00.000Z",
    "2026-01-32T00:00:00.000Z",
    "2026-01-10T24:00:00.000Z",
    "2026-01-10T23:60:00.000Z",
    "2026-01-10T23:59:60.000Z",
    "2026-01-10t10:00:00.000z",
    "2026-01-10T10:00:00.000+00:00",
    "2026-01-10T10:00:00+01:00",
    "2026-01-10T10:00:00Z",
    "2026-01-10T10:00:00.0000Z",
    "+012026-01-10T10:00:00.000Z",
    "2026-01-1aT10:00:00.000Z",
    "2026-01-10T10:0 :00.000Z",
    "2026-01-10T10:00:00.-12Z",
    "2026-01-10T10:00:00.00/Z",
    "２026-01-10T10:00:00.000Z",
    "2026/01/10T10:00:00.000Z",
    "",
    "not a time at all, 24 ch",
  ];
  for (const text of texts) same(text);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 253_402_300_799_999 }),
      fc.nat({ max: 23 }),
      fc.string({ minLength: 1, maxLength: 1 }),
      (ms, at, char) => {
        const text = new Date(ms).toISOString();
        same(text.slice(0, at) + char + text.slice(at + 1));
      },
    ),
    { numRuns: 20_000 },
  );
});
