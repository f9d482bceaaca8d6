/** The runtime's metrics, per outcome, on the memory bridge (which goes through the same codec as every bridge). */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Layer, Metric, References, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { Bridge, Client, Codec, MemoryBridge, Metrics, Runtime, Service } from "../src/index.ts"
import { Calculator, CalculatorLive, subscriptionOf } from "./fixtures.ts"

const counter = (metric: Metric.Counter<number>, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (s) => s.count)

/** Runs `body` and returns how much each counter moved. */
const deltas = <K extends string, A, E, R>(
  counters: Record<K, Effect.Effect<number>>,
  body: Effect.Effect<A, E, R>
): Effect.Effect<Record<K, number>, E, R> =>
  Effect.gen(function*() {
    const keys = Object.keys(counters) as Array<K>
    const before = yield* Effect.forEach(keys, (k) => counters[k])
    yield* body
    const after = yield* Effect.forEach(keys, (k) => counters[k])
    return Object.fromEntries(keys.map((k, i) => [k, after[i]! - before[i]!])) as Record<K, number>
  })

const add = { service: "calculator", version: "1", command: "add" }
const sleep = { ...add, command: "sleep" }
const crash = { ...add, command: "crash" }

const quiet = Effect.provideService(References.MinimumLogLevel, "None")
const withCalculator = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(CalculatorLive().pipe(Layer.provideMerge(MemoryBridge.layer))), quiet)

describe("command metrics", () => {
  it.effect("serving and calling sides count every outcome: ok, declared error, defect, invalid input, timeout", () =>
    withCalculator(Effect.gen(function*() {
      const calc = yield* Client.make(Calculator)
      const bridge = yield* Bridge.Bridge
      const moved = yield* deltas({
        handledOk: counter(Metrics.commandHandled, { ...add, outcome: "ok" }),
        handledError: counter(Metrics.commandHandled, { ...add, outcome: "error" }),
        handledInvalid: counter(Metrics.commandHandled, { ...add, outcome: "invalid-input" }),
        handledDefect: counter(Metrics.commandHandled, { ...crash, outcome: "defect" }),
        handledTimeout: counter(Metrics.commandHandled, { ...sleep, outcome: "timeout" }),
        callsOk: counter(Metrics.clientCalls, { ...add, outcome: "ok" }),
        callsOverflow: counter(Metrics.clientCalls, { ...add, outcome: "Overflow" }),
        callsDefect: counter(Metrics.clientCalls, { ...crash, outcome: "RemoteDefect" }),
        callsTimeout: counter(Metrics.clientCalls, { ...sleep, outcome: "Timeout" }),
        published: counter(Metrics.eventsPublished, { service: "calculator", event: "added" })
      }, Effect.gen(function*() {
        yield* calc.add({ a: 1, b: 2 })
        yield* calc.add({ a: 3, b: 4 })
        assert.strictEqual((yield* Effect.flip(calc.add({ a: 1000, b: 1 })))._tag, "Overflow")
        assert.strictEqual((yield* Effect.flip(calc.crash({ how: "die" })))._tag, "RemoteDefect")
        // a command whose input fails the schema on the serving side (a non-Herald sender)
        const now = yield* Clock.currentTimeMillis
        yield* bridge.request(add, Codec.json.encode({
          id: "bad-1",
          kind: "command",
          type: "add",
          source: "herald:client/0",
          time: now,
          correlationId: "bad-1",
          sender: Runtime.ANONYMOUS,
          receiver: { service: "calculator", version: "1" },
          expiresAt: now + 1000,
          data: { a: "one", b: 2 }
        }), now + 1000)
        const slow = yield* Effect.forkChild(Effect.flip(calc.sleep({ ms: 60_000 }, { timeout: "1 second" })))
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* Fiber.join(slow))._tag, "Timeout")
      }))
      assert.deepStrictEqual(moved, {
        handledOk: 2,
        handledError: 1,
        handledInvalid: 1,
        handledDefect: 1,
        handledTimeout: 1,
        callsOk: 2,
        callsOverflow: 1,
        callsDefect: 1,
        callsTimeout: 1,
        published: 2
      })
      const duration = yield* Metric.value(Metric.withAttributes(Metrics.commandDuration, add))
      assert.isAtLeast(duration.count, 4)
      const inFlight = yield* Metric.value(Metric.withAttributes(Metrics.commandInFlight, sleep))
      assert.strictEqual(inFlight.value, 0, "nothing left in flight after the timeout")
    })))

  it.effect("in flight counts commands being handled", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const Gate = Service.make("gate", "1", { commands: [Calculator.commands[0]] })
      const GateLive = Service.toLayer(Gate, {
        add: ({ a, b }) => Effect.as(Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(release)), { sum: a + b })
      })
      yield* Effect.gen(function*() {
        const gate = yield* Client.make(Gate)
        const inFlight = Metric.withAttributes(Metrics.commandInFlight, { service: "gate", version: "1", command: "add" })
        const call = yield* Effect.forkChild(gate.add({ a: 1, b: 1 }))
        yield* Deferred.await(started)
        assert.strictEqual((yield* Metric.value(inFlight)).value, 1)
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(call)
        assert.strictEqual((yield* Metric.value(inFlight)).value, 0)
      }).pipe(Effect.provide(GateLive.pipe(Layer.provideMerge(MemoryBridge.layer))), quiet)
    }))
})

