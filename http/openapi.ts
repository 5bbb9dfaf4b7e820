/**
 * The OpenAPI 3.1 document, generated from the route table and the zod schemas the routes validate
 * with, so that the published contract cannot drift from what the server accepts and answers.
 * Schemas named with `.meta({ id })` become `components.schemas` entries referenced by `$ref`.
 * Query parameters come from the schema a route validates them with (Route.query).
 */
import { z } from "zod";
import type { QuerySchema } from "./query_params.ts";
import type { Route } from "./router.ts";

/** The OpenAPI version this generator writes. */
export const OPENAPI_VERSION = "3.1.0";

/** A JSON Schema or OpenAPI fragment. */
export type JsonObject = Record<string, unknown>;

/** A body in one media type. */
export interface BodyDoc {
  /** Schema of the whole body: converted as request input (defaults optional) or response output. */
  readonly schema: z.ZodType;
  /** For streamed formats (NDJSON): each item's schema, as `x-itemSchema` (OpenAPI 3.2's `itemSchema`). */
  readonly itemSchema?: z.ZodType;
}

/** One documented response status. */
export interface ResponseDoc {
  readonly description: string;
  readonly content?: Readonly<Record<string, BodyDoc>>;
  readonly headers?: Readonly<Record<string, { readonly description: string; readonly schema: z.ZodType }>>;
}

/** How one route appears in the document; kept next to the route's handler. */
export interface OperationDoc {
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tags?: readonly string[];
  /** Path parameters by name; any parameter of the path not listed here is documented as a string. */
  readonly pathParams?: Readonly<Record<string, { readonly description: string; readonly schema: z.ZodType }>>;
  readonly requestBody?: {
    readonly description?: string;
    readonly required: boolean;
    readonly content: Readonly<Record<string, BodyDoc>>;
  };
  readonly responses: Readonly<Record<number, ResponseDoc>>;
}

/** The document's `info` object. */
export interface ApiInfo {
  readonly title: string;
  readonly version: string;
  readonly description?: string;
}

const COMPONENTS_PREFIX = "#/components/schemas/";
const DEFS_PREFIX = "#/$defs/";
const PATH_PARAM = /:([A-Za-z_][A-Za-z0-9_]*)/g;

/** Builds the document for every route that carries a `doc`. */
export function openApiDocument(routes: readonly Route[], info: ApiInfo): JsonObject {
  const components = new Map<string, JsonObject>();
  const convert = (schema: z.ZodType, io: "input" | "output") => toSchema(schema, io, components);
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const route of routes) {
    if (!route.doc) continue;
    const doc = route.doc;
    const path = route.path.replace(PATH_PARAM, "{$1}");
    const pathParameters = [...route.path.matchAll(PATH_PARAM)].map(([, name]) => {
      const param = doc.pathParams?.[name];
      return {
        name,
        in: "path",
        required: true,
        ...(param ? { description: param.description } : {}),
        schema: param ? convert(param.schema, "input") : { type: "string" },
      };
    });
    const parameters = [...pathParameters, ...queryParameters(route.query, (s) => convert(s, "input"))];
    const operation: JsonObject = {
      operationId: doc.operationId,
      summary: doc.summary,
      ...(doc.description ? { description: doc.description } : {}),
      ...(doc.tags ? { tags: [...doc.tags] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
    };
    if (doc.requestBody) {
      operation.requestBody = {
        ...(doc.requestBody.description ? { description: doc.requestBody.description } : {}),
        required: doc.requestBody.required,
        content: content(doc.requestBody.content, (s) => convert(s, "input")),
      };
    }
    operation.responses = Object.fromEntries(
      Object.entries(doc.responses).map(([status, response]) => [status, {
        description: response.description,
        ...(response.headers
          ? {
            headers: Object.fromEntries(
              Object.entries(response.headers).map(([name, header]) => [
                name,
                { description: header.description, schema: convert(header.schema, "output") },
              ]),
            ),
          }
          : {}),
        ...(response.content ? { content: content(response.content, (s) => convert(s, "output")) } : {}),
      }]),
    );
    paths[path] = { ...paths[path], [route.method.toLowerCase()]: operation };
  }
  addDiscriminatorMappings(components);
  return {
    openapi: OPENAPI_VERSION,
    info: { ...info },
    paths,
    components: { schemas: Object.fromEntries([...components].sort(([a], [b]) => a.localeCompare(b))) },
  };
}

/** One `in: query` parameter per field of the route's query schema; a field's `.describe()` is its description. */
function queryParameters(query: QuerySchema | undefined, convert: (schema: z.ZodType) => JsonObject): JsonObject[] {
  if (!query) return [];
  const required = new Set((z.toJSONSchema(query, { io: "input", unrepresentable: "any" }).required ?? []) as string[]);
  return Object.entries(query.shape).map(([name, field]) => {
    const { description, ...schema } = convert(field as z.ZodType);
    return {
      name,
      in: "query",
      required: required.has(name),
      ...(typeof description === "string" ? { description } : {}),
      schema,
    };
  });
}

function content(
  bodies: Readonly<Record<string, BodyDoc>>,
  convert: (schema: z.ZodType) => JsonObject,
): Record<string, JsonObject> {
  return Object.fromEntries(
    Object.entries(bodies).map(([type, body]) => [type, {
      schema: convert(body.schema),
      ...(body.itemSchema ? { "x-itemSchema": convert(body.itemSchema) } : {}),
    }]),
  );
}

/** Converts one zod schema; named sub-schemas move into `components` and are referenced. */
function toSchema(schema: z.ZodType, io: "input" | "output", components: Map<string, JsonObject>): JsonObject {
  const converted = rewriteRefs(z.toJSONSchema(schema, { io, unrepresentable: "any" })) as JsonObject;
  const { $schema: _dialect, $defs, ...rest } = converted;
  for (const [name, definition] of Object.entries(($defs ?? {}) as Record<string, JsonObject>)) {
    const known = components.get(name);
    if (known && JSON.stringify(known) !== JSON.stringify(definition)) {
      throw new Error(`Cannot generate the OpenAPI document: two different schemas are named '${name}'`);
    }
    components.set(name, definition);
  }
  return rest;
}

/** Points zod's local `#/$defs/X` references at `#/components/schemas/X`. */
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [
      key,
      key === "$ref" && typeof inner === "string" && inner.startsWith(DEFS_PREFIX)
        ? COMPONENTS_PREFIX + inner.slice(DEFS_PREFIX.length)
        : rewriteRefs(inner),
    ]),
  );
}

/** OpenAPI discriminators need a mapping when schema names differ from the tag values; derive it. */
function addDiscriminatorMappings(components: Map<string, JsonObject>): void {
  for (const schema of components.values()) {
    const discriminator = schema.discriminator as { propertyName: string } | undefined;
    if (!discriminator || !Array.isArray(schema.oneOf)) continue;
    const mapping: Record<string, string> = {};
    for (const option of schema.oneOf as JsonObject[]) {
      const ref = typeof option.$ref === "string" ? option.$ref : undefined;
      const target = ref ? components.get(ref.slice(COMPONENTS_PREFIX.length)) : undefined;
      const tag = (target?.properties as Record<string, JsonObject> | undefined)?.[discriminator.propertyName]?.const;
      if (ref && typeof tag === "string") mapping[tag] = ref;
    }
    schema.discriminator = { ...discriminator, mapping };
  }
}
