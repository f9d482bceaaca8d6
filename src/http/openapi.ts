/**
 * The gateway's OpenAPI 3.1 document, generated from the same schemas the gateway decodes with:
 * inputs (body, path and query parameters), outputs, declared errors with their statuses, the
 * problem documents of every other outcome, and the security of each route.
 *
 * Every schema is compiled in one pass by the project's one compiler (`internal/jsonSchema.ts`), so
 * named schemas (classes, `identifier` annotations) become shared `components/schemas` entries and
 * every `$ref` points there.
 */
import { JsonSchema, type Schema } from "effect"
import type { OpenApi } from "effect/http-api"
import * as JsonSchemas from "../internal/jsonSchema.ts"
import { type AuthOptions, bearerScheme, SECURITY_SCHEME_NAME } from "./auth.ts"
import { type Kind, kinds, Problem } from "./problem.ts"
import { type PlannedRoute, RESERVED_PATHS } from "./routes.ts"

/** Document-level information. */
export interface OpenApiInfo {
  /** Default `"Herald gateway"`. */
  readonly title?: string | undefined
  /** The API's version. Default `"1"`. */
  readonly version?: string | undefined
  readonly description?: string | undefined
}

/** The operation id of a route: `<service>.v<version>.<command>`. */
export const operationId = (route: PlannedRoute): string =>
  `${route.service.name}.v${route.service.version}.${route.command.name}`

const edgeHeaders: Record<string, OpenApi.OpenAPISpecHeader> = {
  "x-correlation-id": {
    required: true,
    description: "The request's correlation id: the one it sent (`x-correlation-id` or `correlation-id`), or a new one",
    schema: { type: "string" }
  },
  traceparent: {
    required: true,
    description: "W3C trace context of the gateway's span for this request (same trace id as the request's traceparent)",
    schema: { type: "string", pattern: "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$" }
  }
}

const json = (schema: JsonSchema.JsonSchema): OpenApi.OpenApiSpecContent => ({ "application/json": { schema } })

/** Collects schemas, compiles them together, and hands back each one's JSON Schema (OpenAPI 3.1 refs). */
const compileAll = (schemas: ReadonlyArray<Schema.Top>) => {
  const document = JsonSchemas.compile(schemas)
  return document === undefined ? { schemas: [], definitions: {} } : JsonSchema.toMultiDocumentOpenApi3_1(document)
}

/** What the document is generated from. */
export interface DocumentOptions {
  readonly routes: ReadonlyArray<PlannedRoute>
  readonly auth?: AuthOptions<unknown> | undefined
  readonly info?: OpenApiInfo | undefined
  /** Whether the gateway serves `GET /metrics` (default true). */
  readonly metrics?: boolean | undefined
}

