/**
 * The bridge conformance suite: one behavioural suite, parametrised by a bridge Layer, that every
 * bridge must pass on a real broker. It exercises DESIGN §3 through the public API (services,
 * clients, events, subscriptions) with real time, so it runs unchanged on any broker.
 *
 * @example
 * // test/bridges/Nats.test.ts
 * BridgeSuite.run("nats", NatsBridge.layer({ servers: "127.0.0.1:4222" }))
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Metric, Queue, Ref, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { Bridge } from "../Bridge.ts"
import type { BridgeError } from "../BridgeError.ts"
import * as Client from "../Client.ts"
import * as Codec from "../Codec.ts"
import * as Command from "../Command.ts"
import * as Discovery from "../Discovery.ts"
import * as Event from "../Event.ts"
import * as Filter from "../Filter.ts"
import { withContext } from "../MessageContext.ts"
import * as Runtime from "../Runtime.ts"
import * as Service from "../Service.ts"
import * as Subscription from "../Subscription.ts"
import * as Robustness from "./robustness.ts"
import * as Routing from "./routing.ts"

/** Options of the suite. */
export interface SuiteOptions {
  /** How long to wait for a message that must arrive (default 5 s). */
  readonly deliveryTimeout?: Duration.Input | undefined
  /** How long to keep listening for messages that must NOT arrive (default 150 ms). */
  readonly quietPeriod?: Duration.Input | undefined
  /** Runs of the routing property test (default 25). */
  readonly routingRuns?: number | undefined
  /** Skip the durable tests (for a bridge without the capability). Default false. */
  readonly skipDurable?: boolean | undefined
}

/** A fresh name per test, so runs never meet leftovers on a shared broker. */
const unique = (base: string) => `${base}-${Math.random().toString(36).slice(2, 8)}`

/** Takes exactly `n` items, failing the test if they do not arrive in time. */
const takeN = <A>(queue: Queue.Queue<A>, n: number, within: Duration.Input) =>
  Effect.forEach(Array.from({ length: n }), () => Queue.take(queue)).pipe(
    Effect.timeoutOrElse({
      duration: within,
      orElse: () => Effect.die(new Error(`expected ${n} deliveries within ${Duration.format(Duration.fromInputUnsafe(within))}`))
    })
  )

const Ping = Schema.Struct({ n: Schema.Int })
const PingEvent = (name: string) => Event.make(name, Ping)

class Refused extends Schema.TaggedError<Refused>()("Refused", { n: Schema.Int }) {}

/** A service the bridge under test is built without; only the services' layers provide it. */
class Greeting extends Context.Service<Greeting, string>()("herald/testing/Greeting") {}

const echoContract = (name: string) =>
  Service.make(name, "1", {
    commands: [
      Command.make("echo", { input: Ping, output: Ping, errors: [Refused] }),
      Command.make("hang", { input: Schema.Struct({}), output: Schema.Struct({}) }),
      Command.make("crash", { input: Schema.Struct({}), output: Schema.Struct({}) })
    ]
  })

