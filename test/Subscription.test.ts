import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Metric, Queue, Ref, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { Bridge, Event, MemoryBridge, Runtime, Service, Subscription, withContext } from "../src/index.ts"
import { Added, subscriptionOf } from "./fixtures.ts"

const AddedEvent = Event.make("added", Added)

/** Lets every forked delivery run. */
const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

const deadLetters = Subscription.make("dead-letters", {
  filter: { eventName: Subscription.DEAD_LETTER },
  payload: Subscription.DeadLetter,
  delivery: "shared"
})

describe("Subscription.make", () => {
  it("rejects a bad filter, name or option when defined", () => {
    const base = { payload: Added, delivery: "shared" } as const
    assert.throws(() => Subscription.make("x", { ...base, filter: { nope: 1 } as never }), /subscription x: invalid filter/)
    assert.throws(() => Subscription.make("Bad Name", { ...base, filter: {} }), /subscription name "Bad Name" is invalid/)
    assert.throws(() => Subscription.make("x", { ...base, filter: {}, concurrency: 0 }), /concurrency must be a positive integer/)
    assert.throws(() => Subscription.make("x", { ...base, delivery: "all" as never, filter: {} }), /delivery must be/)
  })
})

describe("Event.publish", () => {
  it.effect("validates the payload first: an invalid one fails with InvalidInput and nothing is sent", () =>
    Effect.gen(function*() {
      const got = yield* Ref.make(0)
      const S = Service.make("sink", "1", { subscriptions: [subscriptionOf("added")] })
      yield* Effect.gen(function*() {
        const error = yield* Effect.flip(Event.publish(AddedEvent, { sum: Number.NaN }))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.match(error.message, /added/)
        yield* settle
        assert.strictEqual(yield* Ref.get(got), 0)
        yield* Event.publish(AddedEvent, { sum: 1 })
        yield* settle
        assert.strictEqual(yield* Ref.get(got), 1)
      }).pipe(Effect.provide(
        Service.toLayer(S, { added: () => Ref.update(got, (n) => n + 1) }).pipe(Layer.provideMerge(MemoryBridge.layer))
      ))
    }))

  it("rejects a bad event name when defined", () => {
    assert.throws(() => Event.make("Order Placed", Added), /event name "Order Placed" is invalid/)
  })
})