/** The gateway's OpenAPI 3.1 document. */
export const document = (options: DocumentOptions): OpenApi.OpenAPISpec => {
  const { auth, routes } = options
  // 1. every schema, in one compilation: JSON codecs, so the document describes what crosses the wire
  const roots: Array<Schema.Top> = []
  const slot = (schema: Schema.Top): number => roots.push(schema) - 1
  const problemSlot = slot(Problem)
  const slots = routes.map((route) => ({
    input: slot(route.command.input),
    body: route.bodySchema === undefined ? undefined : slot(route.bodySchema),
    output: slot(route.command.output),
    errors: route.errors.map((e) => ({ ...e, slot: slot(e.schema) }))
  }))
  const compiled = compileAll(roots)
  const at = (i: number): JsonSchema.JsonSchema => compiled.schemas[i] as JsonSchema.JsonSchema
  const resolve = (schema: JsonSchema.JsonSchema): JsonSchema.JsonSchema => {
    const ref = schema.$ref
    if (typeof ref !== "string" || !ref.startsWith("#/components/schemas/")) return schema
    return (compiled.definitions as Record<string, JsonSchema.JsonSchema>)[ref.slice(21)] ?? schema
  }
  const problem = (kind: Kind, extra = ""): OpenApi.OpenApiSpecResponse => ({
    description: `${kinds[kind].title}${extra} (problem document, type urn:herald:problem:${kind})`,
    headers: edgeHeaders,
    content: { "application/problem+json": { schema: at(problemSlot) } }
  })

  // 2. paths
  const paths: OpenApi.OpenAPISpecPaths = {}
  const security: OpenApi.OpenAPISecurityRequirement = { [SECURITY_SCHEME_NAME]: [] }
  routes.forEach((route, i) => {
    const s = slots[i]!
    const input = resolve(at(s.input))
    const properties = (input.properties ?? {}) as Record<string, JsonSchema.JsonSchema>
    const required = new Set(Array.isArray(input.required) ? input.required as ReadonlyArray<string> : [])
    const parameters: Array<OpenApi.OpenAPISpecParameter> = [
      ...route.pathParams.map((name): OpenApi.OpenAPISpecParameter => ({
        name,
        in: "path",
        required: true,
        schema: properties[name] ?? {}
      })),
      ...(route.hasBody ? [] : Object.entries(properties)
        .filter(([name]) => !route.pathParams.includes(name))
        .map(([name, schema]): OpenApi.OpenAPISpecParameter => ({ name, in: "query", required: required.has(name), schema })))
    ]
    const responses: OpenApi.OpenAPISpecResponses = {
      [route.status]: { description: "The command's output", headers: edgeHeaders, content: json(at(s.output)) }
    }
    const byStatus = new Map<number, Array<(typeof s.errors)[number]>>()
    for (const e of s.errors) byStatus.set(e.status, [...(byStatus.get(e.status) ?? []), e])
    for (const [status, errors] of byStatus) {
      const schemas = errors.map((e) => at(e.slot))
      responses[status] = {
        description: `Declared error${errors.length > 1 ? "s" : ""}: ${errors.map((e) => e.tag).join(", ")}`,
        headers: edgeHeaders,
        content: json(schemas.length === 1 ? schemas[0]! : { anyOf: schemas })
      }
    }
    const add = (kind: Kind, extra?: string) => {
      responses[kinds[kind].status] ??= problem(kind, extra)
    }
    add(route.hasBody ? "invalid-json" : "invalid-input", route.hasBody ? ", or the input does not match the command's schema" : undefined)
    if (auth !== undefined && !route.isPublic) add("unauthorized")
    if (route.hasBody) add("body-too-large")
    add("internal-error")
    add("invalid-reply")
    add("no-responder", ", or the bridge is unavailable")
    add("timeout")
    const operation: OpenApi.OpenAPISpecOperation = {
      operationId: operationId(route),
      tags: [route.service.name],
      parameters,
      responses,
      security: auth === undefined || route.isPublic ? [] : [security],
      ...(route.summary === undefined ? { summary: `${route.service.name}.${route.command.name}` } : { summary: route.summary }),
      ...(route.description === undefined ? {} : { description: route.description }),
      ...(s.body === undefined ? {} : { requestBody: { required: true, content: json(at(s.body)) } })
    }
    const item = paths[route.openApiPath] ??= {}
    item[route.method.toLowerCase() as OpenApi.OpenAPISpecMethodName] = operation
  })

  // 3. the gateway's own routes
  const plain = (description: string, status: number, schema: JsonSchema.JsonSchema): OpenApi.OpenAPISpecOperation => ({
    operationId: description.split(" ")[0]!,
    tags: ["gateway"],
    parameters: [],
    security: [],
    responses: { [status]: { description, headers: edgeHeaders, content: json(schema) } }
  })
  const status = { type: "object", properties: { status: { type: "string" } }, required: ["status"] }
  const [healthz, readyz, openapi, metrics] = RESERVED_PATHS
  paths[healthz!] = { get: plain("healthz: the process is up", 200, status) }
  const ready = plain("readyz: bridge connected, routes registered, not draining", 200, status)
  ready.responses[503] = problem("not-ready", " (starting, draining, or the bridge is not connected)")
  paths[readyz!] = { get: ready }
  paths[openapi!] = { get: plain("openapi: this document", 200, { type: "object" }) }
  if (options.metrics !== false) {
    const description = "metrics: every metric of this process in the Prometheus text exposition format (version 0.0.4)"
    paths[metrics!] = {
      get: {
        ...plain(description, 200, { type: "string" }),
        responses: {
          200: { description, headers: edgeHeaders, content: { "text/plain; version=0.0.4": { schema: { type: "string" } } } }
        }
      }
    }
  }

  return {
    openapi: "3.1.0",
    info: {
      title: options.info?.title ?? "Herald gateway",
      version: options.info?.version ?? "1",
      ...(options.info?.description === undefined ? {} : { description: options.info.description })
    },
    paths,
    components: {
      schemas: compiled.definitions,
      securitySchemes: auth === undefined ? {} : { [SECURITY_SCHEME_NAME]: auth.scheme ?? bearerScheme }
    },
    security: [],
    tags: [
      ...[...new Set(routes.map((r) => r.service.name))].map((name) => ({ name })),
      { name: "gateway", description: "Health, readiness and this document" }
    ]
  }
}
