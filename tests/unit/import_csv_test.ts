import assert from "node:assert/strict";
import { CsvError, expectHeader, parseCsv, textChunks } from "../../actors/import/csv.ts";

async function all(chunks: string[]): Promise<string[][]> {
  const out: string[][] = [];
  for await (const record of parseCsv(chunks)) out.push(record);
  return out;
}

Deno.test("parseCsv() handles quotes, doubled quotes, separators and newlines inside quotes, CRLF and blank lines", async () => {
  const text = 'a,b,c\r\n1,"x, y","say ""hi"""\r\n\r\n2,"line\nbreak",\n3,,"" \n4,"end"';
  const expected = [["a", "b", "c"], ["1", "x, y", 'say "hi"'], ["2", "line\nbreak", ""], ["3", "", " "], ["4", "end"]];
  assert.deepEqual(await all([text]), expected);
  // Any chunking gives the same records.
  for (let size = 1; size <= 7; size++) {
    const chunks = [];
    for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
    assert.deepEqual(await all(chunks), expected, `chunks of ${size}`);
  }
});

Deno.test("textChunks() decodes UTF-8 and gunzips", async () => {
  const bytes = new TextEncoder().encode("é,ü\n1,2\n");
  const gz = new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip")));
  const records = [];
  for await (const r of parseCsv(textChunks(gz.body!, { gzip: true }))) records.push(r);
  assert.deepEqual(records, [["é", "ü"], ["1", "2"]]);
});

Deno.test("expectHeader() names the header it got and the one it expected", () => {
  expectHeader(["\uFEFFa", "b "], ["a", "b"], "X");
  assert.throws(() => expectHeader(["a", "c"], ["a", "b"], "X"), /Cannot import X: header is "a,c", expected "a,b"/);
});

Deno.test("expectHeader() quotes a wrong header cut short, escaped, and calls a binary file binary", () => {
  // A file without a line break in its first kilobytes used to be quoted whole, control characters raw.
  const long = ["x\u001b[2J".repeat(1000)];
  assert.throws(() => expectHeader(long, ["a", "b"], "X"), (error: Error) => {
    assert.ok(error.message.length < 500, error.message);
    assert.match(error.message, /^Cannot import X: header is "(x\\u001b\[2J)+…", expected "a,b"$/);
    return true;
  });
  assert.throws(
    () => expectHeader(["PK\u0003\u0004\u0000\uFFFD"], ["a", "b"], "X"),
    /^Error: Cannot import X: it is not CSV text \(a binary file: .*\); header expected "a,b"$/,
  );
});

Deno.test("parseCsv() refuses a quoted field left open at the end of the file, naming the record", async () => {
  // Everything after the quote used to become one field of one record, counted as one bad row.
  const text = 'a,b\n1,2\n3,"open\n4,5\n6,7\n';
  await assert.rejects(
    () => all([text]),
    CsvError,
    "a quoted field is not closed before the end of the file (record 3)",
  );
});
