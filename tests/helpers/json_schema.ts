/**
 * A JSON Schema (2020-12) checker for the keywords the served OpenAPI document uses, so that tests check real answers
 * against /openapi.json itself rather than the zod schemas it is generated from. A keyword it does not know fails the
 * check, so a schema it cannot judge is never passed silently.
 */

/** A schema of the document, or `true`/`false`. */
export type JsonSchema = boolean | Record<string, unknown>;

/** Keywords that document and do not constrain. */
const ANNOTATIONS = new Set([
  "description",
  "title",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "id",
  "discriminator",
]);

/** RFC 3339 date-time, as `format: date-time` means it. */
const DATE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i;

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function typeMatches(value: unknown, type: string): boolean {
  const actual = typeOf(value);
  return actual === type || (type === "number" && actual === "integer");
}

/**
 * Every way `value` breaks `schema` (empty when it conforms), each as `path: problem`; `$ref`s resolve against
 * `root` (the OpenAPI document, `#/components/schemas/…`).
 */
export function schemaProblems(value: unknown, schema: JsonSchema, root: unknown, path = "$"): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: no value is allowed here`];
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(`${path}: ${what}`);
  };
  for (const [keyword, rule] of Object.entries(schema)) {
    if (ANNOTATIONS.has(keyword)) continue;
    switch (keyword) {
      case "$ref": {
        const target = String(rule).replace(/^#\//, "").split("/").reduce<unknown>(
          (node, part) => (node as Record<string, unknown>)?.[part],
          root,
        );
        if (target === undefined) problems.push(`${path}: $ref ${rule} does not resolve`);
        else problems.push(...schemaProblems(value, target as JsonSchema, root, path));
        break;
      }
      case "type": {
        const types = Array.isArray(rule) ? rule as string[] : [rule as string];
        check(types.some((t) => typeMatches(value, t)), `is ${typeOf(value)}, not ${types.join(" or ")}`);
        break;
      }
      case "const":
        check(
          JSON.stringify(value) === JSON.stringify(rule),
          `is ${JSON.stringify(value)}, not ${JSON.stringify(rule)}`,
        );
        break;
      case "enum":
        check(
          (rule as unknown[]).some((v) => JSON.stringify(v) === JSON.stringify(value)),
          `${JSON.stringify(value)} is not one of ${JSON.stringify(rule)}`,
        );
        break;
      case "anyOf":
      case "oneOf": {
        const passing = (rule as JsonSchema[]).filter((s) => schemaProblems(value, s, root, path).length === 0).length;
        check(keyword === "anyOf" ? passing > 0 : passing === 1, `matches ${passing} of the ${keyword} schemas`);
        break;
      }
      case "allOf":
        for (const s of rule as JsonSchema[]) problems.push(...schemaProblems(value, s, root, path));
        break;
      case "properties":
        if (typeOf(value) !== "object") break;
        for (const [name, s] of Object.entries(rule as Record<string, JsonSchema>)) {
          if (Object.hasOwn(value as object, name)) {
            problems.push(...schemaProblems((value as Record<string, unknown>)[name], s, root, `${path}.${name}`));
          }
        }
        break;
      case "required":
        if (typeOf(value) !== "object") break;
        for (const name of rule as string[]) check(Object.hasOwn(value as object, name), `lacks required ${name}`);
        break;
      case "additionalProperties": {
        if (typeOf(value) !== "object") break;
        const declared = (schema.properties ?? {}) as Record<string, unknown>;
        for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
          if (Object.hasOwn(declared, name)) continue;
          if (rule === false) problems.push(`${path}: has undocumented ${name}`);
          else problems.push(...schemaProblems(v, rule as JsonSchema, root, `${path}.${name}`));
        }
        break;
      }
      case "propertyNames":
        if (typeOf(value) !== "object") break;
        for (const name of Object.keys(value as object)) {
          problems.push(...schemaProblems(name, rule as JsonSchema, root, `${path}[key ${name}]`));
        }
        break;
      case "items":
        if (!Array.isArray(value)) break;
        value.forEach((v, i) => problems.push(...schemaProblems(v, rule as JsonSchema, root, `${path}[${i}]`)));
        break;
      case "minItems":
      case "maxItems":
        if (!Array.isArray(value)) break;
        check(
          keyword === "minItems" ? value.length >= Number(rule) : value.length <= Number(rule),
          `${keyword} ${rule}`,
        );
        break;
      case "minLength":
      case "maxLength":
        if (typeof value !== "string") break;
        check(
          keyword === "minLength" ? [...value].length >= Number(rule) : [...value].length <= Number(rule),
          `${keyword} ${rule}`,
        );
        break;
      case "minimum":
      case "maximum":
      case "exclusiveMinimum":
      case "exclusiveMaximum": {
        if (typeof value !== "number") break;
        const bound = Number(rule);
        const ok = keyword === "minimum"
          ? value >= bound
          : keyword === "maximum"
          ? value <= bound
          : keyword === "exclusiveMinimum"
          ? value > bound
          : value < bound;
        check(ok, `${value} breaks ${keyword} ${bound}`);
        break;
      }
      case "pattern":
        if (typeof value !== "string") break;
        check(new RegExp(String(rule), "u").test(value), `${JSON.stringify(value)} does not match ${rule}`);
        break;
      case "format":
        if (typeof value !== "string" || rule !== "date-time") break;
        check(DATE_TIME.test(value), `${JSON.stringify(value)} is not an RFC 3339 date-time`);
        break;
      default:
        problems.push(`${path}: the checker does not know keyword ${keyword}`);
    }
  }
  return problems;
}
