/** The HTTP gateway over real HTTP: one running gateway, real `fetch` requests, every status code. */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, References } from "effect"
import { DefinitionError } from "../../src/index.ts"
import * as HttpGateway from "../../src/http/HttpGateway.ts"
import { Add } from "../fixtures.ts"
import { GatewayLive, gatewayOptions, GetItem, Items } from "./fixtures.ts"

/** A response, read whole. */
export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly body: any
  readonly text: string
}

const request = (path: string, init: RequestInit & { readonly token?: string } = {}) =>
  Effect.flatMap(HttpGateway.Gateway, ({ url }) =>
    Effect.promise(async (): Promise<Reply> => {
      const headers = new Headers(init.headers)
      if (init.token !== undefined) headers.set("authorization", `Bearer ${init.token}`)
      if (typeof init.body === "string") headers.set("content-type", "application/json")
      const response = await fetch(`${url}${path}`, { ...init, headers })
      const text = await response.text()
      let body: unknown = undefined
      try {
        body = JSON.parse(text)
      } catch {}
      return { status: response.status, headers: response.headers, body, text }
    }))

const post = (path: string, body: unknown, init: RequestInit & { readonly token?: string } = {}) =>
  request(path, { method: "POST", body: JSON.stringify(body), token: "alice-token", ...init })

const isProblem = (reply: Reply, status: number, kind: string) => {
  assert.strictEqual(reply.status, status, reply.text)
  assert.strictEqual(reply.headers.get("content-type"), "application/problem+json")
  assert.strictEqual(reply.body.type, `urn:herald:problem:${kind}`)
  assert.strictEqual(reply.body.status, status)
  assert.isString(reply.body.title)
  assert.strictEqual(reply.body.correlationId, reply.headers.get("x-correlation-id"))
  assert.match(reply.body.traceId, /^[0-9a-f]{32}$/)
}

const quiet = Effect.provideService(References.MinimumLogLevel, "None")

