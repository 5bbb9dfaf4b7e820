/**
 * Query parameters of a route: one zod object both validates them (a 400 naming every bad one) and
 * documents them in the OpenAPI document, so the published parameters cannot drift from the accepted ones.
 * The query string as a whole is checked here too, the same way for every route: a parameter the route
 * does not declare, a parameter given more than once, and a number not written in plain decimal digits
 * (`0x10`, `1e1`, ` 5`, which `Number()` would accept) are each a 400 as well; its problems are listed up to
 * MAX_LISTED_PROBLEMS, as ingestion's.
 */
import { z } from "zod";
import { upperCaseTime } from "../actors/events.ts";
import { type FieldProblem, MAX_LISTED_PROBLEMS, ValidationError } from "../engine/errors.ts";
import type { Route, RouteHandler } from "./router.ts";

/** A route's query parameters: one field per parameter; `.describe()` becomes its documentation. */
export type QuerySchema = z.ZodObject;

/** A handler that receives its validated query parameters. */
export type QueryHandler<S extends QuerySchema> = (
  request: Request,
  params: Record<string, string>,
  query: z.output<S>,
) => Response | Promise<Response>;

/** `errors[].path` of a problem with the query string as a whole (an undeclared parameter). */
export const QUERY_PATH = "query";

/** How a parameter documented as an integer, or as a number, must be written. */
const NUMERALS: Readonly<Record<string, { readonly pattern: RegExp; readonly message: string }>> = {
  integer: { pattern: /^-?[0-9]+$/, message: "must be an integer written in decimal digits (0-9)" },
  number: { pattern: /^-?[0-9]+(\.[0-9]+)?$/, message: "must be a number written in decimal digits (0-9, one '.')" },
};

/** Per schema: the numeral rule of each parameter whose documented type is a number (memoised). */
const numeralRules = new WeakMap<QuerySchema, ReadonlyMap<string, (typeof NUMERALS)[string]>>();

function numeralRulesOf(schema: QuerySchema): ReadonlyMap<string, (typeof NUMERALS)[string]> {
  let rules = numeralRules.get(schema);
  if (!rules) {
    const found = new Map<string, (typeof NUMERALS)[string]>();
    for (const [name, field] of Object.entries(schema.shape)) {
      const type = z.toJSONSchema(field as z.ZodType, { io: "input", unrepresentable: "any" }).type;
      if (typeof type === "string" && NUMERALS[type]) found.set(name, NUMERALS[type]);
    }
    rules = found;
    numeralRules.set(schema, rules);
  }
  return rules;
}

/** Per schema: the parameters documented as RFC 3339 times (memoised), whose lower-case `t`/`z` RFC 3339 allows. */
const timeParams = new WeakMap<QuerySchema, ReadonlySet<string>>();

function timeParamsOf(schema: QuerySchema): ReadonlySet<string> {
  let names = timeParams.get(schema);
  if (!names) {
    names = new Set(
      Object.entries(schema.shape)
        .filter(([, field]) =>
          z.toJSONSchema(field as z.ZodType, { io: "input", unrepresentable: "any" }).format === "date-time"
        )
        .map(([name]) => name),
    );
    timeParams.set(schema, names);
  }
  return names;
}

/**
 * Validates the query parameters of `request` against `schema`; throws one ValidationError listing
 * every problem: undeclared parameters (path `query`, naming each and the accepted ones), parameters
 * given more than once, numbers not in plain decimal digits, and whatever the schema refuses.
 */
export function parseQuery<S extends QuerySchema>(schema: S, request: Request): z.output<S> {
  const params = new URL(request.url).searchParams;
  const accepted = Object.keys(schema.shape);
  const numerals = numeralRulesOf(schema);
  const times = timeParamsOf(schema);
  const problems: FieldProblem[] = [];
  const unknown: string[] = [];
  const input: Record<string, string> = {};
  for (const name of new Set(params.keys())) {
    if (!Object.hasOwn(schema.shape, name)) {
      unknown.push(name);
      continue;
    }
    const values = params.getAll(name).map((value) => times.has(name) ? upperCaseTime(value) : value);
    const numeral = numerals.get(name);
    if (values.length > 1) {
      problems.push({ path: name, message: `given ${values.length} times; give it at most once` });
    } else if (numeral && !numeral.pattern.test(values[0])) {
      problems.push({ path: name, message: numeral.message });
    } else {
      input[name] = values[0];
    }
  }
  const parsed = schema.safeParse(input);
  const reported = new Set(problems.map((p) => p.path));
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.map(String).join(".") || QUERY_PATH;
      if (!reported.has(path)) problems.push({ path, message: issue.message });
    }
  }
  const acceptedText = accepted.length > 0 ? `accepted: ${accepted.join(", ")}` : "this route takes no parameters";
  for (const name of unknown) {
    problems.push({ path: QUERY_PATH, message: `unknown parameter '${name}' (${acceptedText})` });
  }
  if (parsed.success && problems.length === 0) return parsed.data;
  const invalid = [...new Set(problems.filter((p) => p.path !== QUERY_PATH).map((p) => p.path))];
  // A query string of thousands of names made an answer ten times its size: listed as far as ingestion lists.
  const listed = problems.slice(0, MAX_LISTED_PROBLEMS);
  const named = unknown.slice(0, Math.max(0, MAX_LISTED_PROBLEMS - (problems.length - unknown.length)));
  const cut = listed.length < problems.length
    ? [`${unknown.length} unknown parameters; only the first ${MAX_LISTED_PROBLEMS} problems are listed`]
    : [];
  const parts = [
    ...(invalid.length > 0 ? [`invalid parameter(s) ${invalid.join(", ")}`] : []),
    ...(unknown.length > 0
      ? [`unknown parameter(s) ${named.map((n) => `'${n}'`).join(", ")} (${acceptedText})`, ...cut]
      : []),
  ];
  throw new ValidationError(`Cannot answer the query: ${parts.join("; ") || "invalid query string"}`, listed);
}

/** The query of a route that takes no parameters: any given is refused, naming it. */
export const NO_QUERY = z.object({});

/** A route row whose handler only ever sees query parameters validated by the schema it documents. */
export function routeWithQuery<S extends QuerySchema>(
  row: Omit<Route, "handler" | "query"> & { readonly query: S; readonly handler: QueryHandler<S> },
): Route {
  const handler: RouteHandler = (request, params) => row.handler(request, params, parseQuery(row.query, request));
  return { ...row, handler };
}
