/** Ids with unusual characters, for tests that post them and ask for them over HTTP. */

/** Ids a storefront may well send, each a key of its own. */
export const ODD_IDS: readonly string[] = [
  "with space",
  "100%",
  "a/b",
  "what?",
  "#hash",
  "a+b",
  "caf\u00e9", // NFC
  "cafe\u0301", // NFD: the same text to a reader, another key to the engine
  "Bob",
  "bob",
  "ユーザー😀",
  "x".repeat(128),
  "\u{1F600}".repeat(128), // 128 characters, 256 UTF-16 code units
  "__proto__",
  "constructor",
];
