/** Converts zod issues to field problems with JSON-pointer-like dotted paths. */
import type { z } from "zod";
import type { FieldProblem } from "../engine/errors.ts";

/** One problem per zod issue; `prefix` places them inside a larger document (e.g. a batch index). */
export function zodProblems(error: z.ZodError, prefix: readonly PropertyKey[] = []): FieldProblem[] {
  return error.issues.map((issue) => ({
    path: [...prefix, ...issue.path].map(String).join(".") || "(root)",
    message: issue.message,
  }));
}
