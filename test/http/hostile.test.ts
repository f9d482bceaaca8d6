/**
 * Hostile requests to the HTTP gateway: arbitrary bodies, paths, query strings and headers never
 * cause a 5xx (the gateway's parsing of body, path and query rejects them as problems), and nothing a
 * caller sends can replace the principal and tenant that authentication established.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import * as HttpGateway from "../../src/http/HttpGateway.ts"
import { GatewayLive } from "./fixtures.ts"

interface Reply {
  readonly status: number
  readonly contentType: string | null
  readonly text: string
}

const send = (url: string, path: string, init: RequestInit): Promise<Reply> =>
  fetch(`${url}${path}`, init).then(async (response) => ({
    status: response.status,
    contentType: response.headers.get("content-type"),
    text: await response.text()
  }))

const hostileText = fc.oneof(
  fc.string({ maxLength: 64 }),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.constantFrom("", "{", "[]", "null", "{\"__proto__\":{\"polluted\":1}}", "{\"constructor\":{\"prototype\":{\"x\":1}}}"),
  fc.integer({ min: 1, max: 2_000 }).map((n) => "[".repeat(n) + "]".repeat(n)),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString("latin1"))
)

const pathSegment = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom("..", "%2e%2e", "%00", "%", "%zz", "7", "-1", "1e9", "__proto__", "constructor", "a/b", "😀")
)

const route = fc.oneof(
  pathSegment.map((s) => `/api/items/${encodeURI(s).replaceAll("?", "%3F").replaceAll("#", "%23")}`),
  fc.tuple(pathSegment, hostileText).map(([id, q]) => `/api/items/${encodeURIComponent(id)}?verbose=${encodeURIComponent(q)}`),
  fc.constantFrom("/api/items/v2/whoami", "/api/calculator/v1/add", "/api/items/v2/get-item")
)

layer(GatewayLive, { excludeTestServices: true })("HttpGateway: hostile requests", (it) => {
  it.effect("arbitrary bodies, paths and query strings get a 2xx/4xx answer, never a 5xx", () =>
    Effect.gen(function*() {
      const { url } = yield* HttpGateway.Gateway
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(route, fc.constantFrom("GET", "POST", "PUT"), hostileText, async (path, method, body) => {
            const reply = await send(url, path, {
              method,
              headers: { authorization: "Bearer alice-token", "content-type": "application/json" },
              ...(method === "GET" ? {} : { body })
            })
            assert.isBelow(reply.status, 500, `${method} ${path} ${JSON.stringify(body)} → ${reply.status} ${reply.text}`)
            if (reply.status >= 400) assert.strictEqual(reply.contentType, "application/problem+json")
            assert.isUndefined(({} as Record<string, unknown>).polluted)
          }),
          { numRuns: 300 }
        )
      )
    }), 60_000)

  it.effect("no payload field or header overrides the principal and tenant set by authentication", () =>
    Effect.gen(function*() {
      const { url } = yield* HttpGateway.Gateway
      const headerName = fc.oneof(
        fc.constantFrom(
          "x-principal-id", "x-tenant-id", "principalid", "tenantid", "x-herald-principal", "x-herald-tenant",
          "ce-principalid", "ce-tenantid", "x-forwarded-user", "forwarded", "traceparent", "x-correlation-id"
        ),
        fc.stringMatching(/^x-[a-z-]{1,16}$/)
      )
      const headerValue = fc.stringMatching(/^[ -~]{0,24}$/).map((s) => s.trim())
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.dictionary(headerName, headerValue, { maxKeys: 5 }),
            fc.record({ principalId: fc.string({ maxLength: 8 }), tenantId: fc.string({ maxLength: 8 }) }, { requiredKeys: [] }),
            async (headers, payload) => {
              const reply = await send(url, "/api/items/v2/whoami", {
                method: "POST",
                headers: { ...headers, authorization: "Bearer bob-token", "content-type": "application/json" },
                body: JSON.stringify(payload)
              })
              if (reply.status !== 200) {
                // a malformed correlation or trace header may be refused; never answered as someone else
                assert.isBelow(reply.status, 500, reply.text)
                return
              }
              const body = JSON.parse(reply.text) as { principalId: string; tenantId: string }
              assert.strictEqual(body.principalId, "bob")
              assert.strictEqual(body.tenantId, "globex")
            }
          ),
          { numRuns: 200 }
        )
      )
    }), 60_000)
})