/** Registers the suite for one bridge under `describe(name)`. */
export const run = (name: string, bridge: Layer.Layer<Bridge, BridgeError>, options: SuiteOptions = {}): void => {
  const within = options.deliveryTimeout ?? "5 seconds"
  const quiet = options.quietPeriod ?? "150 millis"
  const withBridge = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.scoped(Effect.flatMap(Layer.build(bridge), (ctx) => Effect.provide(effect, ctx)))

  describe(`BridgeSuite: ${name}`, () => {
    it.live("each command is handled by exactly one of K instances", () =>
      withBridge(Effect.gen(function*() {
        assert.strictEqual(yield* Bridge.use((b) => b.health), "connected")
        const Echo = echoContract(unique("echo"))
        const executions = yield* Ref.make(new Map<number, number>())
        const instance = () =>
          Service.toLayer(Echo, {
            echo: ({ n }) =>
              Effect.as(Ref.update(executions, (m) => new Map(m).set(n, (m.get(n) ?? 0) + 1)), { n: n * 2 }),
            hang: () => Effect.never,
            crash: () => Effect.die("boom")
          })
        yield* Layer.build(Layer.mergeAll(instance(), instance(), instance()))
        const echo = yield* Client.make(Echo, { timeout: within })
        const results = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (n) => echo.echo({ n }), {
          concurrency: 16
        })
        assert.deepStrictEqual(results.map((r) => r.n), Array.from({ length: 40 }, (_, i) => i * 2))
        const counts = yield* Ref.get(executions)
        assert.strictEqual(counts.size, 40)
        assert.isTrue([...counts.values()].every((c) => c === 1), "every call executed exactly once")
        assert.strictEqual(yield* Bridge.use((b) => b.pendingRequests), 0)
      })))

    it.live("declared errors, defects, invalid input and missing responders are typed errors", () =>
      withBridge(Effect.gen(function*() {
        const Echo = echoContract(unique("echo"))
        yield* Layer.build(Service.toLayer(Echo, {
          echo: ({ n }) => n < 0 ? Effect.fail(new Refused({ n })) : Effect.succeed({ n }),
          hang: () => Effect.never,
          crash: () => Effect.die(new Error("internal detail"))
        }))
        const echo = yield* Client.make(Echo, { timeout: within })
        const refused = yield* Effect.flip(echo.echo({ n: -3 }))
        assert.strictEqual(refused._tag, "Refused")
        assert.strictEqual(refused._tag === "Refused" && refused.n, -3)
        const defect = yield* Effect.flip(echo.crash({}))
        assert.strictEqual(defect._tag, "RemoteDefect")
        assert.notInclude(JSON.stringify(defect) + defect.message, "internal detail")
        assert.strictEqual((yield* Effect.flip(echo.echo({ n: 1.5 })))._tag, "InvalidInput")
        assert.deepStrictEqual(yield* echo.echo({ n: 4 }), { n: 4 }, "the service goes on after a defect")

        const Nobody = echoContract(unique("nobody"))
        const nobody = yield* Client.make(Nobody, { timeout: "30 seconds" })
        const start = yield* Clock.currentTimeMillis
        assert.strictEqual((yield* Effect.flip(nobody.echo({ n: 1 })))._tag, "NoResponder")
        assert.isBelow((yield* Clock.currentTimeMillis) - start, 1_000, "NoResponder comes at once, not at the timeout")
        assert.strictEqual(yield* Bridge.use((b) => b.pendingRequests), 0)
      })))

    // Under the TestClock: the deadline passes only when the test says so, while messages really
    // cross the broker. No real time is spent waiting for the timeout.
    it.effect("a call ends with Timeout at its deadline and the handler is interrupted there", () =>
      withBridge(Effect.gen(function*() {
        const Echo = echoContract(unique("echo"))
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        yield* Layer.build(Service.toLayer(Echo, {
          echo: ({ n }) => Effect.succeed({ n }),
          hang: () =>
            Deferred.succeed(started, undefined).pipe(
              Effect.andThen(Effect.never),
              Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
            ),
          crash: () => Effect.succeed({})
        }))
        const echo = yield* Client.make(Echo)
        const call = yield* Effect.forkChild(Effect.flip(echo.hang({}, { timeout: "10 seconds" })))
        yield* Deferred.await(started)
        yield* TestClock.adjust("9999 millis")
        assert.isUndefined(call.pollUnsafe(), "no result before the deadline")
        yield* TestClock.adjust("1 millis")
        const error = yield* Fiber.join(call)
        assert.strictEqual(error._tag, "Timeout")
        yield* Deferred.await(interrupted)
        assert.strictEqual(yield* Bridge.use((b) => b.pendingRequests), 0)
      })))

    it.live("a command that arrives after its deadline is dropped", () =>
      withBridge(Effect.gen(function*() {
        const Echo = echoContract(unique("echo"))
        const ran = yield* Ref.make(0)
        yield* Layer.build(Service.toLayer(Echo, {
          echo: ({ n }) => Effect.as(Ref.update(ran, (x) => x + 1), { n }),
          hang: () => Effect.never,
          crash: () => Effect.succeed({})
        }))
        const expired = Metric.withAttributes(Runtime.rejectedMessages, { reason: "expired", service: Echo.name })
        const before = (yield* Metric.value(expired)).count
        const now = yield* Clock.currentTimeMillis
        const bytes = Codec.json.encode({
          id: unique("late"),
          kind: "command",
          type: "echo",
          source: "herald:client/0",
          time: now - 2_000,
          correlationId: "late",
          sender: Runtime.ANONYMOUS,
          receiver: { service: Echo.name, version: "1" },
          expiresAt: now - 1_000,
          data: { n: 1 }
        })
        const reply = yield* Bridge.use((b) => b.request({ service: Echo.name, version: "1", command: "echo" }, bytes, now - 1_000))
          .pipe(Effect.timeoutOption(Duration.sum(Duration.fromInputUnsafe(quiet), Duration.millis(300))))
        assert.isTrue(reply._tag === "None", "no reply to an expired command")
        assert.strictEqual(yield* Ref.get(ran), 0)
        assert.strictEqual((yield* Metric.value(expired)).count, before + 1)
        assert.strictEqual(yield* Bridge.use((b) => b.pendingRequests), 0)
      })))

    it.live("shared delivery reaches one instance per group, broadcast reaches every instance", () =>
      withBridge(Effect.gen(function*() {
        const event = PingEvent(unique("ping"))
        const got = yield* Queue.unbounded<{ group: string; instance: number; n: number }>()
        const sub = (delivery: "shared" | "broadcast") =>
          Subscription.make("pings", { filter: { eventName: event.name }, payload: Ping, delivery })
        const Shared = Service.make(unique("shared"), "1", { subscriptions: [sub("shared")] })
        const Broad = Service.make(unique("broad"), "1", { subscriptions: [sub("broadcast")] })
        const instances = [0, 1, 2].flatMap((i) => [
          Service.toLayer(Shared, { pings: (p) => Queue.offer(got, { group: "shared", instance: i, n: p.n }) }),
          Service.toLayer(Broad, { pings: (p) => Queue.offer(got, { group: "broadcast", instance: i, n: p.n }) })
        ])
        yield* Layer.build(Layer.mergeAll(instances[0]!, ...instances.slice(1)))
        for (let n = 0; n < 10; n++) yield* Event.publish(event, { n })
        const deliveries = yield* takeN(got, 10 + 30, within)
        yield* Effect.sleep(quiet)
        assert.strictEqual(yield* Queue.size(got), 0, "no extra deliveries")
        for (let n = 0; n < 10; n++) {
          assert.strictEqual(deliveries.filter((d) => d.group === "shared" && d.n === n).length, 1)
          const broad = deliveries.filter((d) => d.group === "broadcast" && d.n === n).map((d) => d.instance)
          assert.deepStrictEqual(broad.sort(), [0, 1, 2])
        }
      })))

    it.live("a failing handler is retried with the subscription's schedule, then dead-lettered", () =>
      withBridge(Effect.gen(function*() {
        const event = PingEvent(unique("ping"))
        const attempts = yield* Ref.make(0)
        const letters = yield* Queue.unbounded<Subscription.DeadLetter>()
        const Fragile = Service.make(unique("fragile"), "1", {
          subscriptions: [Subscription.make("fragile", {
            filter: { eventName: event.name },
            payload: Ping,
            delivery: "shared",
            retry: Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 2 }))
          })]
        })
        const Dlq = Robustness.deadLetterWatcher(unique("dlq"), Fragile.name)
        yield* Layer.build(Layer.mergeAll(
          Service.toLayer(Fragile, { fragile: () => Effect.andThen(Ref.update(attempts, (n) => n + 1), Effect.fail("nope")) }),
          Service.toLayer(Dlq, { letters: (letter) => Queue.offer(letters, letter) })
        ))
        yield* Event.publish(event, { n: 1 })
        const [letter] = yield* takeN(letters, 1, within)
        assert.strictEqual(letter!.attempts, 3)
        assert.strictEqual(yield* Ref.get(attempts), 3)
        assert.include(letter!.error, "nope")
        assert.deepStrictEqual((letter!.event as { data?: unknown }).data, { n: 1 })
      })))

    if (options.skipDurable !== true) {
      it.live("a durable subscription gets the events published while its service was down", () =>
        withBridge(Effect.gen(function*() {
          const event = PingEvent(unique("ping"))
          const got = yield* Queue.unbounded<number>()
          const Keeper = Service.make(unique("keeper"), "1", {
            subscriptions: [Subscription.make("keep", {
              filter: { eventName: event.name },
              payload: Ping,
              delivery: "shared",
              durable: true
            })]
          })
          const start = Effect.gen(function*() {
            const scope = yield* Scope.make()
            yield* Layer.buildWithScope(Service.toLayer(Keeper, { keep: (p) => Queue.offer(got, p.n) }), scope)
            return scope
          })
          const first = yield* start
          yield* Event.publish(event, { n: 0 })
          assert.deepStrictEqual(yield* takeN(got, 1, within), [0])
          yield* Scope.close(first, Exit.void)
          for (let n = 1; n <= 5; n++) yield* Event.publish(event, { n })
          const second = yield* start
          const later = yield* takeN(got, 5, within)
          assert.deepStrictEqual([...later].sort(), [1, 2, 3, 4, 5])
          yield* Scope.close(second, Exit.void)
        })))
    }

    it.live("handlers run with the services their service was built with, not the bridge's", () =>
      withBridge(Effect.gen(function*() {
        const event = PingEvent(unique("ping"))
        const got = yield* Queue.unbounded<string>()
        const Echo = echoContract(unique("echo"))
        const Greeter = Service.make(unique("greeter"), "1", {
          subscriptions: (options.skipDurable === true ? [false] : [false, true]).map((durable) =>
            Subscription.make(durable ? "durable" : "plain", {
              filter: { eventName: event.name },
              payload: Ping,
              delivery: "shared",
              durable
            })
          )
        })
        // provided to the services only: the bridge was built without it
        const greeting = Layer.succeed(Greeting, "hello")
        const heard = (which: string) => (p: { readonly n: number }) =>
          Effect.flatMap(Effect.service(Greeting), (g) => Queue.offer(got, `${which} ${g} ${p.n}`))
        yield* Layer.build(Layer.mergeAll(
          Service.toLayer(Echo, {
            echo: ({ n }) => Effect.map(Effect.service(Greeting), (g) => ({ n: n + g.length })),
            hang: () => Effect.never,
            crash: () => Effect.die("crash")
          }),
          Service.toLayer(Greeter, { plain: heard("plain"), durable: heard("durable") })
        ).pipe(Layer.provide(greeting)))
        const echo = yield* Client.make(Echo, { timeout: within })
        assert.deepStrictEqual(yield* echo.echo({ n: 1 }), { n: 6 })
        yield* Event.publish(event, { n: 2 })
        const heardAll = yield* takeN(got, options.skipDurable === true ? 1 : 2, within)
        assert.deepStrictEqual(
          [...heardAll].sort(),
          options.skipDurable === true ? ["plain hello 2"] : ["durable hello 2", "plain hello 2"]
        )
      })))

    it.live("discovery lists the live instances with their contracts and forgets a stopped one", () =>
      withBridge(Effect.gen(function*() {
        const Echo = echoContract(unique("found"))
        const handlers = {
          echo: (p: { readonly n: number }) => Effect.succeed(p),
          hang: () => Effect.never,
          crash: () => Effect.die("crash")
        }
        const first = yield* Scope.make()
        yield* Layer.buildWithScope(Service.toLayer(Echo, handlers), first)
        yield* Layer.build(Service.toLayer(Echo, handlers))
        yield* Layer.build(Service.toLayer(Echo, handlers, { discovery: false }))
        const listWithin = Duration.sum(Duration.fromInputUnsafe(quiet), Duration.millis(350))
        const live = yield* Discovery.list({ within: listWithin, service: Echo.name })
        assert.strictEqual(live.length, 2)
        assert.strictEqual(new Set(live.map((i) => i.instance)).size, 2)
        assert.deepStrictEqual(live[0]!.commands.map((c) => c.name), ["echo", "hang", "crash"])
        assert.deepStrictEqual(live[0]!.commands[0]!.input["required"], ["n"])
        // the reserved discovery subscription leaves user traffic alone: a call still works
        const echo = yield* Client.make(Echo, { timeout: within })
        assert.deepStrictEqual(yield* echo.echo({ n: 7 }), { n: 7 })
        yield* Scope.close(first, Exit.void)
        const after = yield* Discovery.list({ within: listWithin, service: Echo.name })
        assert.strictEqual(after.length, 1)
        assert.include(live.map((i) => i.instance), after[0]!.instance)
      })))

    it.live("routing: deliveries equal exactly the set the pure Filter model predicts", () =>
      withBridge(Effect.gen(function*() {
        const context = yield* Effect.context<Bridge>()
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(Routing.scenario, (scenario) =>
              Effect.runPromise(Effect.scoped(routingRun(scenario, within, quiet)).pipe(Effect.provide(context)))
            ),
            { numRuns: options.routingRuns ?? 25, endOnFailure: true }
          )
        )
      })), 120_000)

    Robustness.register({ withBridge, within, quiet, skipDurable: options.skipDurable === true })
  })
}

