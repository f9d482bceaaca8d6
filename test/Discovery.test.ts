import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Queue, Schema, Scope } from "effect"
import * as fc from "fast-check"
import { Bridge } from "../src/Bridge.ts"
import * as Command from "../src/Command.ts"
import * as Discovery from "../src/Discovery.ts"
import * as Event from "../src/Event.ts"
import * as MemoryBridge from "../src/bridges/Memory.ts"
import * as Runtime from "../src/Runtime.ts"
import * as Service from "../src/Service.ts"
import * as Subscription from "../src/Subscription.ts"

class Overflow extends Schema.TaggedError<Overflow>()("Overflow", { limit: Schema.Number }) {}
const Add = Command.make("add", {
  input: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
  output: Schema.Struct({ sum: Schema.Number }),
  errors: [Overflow],
  emits: "added"
})
const Calculator = Service.make("calculator", "1", { commands: [Add] })
/** A fresh Layer per call: Layers are memoised by identity, so one value would build one instance. */
const calculatorLive = () => Service.toLayer(Calculator, { add: ({ a, b }) => Effect.succeed({ sum: a + b }) })

const Audit = Subscription.make("audit", {
  filter: { eventName: "added" },
  payload: Schema.Struct({ sum: Schema.Number }),
  delivery: "shared"
})
const Auditor = Service.make("auditor", "2", { subscriptions: [Audit] })
const AuditorLive = (seen: Queue.Queue<string>) =>
  Service.toLayer(Auditor, { audit: (_p, info) => Queue.offer(seen, info.eventName) })

const within = "150 millis"
const names = (instances: ReadonlyArray<Discovery.ServiceInstance>) => instances.map((i) => `${i.service}/${i.version}`)

