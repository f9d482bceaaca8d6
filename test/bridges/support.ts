/** Helpers shared by the broker-specific bridge tests. */
import { assert } from "@effect/vitest"
import { Cause, type Context, Effect, Exit, Layer, Metric, Option, Queue, Schedule, Scope } from "effect"
import { Bridge, Codec, Event, Runtime, Service, Subscription, withContext } from "../../src/index.ts"
import { deadLetterWatcher } from "../../src/testing/robustness.ts"
import { Added, CalculatorLive } from "../fixtures.ts"

/** Takes `n` items from a queue, failing the test after `ms`. */
export const takeN = <A>(queue: Queue.Queue<A>, n: number, ms = 10_000) =>
  Effect.suspend(() => {
    const out: Array<A> = []
    return Effect.whileLoop({
      while: () => out.length < n,
      body: () => Queue.take(queue),
      step: (a) => void out.push(a)
    }).pipe(
      Effect.as(out),
      Effect.timeoutOrElse({ duration: ms, orElse: () => Effect.die(new Error(`got ${out.length} of ${n} items in ${ms} ms`)) })
    )
  })

/** Polls `check` until it returns true, failing the test after `ms`. */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, ms = 10_000) =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (ok) => ok }),
    Effect.timeoutOrElse({ duration: ms, orElse: () => Effect.die(new Error(`${what}: not true within ${ms} ms`)) }),
    Effect.asVoid
  )

/** The health of the bridge in `ctx`. */
export const health = (ctx: Context.Context<Bridge.Bridge>) => Effect.provide(Bridge.Bridge.use((b) => b.health), ctx)

/** A bridge built from `bridge`, serving the calculator (for tests that send it commands by hand). */
export const servingCalculator = <E>(bridge: Layer.Layer<Bridge.Bridge, E>) =>
  Effect.gen(function*() {
    const serving = yield* Layer.build(bridge)
    yield* Layer.build(CalculatorLive()).pipe(Effect.provide(serving))
    return serving
  })

/** `ok`, the tag of the typed error a call failed with, or `defect`. */
export const outcomeOf = (exit: Exit.Exit<unknown, { readonly _tag: string }>): string =>
  Exit.isSuccess(exit)
    ? "ok"
    : Option.match(Cause.findErrorOption(exit.cause), { onNone: () => "defect", onSome: (e) => e._tag })

/** A shared subscription to one event name with the `Added` payload. */
export const eventSub = (
  name: string,
  eventName: string,
  options: Partial<Subscription.SubscriptionOptions<typeof Added>> = {}
) => Subscription.make(name, { filter: { eventName }, payload: Added, delivery: "shared", ...options })

/** A CloudEvents command or event written by hand, as each bridge's wire document describes it. */
export const handWritten = (fields: Record<string, unknown>): string =>
  JSON.stringify({
    specversion: "1.0",
    id: crypto.randomUUID(),
    source: "raw-client",
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    correlationid: "raw-correlation",
    senderservice: "raw",
    senderversion: "0",
    ...fields
  })

/**
 * The bad-bytes scenario: a durable `robust` subscriber of `wire.check` and a dead-letter watcher.
 * A broker test puts `payloads` on the wire with a non-Herald client — not JSON, not an envelope,
 * a payload failing the schema, a good event — then runs `verify`: the good one is handled, the
 * three bad ones are dead-lettered, the two undecodable ones counted; each broker then checks on
 * its own side that all four were acknowledged.
 */