describe("subscriptions on the memory bridge", () => {
  it.effect("shared delivery reaches one instance per group, broadcast every instance", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 1, max: 15 }),
          fc.constantFrom("shared" as const, "broadcast" as const),
          (instances, events, delivery) =>
            Effect.runPromise(Effect.gen(function*() {
              const got = yield* Ref.make<Array<{ instance: number; sum: number }>>([])
              const Sink = Service.make("sink", "1", { subscriptions: [subscriptionOf("all", { delivery })] })
              // a second subscribing service: an independent group that gets every event too
              const Other = Service.make("other", "1", { subscriptions: [subscriptionOf("all", { delivery: "shared" })] })
              const otherGot = yield* Ref.make(0)
              const layers = Array.from({ length: instances }, (_, i) =>
                Service.toLayer(Sink, { all: (p) => Ref.update(got, (xs) => [...xs, { instance: i, sum: p.sum }]) }))
              const all = Layer.mergeAll(
                Service.toLayer(Other, { all: () => Ref.update(otherGot, (n) => n + 1) }),
                ...layers
              )
              yield* Effect.gen(function*() {
                for (let n = 0; n < events; n++) yield* Event.publish(AddedEvent, { sum: n })
                yield* settle
              }).pipe(Effect.provide(all.pipe(Layer.provideMerge(MemoryBridge.layer))))
              const deliveries = yield* Ref.get(got)
              const copies = delivery === "shared" ? 1 : instances
              assert.strictEqual(deliveries.length, events * copies)
              for (let n = 0; n < events; n++) {
                const of = deliveries.filter((d) => d.sum === n)
                assert.strictEqual(of.length, copies)
                assert.strictEqual(new Set(of.map((d) => d.instance)).size, copies, "never twice to one instance")
              }
              assert.strictEqual(yield* Ref.get(otherGot), events)
            }))
        ),
        { numRuns: 60 }
      )
    ))

  it.effect("delivers exactly the events the filter matches", () =>
    Effect.gen(function*() {
      const got = yield* Queue.unbounded<{ sum: number; tenant: string | undefined }>()
      const Big = Subscription.make("big", {
        filter: { eventName: "added", tenantId: ["t1", "t2"], data: { sum: [{ numeric: [">", 10] }] } },
        payload: Added,
        delivery: "shared"
      })
      const S = Service.make("watcher", "1", { subscriptions: [Big] })
      const Live = Service.toLayer(S, { big: (p, info) => Queue.offer(got, { sum: p.sum, tenant: info.tenantId }) })
      yield* Effect.gen(function*() {
        const cases: Array<[number, string | undefined]> = [[5, "t1"], [11, "t1"], [12, "t3"], [13, undefined], [14, "t2"]]
        for (const [sum, tenantId] of cases) {
          yield* Event.publish(AddedEvent, { sum }).pipe(withContext({ tenantId }))
        }
        yield* Event.publish(Event.make("other", Added), { sum: 99 }).pipe(withContext({ tenantId: "t1" }))
        yield* settle
        assert.deepStrictEqual(yield* Queue.clear(got), [{ sum: 11, tenant: "t1" }, { sum: 14, tenant: "t2" }])
      }).pipe(Effect.provide(Live.pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))

  it.effect("a failing handler is retried per schedule, then dead-lettered with the cause attached", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const letters = yield* Queue.unbounded<Subscription.DeadLetter>()
      const Fragile = Subscription.make("fragile", {
        filter: { eventName: "added" },
        payload: Added,
        delivery: "shared",
        retry: Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 2 }))
      })
      const S = Service.make("fragile-svc", "1", { subscriptions: [Fragile] })
      const Dlq = Service.make("dlq", "1", { subscriptions: [deadLetters] })
      const layers = Layer.mergeAll(
        Service.toLayer(S, {
          fragile: (p) => Effect.andThen(Ref.update(attempts, (n) => n + 1), Effect.fail(`cannot handle ${p.sum}`))
        }),
        Service.toLayer(Dlq, { "dead-letters": (letter) => Queue.offer(letters, letter) })
      )
      yield* Effect.gen(function*() {
        yield* Event.publish(AddedEvent, { sum: 7 }).pipe(withContext({ tenantId: "t1" }))
        yield* settle
        assert.strictEqual(yield* Ref.get(attempts), 1)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Ref.get(attempts), 2)
        assert.strictEqual(yield* Queue.size(letters), 0, "no dead letter before the retries are spent")
        yield* TestClock.adjust("1 second")
        const letter = yield* Queue.take(letters)
        assert.strictEqual(yield* Ref.get(attempts), 3)
        assert.strictEqual(letter.service, "fragile-svc")
        assert.strictEqual(letter.subscription, "fragile")
        assert.strictEqual(letter.attempts, 3)
        assert.include(letter.error, "cannot handle 7")
        const event = letter.event as Record<string, unknown>
        assert.strictEqual(event.type, "added")
        assert.strictEqual(event.tenantid, "t1")
        assert.deepStrictEqual(event.data, { sum: 7 })
        const counted = Metric.withAttributes(Runtime.deadLetters, { service: "fragile-svc", subscription: "fragile" })
        assert.strictEqual((yield* Metric.value(counted)).count, 1)
      }).pipe(Effect.provide(layers.pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))

  it.effect("an event whose payload fails the schema goes straight to the dead-letter stream", () =>
    Effect.gen(function*() {
      const handled = yield* Ref.make(0)
      const letters = yield* Queue.unbounded<Subscription.DeadLetter>()
      const S = Service.make("strict", "1", { subscriptions: [subscriptionOf("added")] })
      const Dlq = Service.make("dlq", "1", { subscriptions: [deadLetters] })
      const layers = Layer.mergeAll(
        Service.toLayer(S, { added: () => Ref.update(handled, (n) => n + 1) }),
        Service.toLayer(Dlq, { "dead-letters": (letter) => Queue.offer(letters, letter) })
      )
      yield* Effect.gen(function*() {
        yield* Event.publish(Event.make("added", Schema.Struct({ sum: Schema.String })), { sum: "seven" })
        const letter = yield* Queue.take(letters)
        assert.strictEqual(letter.attempts, 0)
        assert.match(letter.error, /payload fails the subscription's schema/)
        assert.strictEqual(yield* Ref.get(handled), 0)
      }).pipe(Effect.provide(layers.pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))

  it.effect("a failing dead-letter handler does not produce dead letters of dead letters", () =>
    Effect.gen(function*() {
      const dlqAttempts = yield* Ref.make(0)
      const S = Service.make("strict", "1", { subscriptions: [subscriptionOf("added")] })
      const Dlq = Service.make("dlq", "1", {
        subscriptions: [Subscription.make("dead-letters", {
          filter: { eventName: Subscription.DEAD_LETTER },
          payload: Subscription.DeadLetter,
          delivery: "shared",
          retry: Schedule.recurs(0)
        })]
      })
      const layers = Layer.mergeAll(
        Service.toLayer(S, { added: () => Effect.void }),
        Service.toLayer(Dlq, { "dead-letters": () => Effect.andThen(Ref.update(dlqAttempts, (n) => n + 1), Effect.fail("no")) })
      )
      yield* Effect.gen(function*() {
        yield* Event.publish(Event.make("added", Schema.Struct({ sum: Schema.String })), { sum: "x" })
        yield* settle
        yield* TestClock.adjust("1 minute")
        yield* settle
        assert.strictEqual(yield* Ref.get(dlqAttempts), 1)
      }).pipe(Effect.provide(layers.pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))

  it.effect("concurrency bounds the handlers in flight per instance", () =>
    Effect.gen(function*() {
      const inFlight = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const gate = yield* Deferred.make<void>()
      const done = yield* Ref.make(0)
      const S = Service.make("bounded", "1", { subscriptions: [subscriptionOf("added", { concurrency: 2 })] })
      const Live = Service.toLayer(S, {
        added: () =>
          Effect.gen(function*() {
            const now = yield* Ref.updateAndGet(inFlight, (n) => n + 1)
            yield* Ref.update(peak, (p) => Math.max(p, now))
            yield* Deferred.await(gate)
            yield* Ref.update(inFlight, (n) => n - 1)
            yield* Ref.update(done, (n) => n + 1)
          })
      })
      yield* Effect.gen(function*() {
        for (let n = 0; n < 6; n++) yield* Event.publish(AddedEvent, { sum: n })
        yield* settle
        assert.strictEqual(yield* Ref.get(inFlight), 2)
        yield* Deferred.succeed(gate, undefined)
        yield* settle
        assert.strictEqual(yield* Ref.get(done), 6)
        assert.strictEqual(yield* Ref.get(peak), 2)
      }).pipe(Effect.provide(Live.pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))

  it.effect("a durable subscription keeps events while its service is down and delivers them when it returns", () =>
    Effect.gen(function*() {
      const got = yield* Queue.unbounded<number>()
      const Keep = Service.make("keeper", "1", { subscriptions: [subscriptionOf("added", { durable: true })] })
      const Drop = Service.make("dropper", "1", { subscriptions: [subscriptionOf("added")] })
      const dropped = yield* Ref.make<Array<number>>([])
      const bridge = yield* Layer.build(MemoryBridge.layer)
      const start = Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(
          Layer.mergeAll(
            Service.toLayer(Keep, { added: (p) => Queue.offer(got, p.sum) }),
            Service.toLayer(Drop, { added: (p) => Ref.update(dropped, (xs) => [...xs, p.sum]) })
          ),
          scope
        ).pipe(Effect.provide(bridge))
        return scope
      })
      const publish = (sum: number) => Event.publish(AddedEvent, { sum }).pipe(Effect.provide(bridge))

      const first = yield* start
      yield* publish(1)
      assert.strictEqual(yield* Queue.take(got), 1)
      yield* Scope.close(first, Exit.void)
      yield* publish(2)
      yield* publish(3)
      yield* settle
      const second = yield* start
      assert.deepStrictEqual([yield* Queue.take(got), yield* Queue.take(got)], [2, 3])
      yield* publish(4)
      assert.strictEqual(yield* Queue.take(got), 4)
      yield* settle
      assert.deepStrictEqual(yield* Ref.get(dropped), [1, 4], "a non-durable subscription misses what was published while down")
      yield* Scope.close(second, Exit.void)
    }))

  it.effect("a durable event interrupted at shutdown is delivered again", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const got = yield* Queue.unbounded<{ sum: number; deliveryCount: number }>()
      const Keep = Service.make("keeper", "1", { subscriptions: [subscriptionOf("added", { durable: true })] })
      const bridge = yield* Layer.build(MemoryBridge.layer)
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        Service.toLayer(Keep, { added: () => Effect.andThen(Deferred.succeed(started, undefined), Effect.never) }, {
          drainTimeout: "1 second"
        }),
        scope
      ).pipe(Effect.provide(bridge))
      yield* Event.publish(AddedEvent, { sum: 5 }).pipe(Effect.provide(bridge))
      yield* Deferred.await(started)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      yield* Layer.build(
        Service.toLayer(Keep, { added: (p, info) => Queue.offer(got, { sum: p.sum, deliveryCount: info.deliveryCount }) })
      ).pipe(Effect.provide(bridge))
      assert.deepStrictEqual(yield* Queue.take(got), { sum: 5, deliveryCount: 2 })
    }))

  it.effect("bytes that are not an envelope are counted, dead-lettered for durable subscriptions, and the consumer goes on", () =>
    Effect.gen(function*() {
      const got = yield* Queue.unbounded<number>()
      const letters = yield* Queue.unbounded<Subscription.DeadLetter>()
      const S = Service.make("robust", "1", { subscriptions: [subscriptionOf("added", { durable: true })] })
      const Dlq = Service.make("dlq", "1", { subscriptions: [deadLetters] })
      const layers = Layer.mergeAll(
        Service.toLayer(S, { added: (p) => Queue.offer(got, p.sum) }),
        Service.toLayer(Dlq, { "dead-letters": (letter) => Queue.offer(letters, letter) })
      )
      yield* Effect.gen(function*() {
        const bridge = yield* Bridge.Bridge
        const undecodable = Metric.withAttributes(Runtime.rejectedMessages, { reason: "undecodable", service: "robust" })
        const before = (yield* Metric.value(undecodable)).count
        const route = { id: "bad", eventName: "added", senderService: "mallory" }
        yield* bridge.publish(route, new TextEncoder().encode("not json at all"))
        yield* bridge.publish(route, new TextEncoder().encode(JSON.stringify({ specversion: "1.0", id: "x" })))
        yield* bridge.publish(route, new Uint8Array([0xc3, 0x28]))
        yield* Event.publish(AddedEvent, { sum: 1 })
        assert.strictEqual(yield* Queue.take(got), 1)
        yield* settle
        assert.strictEqual((yield* Metric.value(undecodable)).count, before + 3)
        const dead = yield* Queue.clear(letters)
        assert.strictEqual(dead.length, 3)
        assert.deepStrictEqual(dead[0]!.event, { base64: Buffer.from("not json at all").toString("base64") })
      }).pipe(Effect.provide(layers.pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))
})
