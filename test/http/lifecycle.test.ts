/** The gateway's lifecycle (readiness while draining, in-flight requests finishing, the port closing) and CORS. */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { MemoryBridge } from "../../src/index.ts"
import * as HttpGateway from "../../src/http/HttpGateway.ts"
import { Calculator, CalculatorLive } from "../fixtures.ts"

const get = (url: string) =>
  Effect.promise(() => fetch(url).then(async (r) => ({ status: r.status, body: (await r.json()) as any })))

describe("HttpGateway lifecycle", () => {
  it.live("on shutdown: /readyz answers 503 while draining, in-flight requests finish, then the port closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        HttpGateway.layer({
          services: [Calculator],
          port: 0,
          host: "127.0.0.1",
          drainDelay: "300 millis",
          shutdownTimeout: "5 seconds"
        }).pipe(Layer.provideMerge(CalculatorLive()), Layer.provideMerge(MemoryBridge.layer)),
        scope
      )
      const { url } = Context.get(context, HttpGateway.Gateway)
      assert.strictEqual((yield* get(`${url}/readyz`)).status, 200)

      // a request in flight when shutdown starts: it takes longer than the drain delay
      const slow = yield* Effect.forkChild(Effect.promise(() =>
        fetch(`${url}/calculator/v1/sleep`, { method: "POST", body: JSON.stringify({ ms: 600 }) })
          .then(async (r) => ({ status: r.status, body: await r.json() }))
      ))
      yield* Effect.sleep("50 millis")
      const started = yield* Clock.currentTimeMillis
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* Effect.sleep("100 millis")

      const draining = yield* get(`${url}/readyz`)
      assert.strictEqual(draining.status, 503)
      assert.strictEqual(draining.body.type, "urn:herald:problem:not-ready")
      assert.include(draining.body.detail, "draining")
      assert.strictEqual((yield* get(`${url}/healthz`)).status, 200)

      assert.deepStrictEqual(yield* Fiber.join(slow), { status: 200, body: { slept: 600 } })
      yield* Fiber.join(closing)
      const took = (yield* Clock.currentTimeMillis) - started
      assert.isBelow(took, 2000, "shutdown waited for in-flight requests, not for the shutdown timeout")
      const after = yield* Effect.promise(() => fetch(`${url}/healthz`).then(() => "open", () => "closed"))
      assert.strictEqual(after, "closed")
    }))

  it.live("a taken port fails the Layer with a ServeError", () =>
    Effect.gen(function*() {
      const first = yield* Layer.build(
        HttpGateway.layer({ services: [Calculator], port: 0, host: "127.0.0.1" }).pipe(Layer.provide(MemoryBridge.layer))
      )
      const port = Number(new URL(Context.get(first, HttpGateway.Gateway).url).port)
      const second = yield* Layer.build(
        HttpGateway.layer({ services: [Calculator], port, host: "127.0.0.1" }).pipe(Layer.provide(MemoryBridge.layer))
      ).pipe(Effect.flip)
      assert.strictEqual(second._tag, "ServeError")
    }))

  it.live("cors: preflight answered, response headers exposed to browsers", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(
        HttpGateway.layer({ services: [Calculator], port: 0, host: "127.0.0.1", cors: { allowedOrigins: ["https://app.test"] } })
          .pipe(Layer.provideMerge(CalculatorLive()), Layer.provideMerge(MemoryBridge.layer))
      )
      const { url } = Context.get(context, HttpGateway.Gateway)
      const preflight = yield* Effect.promise(() =>
        fetch(`${url}/calculator/v1/add`, {
          method: "OPTIONS",
          headers: { origin: "https://app.test", "access-control-request-method": "POST" }
        })
      )
      assert.strictEqual(preflight.status, 204)
      assert.strictEqual(preflight.headers.get("access-control-allow-origin"), "https://app.test")
      const call = yield* Effect.promise(() =>
        fetch(`${url}/calculator/v1/add`, { method: "POST", headers: { origin: "https://app.test" }, body: "{\"a\":1,\"b\":2}" })
      )
      assert.strictEqual(call.status, 200)
      assert.strictEqual(call.headers.get("access-control-expose-headers"), "x-correlation-id,traceparent,tracestate")
    }))
})