describe("Discovery", () => {
  it.live("lists every live instance with its contracts as JSON Schemas", () =>
    Effect.gen(function*() {
      const seen = yield* Queue.unbounded<string>()
      yield* Layer.build(Layer.mergeAll(calculatorLive(), calculatorLive(), AuditorLive(seen)))
      const live = yield* Discovery.list({ within })
      assert.deepStrictEqual(names(live), ["auditor/2", "calculator/1", "calculator/1"])
      const [auditor, calc1, calc2] = live
      assert.notStrictEqual(calc1!.instance, calc2!.instance)
      const add = calc1!.commands[0]!
      assert.strictEqual(add.name, "add")
      assert.strictEqual(add.emits, "added")
      assert.strictEqual(add.idempotent, false)
      assert.deepStrictEqual(add.input["required"], ["a", "b"])
      assert.deepStrictEqual(Object.keys(add.input["properties"] as object).sort(), ["a", "b"])
      assert.deepStrictEqual(add.output["required"], ["sum"])
      assert.strictEqual(add.errors.length, 1)
      assert.include(JSON.stringify([add.errors, calc1!.definitions]), "Overflow")
      assert.deepStrictEqual(auditor!.subscriptions, [{
        name: "audit",
        filter: { eventName: "added" },
        payload: auditor!.subscriptions[0]!.payload,
        delivery: "shared",
        durable: false
      }])
      assert.deepStrictEqual(auditor!.subscriptions[0]!.payload["required"], ["sum"])
      for (const i of live) {
        assert.isTrue(Duration.toMillis(i.uptime) >= 0)
        assert.isTrue(i.startedAt > 0)
      }
      // the auditor's catch-all-by-name subscription never saw the discovery traffic
      assert.deepStrictEqual(yield* Queue.clear(seen), [])
    }).pipe(Effect.provide(MemoryBridge.layer)))

  it.live("an instance that stopped or opted out is not listed; `service` narrows the list", () =>
    Effect.gen(function*() {
      const seen = yield* Queue.unbounded<string>()
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(calculatorLive(), scope)
      yield* Layer.build(AuditorLive(seen))
      yield* Layer.build(Service.toLayer(Calculator, { add: () => Effect.succeed({ sum: 0 }) }, { discovery: false }))
      assert.deepStrictEqual(names(yield* Discovery.list({ within })), ["auditor/2", "calculator/1"])
      assert.deepStrictEqual(names(yield* Discovery.list({ within, service: "calculator" })), ["calculator/1"])
      // a list running while the instance stops sees its `stopped` event after the announcement
      const listing = yield* Effect.forkChild(Discovery.list({ within: "300 millis" }))
      yield* Effect.sleep("100 millis")
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(names(yield* Fiber.join(listing)), ["auditor/2"])
      assert.deepStrictEqual(names(yield* Discovery.list({ within })), ["auditor/2"])
    }).pipe(Effect.provide(MemoryBridge.layer)))

  it.live("announcements are decoded, never trusted: an invalid one is ignored", () =>
    Effect.gen(function*() {
      yield* Layer.build(calculatorLive())
      const bridge = yield* Bridge
      const listing = yield* Effect.forkChild(Discovery.list({ within: "200 millis" }))
      yield* Effect.sleep("50 millis")
      yield* Runtime.publishEncoded(bridge, Discovery.ANNOUNCED, { service: "forged", instance: 42 })
      yield* Runtime.publishEncoded(bridge, Discovery.STOPPED, { instance: ["not", "a", "string"] })
      const live = yield* Fiber.join(listing)
      assert.deepStrictEqual(names(live), ["calculator/1"])
    }).pipe(Effect.provide(MemoryBridge.layer)))

  it("the discovery names are reserved: user events, emitted events and subscriptions cannot take them", () => {
    assert.throws(() => Event.make("herald.discovery.announced", Schema.Struct({})), /reserved/)
    assert.throws(() => Event.make("herald.anything", Schema.Struct({})), /reserved/)
    assert.throws(
      () => Command.make("x", { input: Schema.Struct({}), output: Schema.Struct({}), emits: "herald.discovery.stopped" }),
      /reserved/
    )
    const sub = Subscription.make(Discovery.SUBSCRIPTION, { filter: {}, payload: Schema.Struct({}), delivery: "broadcast" })
    assert.throws(() => Service.make("svc", "1", { subscriptions: [sub] }), /reserved/)
    assert.doesNotThrow(() => Event.make("heraldic.event", Schema.Struct({})))
  })

  it("discovery events reach only subscriptions that name them", () => {
    const target = (eventName: string) => ({ eventName, sender: { service: "s", version: "1" }, data: {} })
    const any = Subscription.make("any", { filter: {}, payload: Schema.Unknown, delivery: "shared" })
    const prefixed = Subscription.make("pre", { filter: { eventName: [{ prefix: "herald." }] }, payload: Schema.Unknown, delivery: "shared" })
    const named = Subscription.make("named", { filter: { eventName: Discovery.ANNOUNCED }, payload: Schema.Unknown, delivery: "shared" })
    assert.isFalse(any.matcher.matches(target(Discovery.ANNOUNCED)))
    assert.isFalse(prefixed.matcher.matches(target(Discovery.REQUESTED)))
    assert.isTrue(prefixed.matcher.matches(target(Subscription.DEAD_LETTER)))
    assert.isTrue(any.matcher.matches(target("order.placed")))
    assert.isTrue(named.matcher.matches(target(Discovery.ANNOUNCED)))
    assert.isFalse(named.matcher.matches(target(Discovery.STOPPED)))
  })

  it.live("property: the list equals the set of running instances that take part", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ service: fc.constantFrom("alpha", "beta", "gamma"), discovery: fc.boolean() }), { maxLength: 6 }),
          (specs) =>
            Effect.runPromise(Effect.scoped(Effect.gen(function*() {
              for (const s of specs) {
                const contract = Service.make(s.service, "1", { commands: [Add] })
                yield* Layer.build(Service.toLayer(contract, { add: () => Effect.succeed({ sum: 1 }) }, { discovery: s.discovery }))
              }
              const live = yield* Discovery.list({ within: "30 millis" })
              const expected = specs.filter((s) => s.discovery).map((s) => `${s.service}/1`).sort()
              assert.deepStrictEqual(names(live), expected)
              assert.strictEqual(new Set(live.map((i) => i.instance)).size, live.length)
            })).pipe(Effect.provide(MemoryBridge.layer)))
        ),
        { numRuns: 25 }
      )
    ))
})
