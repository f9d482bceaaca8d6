/** The gateway's OpenAPI 3.1 document: valid against the official schema, and derived from the contracts' schemas. */
import { Validator } from "@seriousme/openapi-schema-validator"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as HttpGateway from "../../src/http/HttpGateway.ts"
import { Add, Overflow } from "../fixtures.ts"
import { Conflict, GatewayLive, gatewayOptions, Gone, Item, RenameItem } from "./fixtures.ts"

const spec = HttpGateway.openApi(gatewayOptions)
/** Validates a copy: the validator resolves `$ref`s in place. */
const validate = (document: unknown) =>
  Effect.promise(() => new Validator().validate(structuredClone(document) as Record<string, unknown>))

/** The draft 2020-12 JSON Schema of a schema, with `$defs` references pointing at `components/schemas`. */
const jsonSchemaOf = (schema: Schema.Top) => {
  const { definitions, schema: root } = Schema.toJsonSchemaDocument(schema)
  const text = JSON.stringify(root).replaceAll("#/$defs/", "#/components/schemas/")
  return { root: JSON.parse(text), definitions }
}

describe("OpenAPI document", () => {
  it.effect("is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator), and every $ref resolves", () =>
    Effect.gen(function*() {
      assert.strictEqual(spec.openapi, "3.1.0")
      const result = yield* validate(spec)
      assert.isTrue(result.valid, JSON.stringify(result.errors, null, 2))
      const validator = new Validator()
      yield* Effect.promise(() => validator.validate(structuredClone(spec) as unknown as Record<string, unknown>))
      assert.doesNotThrow(() => validator.resolveRefs())
      const refs = [...JSON.stringify(spec).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!)
      assert.isNotEmpty(refs)
      for (const ref of refs) {
        assert.match(ref, /^#\/components\/schemas\//)
        assert.property(spec.components.schemas, ref.slice("#/components/schemas/".length))
      }
    }))

  it.effect("the validator is real: a broken document is rejected", () =>
    Effect.gen(function*() {
      const { info: _, ...noInfo } = spec
      assert.isFalse((yield* validate(noInfo)).valid)
      const badStatus = structuredClone(spec) as any
      badStatus.paths["/api/calculator/v1/add"].post.responses = { 200: { content: {} } } // no description
      assert.isFalse((yield* validate(badStatus)).valid)
    }))

  it("a default route: body, output and declared error from the command's schemas", () => {
    const add = spec.paths["/api/calculator/v1/add"]!.post!
    assert.strictEqual(add.operationId, "calculator.v1.add")
    assert.deepStrictEqual(add.tags, ["calculator"])
    assert.deepStrictEqual(add.requestBody!.content["application/json"]!.schema, jsonSchemaOf(Add.input).root)
    assert.deepStrictEqual(add.responses[200]!.content!["application/json"]!.schema, jsonSchemaOf(Add.output).root)
    const overflow = jsonSchemaOf(Overflow)
    assert.deepStrictEqual(add.responses[422]!.content!["application/json"]!.schema, overflow.root)
    for (const [name, definition] of Object.entries(overflow.definitions)) {
      assert.deepStrictEqual(spec.components.schemas[name], definition)
    }
    assert.includeMembers(Object.keys(add.responses), ["200", "400", "401", "413", "422", "500", "502", "503", "504"])
    assert.deepStrictEqual(add.responses[400]!.content!["application/problem+json"]!.schema, {
      $ref: "#/components/schemas/Problem"
    })
    assert.deepStrictEqual(Object.keys(add.responses[200]!.headers ?? {}), ["x-correlation-id", "traceparent"])
  })

  it("a GET route: path and query parameters from the input's fields; statuses of declared errors", () => {
    const get = spec.paths["/api/items/{id}"]!.get!
    assert.isUndefined(get.requestBody)
    assert.deepStrictEqual(get.parameters.map((p) => [p.name, p.in, p.required]), [
      ["id", "path", true],
      ["verbose", "query", false]
    ])
    assert.deepStrictEqual(get.parameters[0]!.schema, { type: "integer", maximum: 9007199254740991, exclusiveMinimum: 0 })
    assert.deepStrictEqual(get.responses[200]!.content!["application/json"]!.schema, jsonSchemaOf(Item).root)
    assert.deepStrictEqual(get.responses[409]!.content!["application/json"]!.schema, jsonSchemaOf(Conflict).root)
    assert.deepStrictEqual(get.responses[410]!.content!["application/json"]!.schema, jsonSchemaOf(Gone).root)
    assert.notProperty(get.responses, "413")
    assert.notProperty(get.responses, "422")
  })

  it("a PUT route with a path parameter: the body schema is the input without it", () => {
    const put = spec.paths["/api/items/{id}"]!.put!
    assert.deepStrictEqual(put.parameters.map((p) => p.name), ["id"])
    const body = put.requestBody!.content["application/json"]!.schema
    assert.deepStrictEqual(body, jsonSchemaOf(Schema.Struct({ name: RenameItem.input.fields.name })).root)
  })

  it("security: protected by default, public routes open; the gateway's own routes are listed", () => {
    assert.deepStrictEqual(spec.components.securitySchemes, { heraldAuth: { type: "http", scheme: "bearer" } })
    assert.deepStrictEqual(spec.paths["/api/calculator/v1/add"]!.post!.security, [{ heraldAuth: [] }])
    const ping = spec.paths["/api/ping"]!.post!
    assert.deepStrictEqual(ping.security, [])
    assert.notProperty(ping.responses, "401")
    for (const path of ["/healthz", "/readyz", "/openapi.json"]) assert.deepStrictEqual(spec.paths[path]!.get!.security, [])
    assert.property(spec.paths["/readyz"]!.get!.responses, "503")
  })

  it("without auth there is no security scheme", () => {
    const { auth: _, ...open } = gatewayOptions
    const document = HttpGateway.openApi(open)
    assert.deepStrictEqual(document.components.securitySchemes, {})
    assert.deepStrictEqual(document.paths["/api/calculator/v1/add"]!.post!.security, [])
  })
})

layer(GatewayLive, { excludeTestServices: true })("GET /openapi.json", (it) => {
  it.effect("serves the same document", () =>
    Effect.gen(function*() {
      const { openapi, url } = yield* HttpGateway.Gateway
      const served = yield* Effect.promise(() => fetch(`${url}/openapi.json`).then((r) => r.json()))
      assert.deepStrictEqual(served, JSON.parse(JSON.stringify(openapi)))
      assert.deepStrictEqual(served, JSON.parse(JSON.stringify(spec)))
      assert.isTrue((yield* validate(served)).valid)
    }))
})
