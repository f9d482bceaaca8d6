import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, References } from "effect"
import * as fc from "fast-check"
import { DefinitionError, MemoryBridge } from "../../src/index.ts"
import * as HttpGateway from "../../src/http/HttpGateway.ts"
import { p99 } from "../../src/http/liveView.ts"
import * as Metrics from "../../src/Metrics.ts"
import { Calculator, CalculatorLive } from "../fixtures.ts"
import { Ghost } from "./fixtures.ts"

const gateway = (liveView: HttpGateway.GatewayOptions["liveView"]) =>
  HttpGateway.layer({ services: [Calculator, Ghost], port: 0, host: "127.0.0.1", liveView }).pipe(
    Layer.provide(Layer.mergeAll(CalculatorLive(), CalculatorLive())),
    Layer.provideMerge(MemoryBridge.layer),
    Layer.provide(Layer.succeed(References.MinimumLogLevel, "None"))
  )

const get = (path: string) =>
  Effect.flatMap(HttpGateway.Gateway, ({ url }) => Effect.promise(() => fetch(`${url}${path}`)))
const live = Effect.flatMap(get("/live.json"), (r) => Effect.promise(() => r.json() as Promise<HttpGateway.LiveDocument>))
const add = (a: number, b: number) =>
  Effect.flatMap(HttpGateway.Gateway, ({ url }) =>
    Effect.promise(() =>
      fetch(`${url}/calculator/v1/add`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ a, b })
      })
    ))
const commandOf = (doc: HttpGateway.LiveDocument, service: string, command: string) =>
  doc.services.find((s) => s.service === service)!.commands.find((c) => c.name === command)!

describe("HttpGateway live view", () => {
  it.live("/live.json: live instances, this gateway's figures per command and the event tail, without payloads", () =>
    Effect.gen(function*() {
      const first = yield* live
      assert.strictEqual(first.bridge, "memory")
      const calc = first.services.find((s) => s.service === "calculator")!
      assert.strictEqual(calc.instances.length, 2)
      assert.deepStrictEqual(calc.commands.map((c) => c.name), ["add", "sleep", "crash", "lookup"])
      const ghost = first.services.find((s) => s.service === "ghost")!
      assert.deepStrictEqual(ghost.instances, [], "a configured service without instances is shown as down")
      assert.strictEqual(commandOf(first, "calculator", "add").client, null, "no call yet")

      for (const [a, b] of [[1, 2], [3, 4], [5, 6]]) assert.strictEqual((yield* add(a!, b!)).status, 200)
      assert.strictEqual((yield* add(999, 999)).status, 422)
      const second = yield* live
      const figures = commandOf(second, "calculator", "add")
      assert.strictEqual(figures.client!.calls, 4)
      assert.strictEqual(figures.client!.errors, 1)
      assert.isAbove(figures.client!.p99Ms!, 0)
      assert.isNotNull(figures.client!.ratePerSecond)
      assert.isAbove(figures.client!.ratePerSecond!, 0)
      assert.strictEqual(figures.server!.calls, 4, "the instances run in the gateway's process")
      assert.strictEqual(figures.server!.errors, 1)
      assert.isAbove(second.windowSeconds, 0)
      const added = second.events.filter((e) => e.name === "added")
      assert.strictEqual(added.length, 3)
      assert.strictEqual(added[0]!.sender.service, "calculator")
      assert.isFalse("data" in added[0]!, "payloads are not shown by default")
      assert.isFalse(second.events.some((e) => e.name.startsWith("herald.discovery.")))
      assert.include(second.note, "this gateway process")
    }).pipe(Effect.provide(gateway(true))))

  it.live("payloads and the tail's size are options", () =>
    Effect.gen(function*() {
      for (const n of [1, 2, 3]) yield* add(n, 0)
      const doc = yield* live
      assert.deepStrictEqual(doc.events.map((e) => e.data), [{ sum: 3 }, { sum: 2 }], "newest first, two kept")
    }).pipe(Effect.provide(gateway({ recentEvents: 2, payloads: true }))))

  it.live("GET / serves the self-contained page; without the option both paths are 404", () =>
    Effect.gen(function*() {
      const page = yield* get("/")
      assert.strictEqual(page.status, 200)
      assert.match(page.headers.get("content-type") ?? "", /text\/html/)
      const html = yield* Effect.promise(() => page.text())
      assert.include(html, "live.json")
      assert.notMatch(html, /<(script|link)[^>]+(src|href)=/, "no external assets")
      const off = yield* Effect.provide(Effect.all([get("/"), get("/live.json")]), gateway(false))
      assert.deepStrictEqual(off.map((r) => r.status), [404, 404])
    }).pipe(Effect.provide(gateway(true))))

  it("the live view's paths are reserved when it is on; a bad option is a definition error", () => {
    const options = { services: [Calculator], port: 0, basePath: "" }
    const route = HttpGateway.route(Calculator.commands[0], { method: "GET", path: "/live.json" })
    assert.doesNotThrow(() => HttpGateway.layer({ ...options, routes: [route] }))
    assert.throws(() => HttpGateway.layer({ ...options, routes: [route], liveView: true }), DefinitionError, /already the route/)
  })

  it.live("a bad liveView option fails the gateway with a definition error", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Layer.build(gateway({ recentEvents: 0 })))
      assert.include(String(exit), "recentEvents must be a positive integer")
    }))

  it("p99 from cumulative buckets lies in the bucket of the true 99th percentile, never above the maximum", () => {
    const bounds = [...Metrics.LATENCY_BOUNDARIES, Infinity]
    fc.assert(fc.property(fc.array(fc.double({ min: 0.0001, max: 20, noNaN: true }), { minLength: 1, maxLength: 300 }), (values) => {
      const buckets = bounds.map((b) => [b, values.filter((v) => v <= b).length] as const)
      const max = Math.max(...values)
      const estimate = p99(buckets, values.length, max)!
      const sorted = [...values].sort((a, b) => a - b)
      const truth = sorted[Math.ceil(0.99 * values.length) - 1]!
      const i = bounds.findIndex((b) => truth <= b)
      const lower = i === 0 ? 0 : bounds[i - 1]!
      assert.isAtMost(estimate, Math.min(bounds[i]!, max))
      assert.isAtLeast(estimate, Math.min(lower, max))
    }))
    assert.isNull(p99([[1, 0]], 0, -Infinity))
  })
})