export const badBytes = Effect.gen(function*() {
  const Robust = Service.make("robust", "1", { subscriptions: [eventSub("wire", "wire.check", { durable: true })] })
  const Dlq = deadLetterWatcher("dlq")
  const got = yield* Queue.unbounded<number>()
  const letters = yield* Queue.unbounded<Subscription.DeadLetter>()
  const undecodable = Metric.withAttributes(Runtime.rejectedMessages, { reason: "undecodable", service: "robust" })
  const before = (yield* Metric.value(undecodable)).count
  const verify = Effect.gen(function*() {
    assert.deepStrictEqual(yield* takeN(got, 1), [42])
    const dead = yield* takeN(letters, 3)
    assert.deepInclude(dead.map((d) => d.event), { base64: Buffer.from("not json at all").toString("base64") })
    const schemaFailure = dead.find((d) => /payload fails the subscription's schema/.test(d.error))
    assert.isDefined(schemaFailure)
    assert.strictEqual(schemaFailure!.attempts, 0)
    assert.strictEqual((yield* Metric.value(undecodable)).count, before + 2)
  })
  return {
    robust: Service.toLayer(Robust, { wire: (p) => Queue.offer(got, p.sum) }),
    dlq: Service.toLayer(Dlq, { letters: (letter) => letter.service === "robust" ? Queue.offer(letters, letter) : Effect.void }),
    got,
    letters,
    payloads: [
      "not json at all",
      JSON.stringify({ specversion: "1.0", id: "x" }),
      handWritten({ type: "wire.check", heraldkind: "event", data: { sum: "seven" } }),
      handWritten({ type: "wire.check", heraldkind: "event", data: { sum: 42 } })
    ],
    verify
  }
})

/**
 * Two subscriptions on two event names × two tenants, one durable shared and one broadcast: publishes
 * events inside and outside their broker pre-filter and checks that each gets exactly the matching
 * ones. `tenants` are two tenants the filter names and one it does not (broker-special characters
 * welcome). The service is stopped when it returns; durable topology stays for the caller to inspect.
 */
export const preFilterRouting = (tenants: readonly [string, string, string]) =>
  Effect.scoped(Effect.gen(function*() {
    const [t1, t2, other] = tenants
    const filter = { eventName: ["route.one", "route.two.deep"], tenantId: [t1, t2] }
    const Router = Service.make("router", "1", {
      subscriptions: [
        Subscription.make("kept", { filter, payload: Added, delivery: "shared", durable: true }),
        Subscription.make("live", { filter, payload: Added, delivery: "broadcast" })
      ]
    })
    const kept = yield* Queue.unbounded<number>()
    const live = yield* Queue.unbounded<number>()
    yield* Layer.build(Service.toLayer(Router, { kept: (p) => Queue.offer(kept, p.sum), live: (p) => Queue.offer(live, p.sum) }))
    const cases: Array<[string, string | undefined, number]> = [
      ["route.one", t1, 1],
      ["route.two.deep", t2, 2],
      ["route.one", undefined, -1],
      ["route.three", t2, -2],
      ["route.one", other, -3],
      ["route.two", t1, -4],
      ["route.two.deep", t1, 3]
    ]
    for (const [name, tenantId, sum] of cases) {
      yield* Event.publish(Event.make(name, Added), { sum }).pipe(withContext({ tenantId }))
    }
    assert.deepStrictEqual((yield* takeN(kept, 3)).sort(), [1, 2, 3])
    assert.deepStrictEqual((yield* takeN(live, 3)).sort(), [1, 2, 3])
    yield* Effect.sleep("300 millis")
    assert.strictEqual(yield* Queue.size(kept), 0)
    assert.strictEqual(yield* Queue.size(live), 0)
  }))

/**
 * A durable shared subscription (`keeper` on `durable.tick`) whose service can be started and
 * stopped, each start with its own bridge (a new process as far as the broker knows), and a
 * publisher with a bridge of its own. Deliveries arrive on `got`.
 */
export const durableKeeper = <E>(bridge: () => Layer.Layer<Bridge.Bridge, E>) =>
  Effect.gen(function*() {
    const Tick = Event.make("durable.tick", Added)
    const Keeper = Service.make("keeper", "1", { subscriptions: [eventSub("ticks", "durable.tick", { durable: true })] })
    const got = yield* Queue.unbounded<{ readonly sum: number; readonly deliveryCount: number }>()
    const publisher = yield* Layer.build(bridge())
    const publish = (sum: number) => Event.publish(Tick, { sum }).pipe(Effect.provide(publisher))
    const start = Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        Service.toLayer(Keeper, { ticks: (p, info) => Queue.offer(got, { sum: p.sum, deliveryCount: info.deliveryCount }) })
          .pipe(Layer.provide(bridge())),
        scope
      )
      return scope
    })
    return { got, publish, start }
  })

/**
 * Publishes a durable event, stops the instance handling it while its handler is still running
 * (drain timeout 100 ms, so the handler is interrupted), starts a new instance and returns the
 * event's redelivery. `stopping` is the bridge of the instance that is stopped.
 */
export const redeliveryAfterInterruptedShutdown = <E>(
  bridge: () => Layer.Layer<Bridge.Bridge, E>,
  stopping: () => Layer.Layer<Bridge.Bridge, E> = bridge
) =>
  Effect.gen(function*() {
    const Slow = Service.make("slow", "1", { subscriptions: [eventSub("work", "slow.job", { durable: true })] })
    const started = yield* Queue.unbounded<void>()
    const got = yield* Queue.unbounded<{ readonly sum: number; readonly deliveryCount: number }>()
    const scope = yield* Scope.make()
    yield* Layer.buildWithScope(
      Service.toLayer(Slow, { work: () => Effect.andThen(Queue.offer(started, undefined), Effect.never) }, {
        drainTimeout: "100 millis"
      }).pipe(Layer.provide(stopping())),
      scope
    )
    const publisher = yield* Layer.build(bridge())
    yield* Event.publish(Event.make("slow.job", Added), { sum: 5 }).pipe(Effect.provide(publisher))
    yield* takeN(started, 1)
    yield* Scope.close(scope, Exit.void)
    yield* Layer.build(
      Service.toLayer(Slow, { work: (p, info) => Queue.offer(got, { sum: p.sum, deliveryCount: info.deliveryCount }) })
        .pipe(Layer.provide(bridge()))
    )
    const [again] = yield* takeN(got, 1)
    return again!
  })

/** An event as the runtime encodes it (an anonymous publisher). */
export const eventBytes = (eventName: string, data: unknown) => {
  const id = crypto.randomUUID()
  return Codec.json.encode({
    id,
    kind: "event",
    type: eventName,
    source: "herald:client/0",
    time: Date.now(),
    correlationId: id,
    sender: { service: "client", version: "0" },
    data: data as never
  })
}

/** A command to `address` as the runtime encodes it (an anonymous caller), expiring in 5 s. */
export const commandBytes = (address: { readonly service: string; readonly version: string; readonly command: string }, data: unknown) => {
  const now = Date.now()
  return Codec.json.encode({
    id: crypto.randomUUID(),
    kind: "command",
    type: address.command,
    source: "herald:client/0",
    time: now,
    correlationId: crypto.randomUUID(),
    sender: { service: "client", version: "0" },
    receiver: { service: address.service, version: address.version },
    expiresAt: now + 5_000,
    data: data as never
  })
}