describe("subscription metrics", () => {
  it.effect("delivered, failed, retried and dead-lettered follow the handler's attempts", () =>
    Effect.gen(function*() {
      const done = yield* Deferred.make<void>()
      let flakyRuns = 0
      const Subs = Service.make("subs", "1", {
        subscriptions: [
          subscriptionOf("flaky", { retry: Schedule.recurs(2) }),
          subscriptionOf("hopeless", { retry: Schedule.recurs(1) }),
          subscriptionOf("fine")
        ]
      })
      const SubsLive = Service.toLayer(Subs, {
        flaky: () => (++flakyRuns === 1 ? Effect.fail("first attempt fails") : Effect.void),
        hopeless: () => Effect.fail("never works"),
        fine: () => Deferred.succeed(done, undefined)
      })
      const of = (subscription: string) => ({ service: "subs", subscription })
      const moved = yield* deltas({
        flakyDelivered: counter(Metrics.subscriptionDelivered, of("flaky")),
        flakyFailed: counter(Metrics.subscriptionFailed, of("flaky")),
        flakyRetried: counter(Metrics.subscriptionRetried, of("flaky")),
        flakyDead: counter(Metrics.deadLetters, of("flaky")),
        hopelessDelivered: counter(Metrics.subscriptionDelivered, of("hopeless")),
        hopelessFailed: counter(Metrics.subscriptionFailed, of("hopeless")),
        hopelessRetried: counter(Metrics.subscriptionRetried, of("hopeless")),
        hopelessDead: counter(Metrics.deadLetters, of("hopeless")),
        fineDelivered: counter(Metrics.subscriptionDelivered, of("fine"))
      }, Effect.gen(function*() {
        const calc = yield* Client.make(Calculator)
        yield* calc.add({ a: 1, b: 2 })
        yield* Deferred.await(done)
        // the other two handlers run concurrently: wait until both settled
        for (let i = 0; i < 1000; i++) {
          const dead = yield* counter(Metrics.deadLetters, of("hopeless"))
          const flaky = yield* counter(Metrics.subscriptionDelivered, of("flaky"))
          if (dead > 0 && flaky > 0) break
          yield* Effect.yieldNow
        }
      }).pipe(Effect.provide(Layer.mergeAll(CalculatorLive(), SubsLive).pipe(Layer.provideMerge(MemoryBridge.layer)))))
      // the counters are process-wide: earlier runs of this test would only add, never subtract
      assert.deepStrictEqual(moved, {
        flakyDelivered: 1,
        flakyFailed: 1,
        flakyRetried: 1,
        flakyDead: 0,
        hopelessDelivered: 0,
        hopelessFailed: 2,
        hopelessRetried: 1,
        hopelessDead: 1,
        fineDelivered: 1
      })
      const lag = yield* Metric.value(Metric.withAttributes(Metrics.subscriptionLag, of("fine")))
      assert.strictEqual(lag.value, 0, "delivered at once on the test clock")
    }).pipe(quiet))
})