const routingRun = (scenario: Routing.Scenario, within: Duration.Input, quiet: Duration.Input) =>
  Effect.gen(function*() {
    const run = unique("r")
    const got = yield* Queue.unbounded<{ sub: number; id: number }>()
    const services = scenario.filters.map((filter, i) => {
      const contract = Service.make(`${run}-s${i}`, "1", {
        subscriptions: [Subscription.make("watch", {
          filter: Routing.scope(filter, run),
          payload: Routing.Payload,
          delivery: "shared"
        })]
      })
      return Service.toLayer(contract, { watch: (p) => Queue.offer(got, { sub: i, id: p.id }) })
    })
    yield* Layer.build(Layer.mergeAll(services[0]!, ...services.slice(1)))
    const expected: Array<string> = []
    for (const [id, e] of scenario.events.entries()) {
      const event = Event.make(e.eventName, Routing.Payload)
      const data = { ...e.data, id, run }
      yield* Event.publish(event, data).pipe(
        withContext({ tenantId: e.tenantId, principalId: e.principalId, self: { service: e.sender, version: "1" } })
      )
      scenario.filters.forEach((filter, sub) => {
        const target = {
          eventName: event.name,
          sender: { service: e.sender, version: "1" },
          tenantId: e.tenantId,
          principalId: e.principalId,
          data
        }
        if (Filter.matches(Filter.compile(Routing.scope(filter, run)), target)) expected.push(`${sub}:${id}`)
      })
    }
    const observed = (yield* takeN(got, expected.length, within)).map((d) => `${d.sub}:${d.id}`)
    yield* Effect.sleep(quiet)
    const extra = (yield* Queue.clear(got)).map((d) => `${d.sub}:${d.id}`)
    assert.deepStrictEqual([...observed, ...extra].sort(), [...expected].sort())
  })