layer(GatewayLive, { excludeTestServices: true })("HttpGateway", (it) => {
  describe("success", () => {
    it.effect("200 with the encoded output (default route POST /<base>/<service>/v<version>/<command>)", () =>
      Effect.gen(function*() {
        const reply = yield* post("/api/calculator/v1/add", { a: 1, b: 2 })
        assert.strictEqual(reply.status, 200)
        assert.strictEqual(reply.headers.get("content-type"), "application/json")
        assert.deepStrictEqual(reply.body, { sum: 3 })
      }))

    it.effect("GET route: path and query parameters decoded through the input schema", () =>
      Effect.gen(function*() {
        const reply = yield* request("/api/items/7?verbose=true", { token: "alice-token" })
        assert.strictEqual(reply.status, 200, reply.text)
        assert.deepStrictEqual(reply.body, { id: 7, name: "item 7", verbose: true })
        const plain = yield* request("/api/items/8", { token: "alice-token" })
        assert.deepStrictEqual(plain.body, { id: 8, name: "item 8", verbose: false })
      }))

    it.effect("PUT route: path parameter merged into the JSON body (the path wins)", () =>
      Effect.gen(function*() {
        const reply = yield* request("/api/items/5", {
          method: "PUT",
          body: JSON.stringify({ id: 999, name: "renamed" }),
          token: "alice-token"
        })
        assert.strictEqual(reply.status, 200, reply.text)
        assert.deepStrictEqual(reply.body, { id: 5, name: "renamed", verbose: false })
      }))

    it.effect("an empty body is an empty object", () =>
      Effect.gen(function*() {
        const reply = yield* request("/api/ping", { method: "POST" })
        assert.strictEqual(reply.status, 200, reply.text)
        assert.deepStrictEqual(reply.body, { pong: true })
      }))
  })

  describe("headers", () => {
    it.effect("correlation id and traceparent are read from the request and returned", () =>
      Effect.gen(function*() {
        const traceId = "0af7651916cd43dd8448eb211c80319c"
        const reply = yield* post("/api/items/v2/whoami", {}, {
          headers: {
            "x-correlation-id": "order-42",
            traceparent: `00-${traceId}-b7ad6b7169203331-01`,
            tracestate: "vendor=abc"
          }
        })
        assert.strictEqual(reply.status, 200, reply.text)
        assert.strictEqual(reply.headers.get("x-correlation-id"), "order-42")
        const traceparent = reply.headers.get("traceparent")!
        // the gateway's span: same trace, a new span id
        assert.match(traceparent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`))
        assert.notStrictEqual(traceparent, `00-${traceId}-b7ad6b7169203331-01`)
        assert.strictEqual(reply.headers.get("tracestate"), "vendor=abc")
        // ... and they reached the handler through the envelope
        assert.strictEqual(reply.body.correlationId, "order-42")
        assert.strictEqual(reply.body.traceparent, traceparent)
        assert.strictEqual(reply.body.tracestate, "vendor=abc")
      }))

    it.effect("`correlation-id` is accepted too; without one the gateway makes one; every response carries both", () =>
      Effect.gen(function*() {
        const alt = yield* post("/api/items/v2/whoami", {}, { headers: { "correlation-id": "c-7" } })
        assert.strictEqual(alt.headers.get("x-correlation-id"), "c-7")
        assert.strictEqual(alt.body.correlationId, "c-7")
        const fresh = yield* post("/api/items/v2/whoami", {})
        const id = fresh.headers.get("x-correlation-id")!
        assert.isString(id)
        assert.strictEqual(fresh.body.correlationId, id)
        for (const path of ["/healthz", "/readyz", "/openapi.json", "/nope"]) {
          const reply = yield* request(path, { headers: { "x-correlation-id": "same" } })
          assert.strictEqual(reply.headers.get("x-correlation-id"), "same", path)
          assert.match(reply.headers.get("traceparent") ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/, path)
        }
      }))
  })

  describe("auth", () => {
    it.effect("principal and tenant from auth reach the handler", () =>
      Effect.gen(function*() {
        const alice = yield* post("/api/items/v2/whoami", {})
        assert.strictEqual(alice.body.principalId, "alice")
        assert.strictEqual(alice.body.tenantId, "acme")
        const bob = yield* post("/api/items/v2/whoami", {}, { token: "bob-token" })
        assert.strictEqual(bob.body.principalId, "bob")
        assert.strictEqual(bob.body.tenantId, "globex")
      }))

    it.effect("neither the payload nor headers can override principal or tenant", () =>
      Effect.gen(function*() {
        const reply = yield* post("/api/items/v2/whoami", { principalId: "mallory", tenantId: "evil" }, {
          headers: {
            "x-principal-id": "mallory",
            "x-tenant-id": "evil",
            principalid: "mallory",
            tenantid: "evil",
            "x-herald-principal": "mallory"
          }
        })
        assert.strictEqual(reply.status, 200, reply.text)
        assert.strictEqual(reply.body.principalId, "alice")
        assert.strictEqual(reply.body.tenantId, "acme")
      }))

    it.effect("401 without, with malformed and with wrong credentials", () =>
      Effect.gen(function*() {
        for (const init of [{}, { headers: { authorization: "Basic abc" } }, { token: "nope" }]) {
          const reply = yield* request("/api/calculator/v1/add", { method: "POST", body: "{\"a\":1,\"b\":2}", ...init })
          isProblem(reply, 401, "unauthorized")
          assert.strictEqual(reply.headers.get("www-authenticate"), "Bearer")
        }
      }))

    it.effect("authentication comes before the body: no 400 or 413 for anonymous requests", () =>
      Effect.gen(function*() {
        isProblem(yield* request("/api/calculator/v1/add", { method: "POST", body: "{bad" }), 401, "unauthorized")
      }))

    it.effect("a public route needs no credentials; an anonymous call carries no principal", () =>
      Effect.gen(function*() {
        const reply = yield* request("/api/ping", { method: "POST", body: "{}" })
        assert.strictEqual(reply.status, 200)
      }))
  })

  describe("errors", () => {
    it.effect("400: bad JSON", () =>
      Effect.gen(function*() {
        const reply = yield* request("/api/calculator/v1/add", { method: "POST", body: "{\"a\": 1,", token: "alice-token" })
        isProblem(reply, 400, "invalid-json")
        assert.notInclude(reply.text, "\"a\": 1,") // the body is not echoed
      }))

    it.effect("400: schema-invalid input, with every issue's path and message", () =>
      Effect.gen(function*() {
        const reply = yield* post("/api/calculator/v1/add", { a: "one" })
        isProblem(reply, 400, "invalid-input")
        assert.deepStrictEqual(reply.body.issues, [
          { path: ["a"], message: "Expected number" },
          { path: ["b"], message: "Missing key" }
        ])
        assert.notInclude(reply.text, "one")
        const query = yield* request("/api/items/abc?verbose=maybe", { token: "alice-token" })
        isProblem(query, 400, "invalid-input")
        assert.sameMembers(query.body.issues.map((i: { path: Array<string> }) => i.path[0]), ["id", "verbose"])
        const negative = yield* request("/api/items/-3", { token: "alice-token" })
        isProblem(negative, 400, "invalid-input")
      }))

    it.effect("404: unknown route, unknown version, wrong method", () =>
      Effect.gen(function*() {
        isProblem(yield* request("/nope"), 404, "not-found")
        isProblem(yield* post("/api/calculator/v2/add", { a: 1, b: 2 }), 404, "not-found")
        isProblem(yield* request("/api/calculator/v1/add", { token: "alice-token" }), 404, "not-found")
      }))

    it.effect("413: body over the limit, with a length or chunked", () =>
      Effect.gen(function*() {
        const big = JSON.stringify({ a: 1, b: 2, pad: "x".repeat(2000) })
        isProblem(yield* request("/api/calculator/v1/add", { method: "POST", body: big, token: "alice-token" }), 413, "body-too-large")
        const chunked = yield* request("/api/calculator/v1/add", {
          method: "POST",
          token: "alice-token",
          headers: { "content-type": "application/json" },
          body: new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode(big.slice(0, 1000)))
              controller.enqueue(new TextEncoder().encode(big.slice(1000)))
              controller.close()
            }
          }),
          duplex: "half"
        } as RequestInit)
        isProblem(chunked, 413, "body-too-large")
        // the connection is still usable
        assert.strictEqual((yield* post("/api/calculator/v1/add", { a: 1, b: 1 })).status, 200)
      }))

    it.effect("422: a declared error without a status, with its encoded payload", () =>
      Effect.gen(function*() {
        const reply = yield* post("/api/calculator/v1/add", { a: 999, b: 2 })
        assert.strictEqual(reply.status, 422)
        assert.strictEqual(reply.headers.get("content-type"), "application/json")
        assert.deepStrictEqual(reply.body, { _tag: "Overflow", limit: 1000 })
      }))

    it.effect("declared statuses: from the schema's httpApiStatus annotation, and from the gateway's map", () =>
      Effect.gen(function*() {
        const conflict = yield* request("/api/items/409", { token: "alice-token" })
        assert.strictEqual(conflict.status, 409)
        assert.deepStrictEqual(conflict.body, { _tag: "Conflict", id: 409 })
        const gone = yield* request("/api/items/410", { token: "alice-token" })
        assert.strictEqual(gone.status, 410)
        assert.deepStrictEqual(gone.body, { _tag: "Gone", id: 410 })
      }))

    it.effect("500: a defect, with a trace id and an error id, and no internal detail", () =>
      Effect.gen(function*() {
        for (const how of ["throw", "die"]) {
          const reply = yield* post("/api/calculator/v1/crash", { how })
          isProblem(reply, 500, "internal-error")
          assert.isString(reply.body.errorId)
          assert.notInclude(reply.text, "secret")
          assert.notInclude(reply.text, "Error")
          assert.notInclude(reply.text, "fixtures")
        }
      }).pipe(quiet))

    it.effect("500: a defect in the gateway itself (here: the authenticator) is answered the same way", () =>
      Effect.gen(function*() {
        const reply = yield* post("/api/calculator/v1/add", { a: 1, b: 2 }, { token: "crash-token" })
        isProblem(reply, 500, "internal-error")
        assert.isString(reply.body.errorId)
        assert.notInclude(reply.text, "secret")
      }))

    it.effect("503: no instance serves the command", () =>
      Effect.gen(function*() {
        isProblem(yield* post("/api/ghost/v1/boo", {}), 503, "no-responder")
      }))

    it.effect("504: no reply within the route's timeout", () =>
      Effect.gen(function*() {
        const reply = yield* post("/api/calculator/v1/sleep", { ms: 1000 })
        isProblem(reply, 504, "timeout")
        assert.include(reply.body.detail, "150 ms")
      }).pipe(quiet))
  })

  describe("health", () => {
    it.effect("/healthz: the process is up; /readyz: bridge connected and routes registered", () =>
      Effect.gen(function*() {
        const health = yield* request("/healthz")
        assert.strictEqual(health.status, 200)
        assert.deepStrictEqual(health.body, { status: "ok" })
        const ready = yield* request("/readyz")
        assert.strictEqual(ready.status, 200)
        assert.deepStrictEqual(ready.body, {
          status: "ready",
          bridge: "memory",
          services: ["calculator/1", "items/2", "ghost/1"]
        })
      }))

    it.effect("the Gateway service lists the routes", () =>
      Effect.gen(function*() {
        const { routes, url } = yield* HttpGateway.Gateway
        assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
        const get = routes.find((r) => r.command === GetItem.name)!
        assert.deepStrictEqual(get, {
          service: Items.name,
          version: "2",
          command: "get-item",
          method: "GET",
          path: "/api/items/:id",
          isPublic: false
        })
        assert.isTrue(routes.find((r) => r.command === "ping")!.isPublic)
      }))
  })
})

describe("HttpGateway definitions", () => {
  const throws = (options: Partial<HttpGateway.GatewayOptions>, message: RegExp) =>
    assert.throws(() => HttpGateway.layer({ ...gatewayOptions, ...options }), DefinitionError, message)

  it.effect("bad routes fail when the Layer is made", () =>
    Effect.sync(() => {
      // a path parameter that is not an input field is a compile error, and throws
      // @ts-expect-error: `c` is not a field of Add's input
      throws({ routes: [HttpGateway.route(Add, { path: "/add/:c" })] }, /not fields of the command's input/)
      throws({ basePath: "", routes: [HttpGateway.route(Add, { path: "/healthz", method: "GET" })] }, /already the route/)
      throws({ routes: [HttpGateway.route(GetItem, { path: "/calculator/v1/add" })] }, /already the route/)
      throws({ routes: [HttpGateway.route(Add, { status: 500 })] }, /status 500/)
      throws({ errorStatus: { Overflow: 200 } }, /status 200/)
      throws({ basePath: "/a b" }, /basePath/)
      throws({ services: [Items] }, /none of the services/)
      throws({ maxBodySize: 0 }, /maxBodySize/)
    }))
})
