/** Converts zod issues to field problems with JSON-pointer-like dotted paths. */
import type { z } from "zod";
import type { FieldProblem } from "../engine/errors.ts";

/**
 * One problem per zod issue; `prefix` places them inside a larger document (e.g. a batch index). Given the `input`
 * that failed, a missing field whose name the object has in another case says so (`productid` for `productId`).
 */
export function zodProblems(error: z.ZodError, prefix: readonly PropertyKey[] = [], input?: unknown): FieldProblem[] {
  return error.issues.map((issue) => ({
    path: [...prefix, ...issue.path].map(String).join(".") || "(root)",
    message: issue.message + (input === undefined ? "" : caseHint(input, issue.path)),
  }));
}

/** `(the object has "userid": names are case-sensitive)` when the field at `path` is missing but a key differs in case only. */
function caseHint(input: unknown, path: readonly PropertyKey[]): string {
  if (path.length === 0) return "";
  let parent = input;
  for (const key of path.slice(0, -1)) {
    if (parent === null || typeof parent !== "object") return "";
    parent = (parent as Record<PropertyKey, unknown>)[key];
  }
  if (parent === null || typeof parent !== "object" || Array.isArray(parent)) return "";
  const name = path[path.length - 1];
  if (typeof name !== "string" || Object.hasOwn(parent, name)) return "";
  const lower = name.toLowerCase();
  const found = Object.keys(parent).find((key) => key.toLowerCase() === lower);
  return found === undefined ? "" : ` (the object has ${JSON.stringify(found)}: names are case-sensitive)`;
}
