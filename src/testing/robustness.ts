/**
 * The bad-day scenarios of the bridge conformance suite: tenant isolation, slow and failing
 * consumers, graceful shutdown under load and the maximum message size. `BridgeSuite.run` registers
 * them for every bridge, so each runs unchanged on memory, NATS, MQTT and AMQP.
 */
import { assert, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Queue, Ref, Schedule, Schema, Scope } from "effect"
import * as fc from "fast-check"
import { Bridge } from "../Bridge.ts"
import { isCallError } from "../BridgeError.ts"
import * as Client from "../Client.ts"
import * as Codec from "../Codec.ts"
import * as Command from "../Command.ts"
import * as Event from "../Event.ts"
import { withContext } from "../MessageContext.ts"
import { MaxMessageBytes } from "../MessageSize.ts"
import * as Runtime from "../Runtime.ts"
import * as Service from "../Service.ts"
import * as Subscription from "../Subscription.ts"

/** What the scenarios need from the suite. */
export interface Setup {
  /** Runs an effect with a freshly built bridge, closed afterwards. */
  readonly withBridge: <A, E>(effect: Effect.Effect<A, E, Bridge | Scope.Scope>) => Effect.Effect<A, unknown>
  readonly within: Duration.Input
  readonly quiet: Duration.Input
  readonly skipDurable: boolean
}

/** Events a blocked subscriber may hold unsettled on any bridge with default settings (see the README). */
export const DEFAULT_IN_FLIGHT_BOUND = 256

/** A service whose one subscription, `letters`, gets the dead letters of `sender` (of every service when omitted). */
export const deadLetterWatcher = (name: string, sender?: string) =>
  Service.make(name, "1", {
    subscriptions: [Subscription.make("letters", {
      filter: { eventName: Subscription.DEAD_LETTER, ...(sender === undefined ? {} : { sender: { service: sender } }) },
      payload: Subscription.DeadLetter,
      delivery: "shared"
    })]
  })

const unique = (base: string) => `${base}-${Math.random().toString(36).slice(2, 8)}`

const Job = Schema.Struct({ n: Schema.Int, pad: Schema.optionalKey(Schema.String) })

/** Polls `check` until it holds, failing the test after `within`. */
const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, within: Duration.Input) =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (ok) => ok }),
    Effect.timeoutOrElse({ duration: within, orElse: () => Effect.die(new Error(`${what}: not true in time`)) }),
    Effect.asVoid
  )

/** Polls `value` until it has not changed for `quiet`, and returns it. */
const settled = <A, E, R>(value: Effect.Effect<A, E, R>, quiet: Duration.Input) =>
  Effect.gen(function*() {
    let last = yield* value
    while (true) {
      yield* Effect.sleep(quiet)
      const now = yield* value
      if (now === last) return now
      last = now
    }
  })

const rejected = (reason: string, service: string) =>
  Effect.map(
    Metric.value(Metric.withAttributes(Runtime.rejectedMessages, { reason, service })),
    (state) => state.count
  )

/** Tenant ids meant to break a subject, topic or routing key, and arbitrary ones. */
const tenant = fc.oneof(
  fc.constantFrom("", ".", "*", ">", "#", "+", "/", "$", " ", "a.b", "a.*", "a/#", "_", "_002e", "__", "~", "ü", "租户", "😀"),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 6 }),
  fc.stringMatching(/^[a-z0-9.*>#+\/$_~ -]{1,70}$/)
)

/** Registers the robustness scenarios (inside the suite's `describe`). */
export const register = (setup: Setup): void => {
  const { withBridge, within, quiet } = setup

  it.live("isolation: a subscription filtered on tenant T never receives another tenant's event", () =>
    withBridge(Effect.gen(function*() {
      const context = yield* Effect.context<Bridge>()
      const scenario = fc.record({
        tenants: fc.uniqueArray(tenant, { minLength: 2, maxLength: 4 }),
        events: fc.array(fc.nat(), { minLength: 1, maxLength: 12 })
      })
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(scenario, ({ tenants, events }) =>
            Effect.runPromise(Effect.scoped(Effect.gen(function*() {
              const event = Event.make(unique("tenant.event"), Job)
              const got = yield* Queue.unbounded<{ readonly sub: number; readonly n: number; readonly tenant: unknown }>()
              const layers = tenants.map((t, i) =>
                Service.toLayer(
                  Service.make(unique(`tenant${i}`), "1", {
                    subscriptions: [Subscription.make("mine", {
                      filter: { eventName: event.name, tenantId: t },
                      payload: Job,
                      delivery: "shared"
                    })]
                  }),
                  { mine: (p, info) => Queue.offer(got, { sub: i, n: p.n, tenant: info.tenantId }) }
                )
              )
              yield* Layer.build(Layer.mergeAll(layers[0]!, ...layers.slice(1)))
              const expected: Array<string> = []
              for (const [n, pick] of events.entries()) {
                const t = tenants[pick % tenants.length]!
                yield* Event.publish(event, { n }).pipe(withContext({ tenantId: t }))
                expected.push(`${pick % tenants.length}:${n}`)
              }
              const observed: Array<string> = []
              for (let i = 0; i < expected.length; i++) {
                const d = yield* Queue.take(got).pipe(
                  Effect.timeoutOrElse({ duration: within, orElse: () => Effect.die(new Error("a delivery is missing")) })
                )
                assert.strictEqual(d.tenant, tenants[d.sub], "each subscription sees only its tenant")
                observed.push(`${d.sub}:${d.n}`)
              }
              yield* Effect.sleep(quiet)
              const extra = yield* Queue.clear(got)
              assert.deepStrictEqual(extra, [], "no delivery to another tenant's subscription")
              assert.deepStrictEqual(observed.sort(), expected.sort())
            })).pipe(Effect.provide(context)))
          ),
          { numRuns: 8, endOnFailure: true }
        )
      )
    })), 120_000)

  it.live("slow consumer: handlers in flight never exceed the concurrency, and nothing is lost", () =>
    withBridge(Effect.gen(function*() {
      const event = Event.make(unique("slow.job"), Job)
      const running = yield* Ref.make({ now: 0, max: 0 })
      const got = yield* Queue.unbounded<number>()
      const Slow = Service.make(unique("slow"), "1", {
        subscriptions: [Subscription.make("work", {
          filter: { eventName: event.name },
          payload: Job,
          delivery: "shared",
          durable: !setup.skipDurable,
          concurrency: 3
        })]
      })
      yield* Layer.build(Service.toLayer(Slow, {
        work: ({ n }) =>
          Ref.update(running, (r) => ({ now: r.now + 1, max: Math.max(r.max, r.now + 1) })).pipe(
            Effect.andThen(Effect.sleep("2 millis")),
            Effect.andThen(Ref.update(running, (r) => ({ ...r, now: r.now - 1 }))),
            Effect.andThen(Queue.offer(got, n))
          )
      }))
      const total = 300
      yield* Effect.forEach(Array.from({ length: total }, (_, n) => n), (n) => Event.publish(event, { n }), {
        concurrency: 32
      })
      const seen = new Set<number>()
      yield* Effect.whileLoop({ while: () => seen.size < total, body: () => Queue.take(got), step: (n) => void seen.add(n) })
        .pipe(Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.die(new Error(`${seen.size} of ${total}`)) }))
      const { max, now } = yield* Ref.get(running)
      assert.isAtMost(max, 3, "never more handlers in flight than the concurrency")
      assert.strictEqual(now, 0)
    })), 60_000)

  if (!setup.skipDurable) {
    it.live("slow consumer: a blocked durable subscriber holds a bounded number of events; the rest wait at the broker", () =>
      withBridge(Effect.gen(function*() {
        const bridge = yield* Bridge
        const eventName = unique("held.job")
        const event = Event.make(eventName, Job)
        const gate = yield* Deferred.make<void>()
        const handed = yield* Ref.make(0)
        const done = yield* Ref.make(new Set<number>())
        yield* bridge.subscribe({
          service: unique("held"),
          version: "1",
          instance: Runtime.newId(),
          subscription: "held",
          delivery: "shared",
          durable: true,
          eventNames: [eventName]
        }, (message) =>
          Ref.update(handed, (n) => n + 1).pipe(
            Effect.andThen(Deferred.await(gate)),
            Effect.andThen(Effect.sync(() => Codec.json.decode(message.bytes))),
            Effect.flatMap((decoded) =>
              decoded._tag === "Success"
                ? Ref.update(done, (s) => new Set(s).add((decoded.success.data as { n: number }).n))
                : Effect.void
            )
          ))
        const total = DEFAULT_IN_FLIGHT_BOUND + 150
        yield* Effect.forEach(Array.from({ length: total }, (_, n) => n), (n) => Event.publish(event, { n }), {
          concurrency: 32
        })
        yield* eventually("the subscriber was handed events", Effect.map(Ref.get(handed), (n) => n > 0), within)
        const held = yield* settled(Ref.get(handed), Duration.sum(Duration.fromInputUnsafe(quiet), Duration.millis(200)))
        assert.isAtMost(held, DEFAULT_IN_FLIGHT_BOUND, "a blocked subscriber is handed a bounded number of events")
        yield* Deferred.succeed(gate, undefined)
        yield* eventually("every event arrived once the subscriber caught up", Effect.map(Ref.get(done), (s) => s.size === total), "30 seconds")
      })), 60_000)
  }

  it.live(`slow consumer: a blocked non-durable subscriber buffers at most ${Runtime.NON_DURABLE_BUFFER} events; the rest are dropped and counted`, () =>
    withBridge(Effect.gen(function*() {
      const event = Event.make(unique("burst.job"), Job)
      const gate = yield* Deferred.make<void>()
      const handled = yield* Ref.make(0)
      const Burst = Service.make(unique("burst"), "1", {
        subscriptions: [Subscription.make("work", {
          filter: { eventName: event.name },
          payload: Job,
          delivery: "shared",
          concurrency: 1
        })]
      })
      yield* Layer.build(Service.toLayer(Burst, {
        work: () => Effect.andThen(Deferred.await(gate), Ref.update(handled, (n) => n + 1))
      }))
      const total = Runtime.NON_DURABLE_BUFFER + 1 + 143
      yield* Effect.forEach(Array.from({ length: total }, (_, n) => n), (n) => Event.publish(event, { n }), {
        concurrency: 16
      })
      yield* eventually("the overflow was counted", Effect.map(rejected("overflow", Burst.name), (n) => n === 143), within)
      yield* Deferred.succeed(gate, undefined)
      yield* eventually("the buffered events were handled", Effect.map(Ref.get(handled), (n) => n === total - 143), within)
      yield* Effect.sleep(quiet)
      assert.strictEqual(yield* Ref.get(handled), 1 + Runtime.NON_DURABLE_BUFFER, "one running, the buffer, nothing more")
      assert.strictEqual(yield* rejected("overflow", Burst.name), 143, "every dropped event is counted")
    })), 60_000)

  it.live("poison message: dead-lettered after its retries while the events behind it are handled", () =>
    withBridge(Effect.gen(function*() {
      const event = Event.make(unique("poison.job"), Job)
      const log = yield* Queue.unbounded<string>()
      const Consumer = Service.make(unique("poisoned"), "1", {
        subscriptions: [Subscription.make("work", {
          filter: { eventName: event.name },
          payload: Job,
          delivery: "shared",
          durable: !setup.skipDurable,
          concurrency: 4,
          retry: Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 3 }))
        })]
      })
      const Dlq = deadLetterWatcher(unique("dlq"), Consumer.name)
      yield* Layer.build(Layer.mergeAll(
        Service.toLayer(Consumer, {
          work: ({ n }, info) =>
            n === 0
              ? Effect.andThen(Queue.offer(log, `poison attempt ${info.attempt}`), Effect.fail("poison"))
              : Queue.offer(log, `ok ${n}`)
        }),
        Service.toLayer(Dlq, { letters: (letter) => Queue.offer(log, `dead letter after ${letter.attempts}`) })
      ))
      yield* Event.publish(event, { n: 0 })
      for (let n = 1; n <= 20; n++) yield* Event.publish(event, { n })
      const entries: Array<string> = []
      yield* Effect.whileLoop({
        while: () => !entries.some((e) => e.startsWith("dead letter")),
        body: () => Queue.take(log),
        step: (e) => void entries.push(e)
      }).pipe(Effect.timeoutOrElse({ duration: within, orElse: () => Effect.die(new Error(entries.join(", "))) }))
      assert.strictEqual(entries.at(-1), "dead letter after 4")
      const lastAttempt = entries.indexOf("poison attempt 4")
      assert.isAbove(lastAttempt, 0)
      const goodBefore = entries.slice(0, lastAttempt).filter((e) => e.startsWith("ok ")).length
      assert.strictEqual(goodBefore, 20, `every later event was handled before the poison's retries ended: ${entries.join(", ")}`)
    })), 30_000)

  it.live("graceful shutdown under load: calls reply or fail typed, durable events are handled or redelivered", () =>
    withBridge(Effect.gen(function*() {
      const event = Event.make(unique("drain.job"), Job)
      const Worker = Service.make(unique("worker"), "1", {
        commands: [Command.make("work", { input: Job, output: Job })],
        subscriptions: [Subscription.make("jobs", {
          filter: { eventName: event.name },
          payload: Job,
          delivery: "shared",
          durable: !setup.skipDurable,
          concurrency: 4
        })]
      })
      const handled = yield* Ref.make(new Set<number>())
      const started = yield* Queue.unbounded<number>()
      const handlers = {
        work: ({ n }: { readonly n: number }) => Effect.as(Effect.sleep("150 millis"), { n }),
        jobs: ({ n }: { readonly n: number }) =>
          Queue.offer(started, n).pipe(
            Effect.andThen(Effect.sleep("150 millis")),
            Effect.andThen(Ref.update(handled, (s) => new Set(s).add(n)))
          )
      }
      const drainTimeout = Duration.seconds(2)
      const first = yield* Scope.make()
      yield* Layer.buildWithScope(Service.toLayer(Worker, handlers, { drainTimeout }), first)
      const client = yield* Client.make(Worker, { timeout: "5 seconds" })
      const total = 24
      for (let n = 0; n < total; n++) yield* Event.publish(event, { n })
      const calls = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 12 }, (_, n) => n), (n) => Effect.exit(client.work({ n })), { concurrency: 12 })
      )
      yield* Queue.take(started)
      yield* Effect.sleep("20 millis")
      const closing = yield* Clock.currentTimeMillis
      yield* Scope.close(first, Exit.void)
      const closedIn = (yield* Clock.currentTimeMillis) - closing
      assert.isBelow(closedIn, Duration.toMillis(drainTimeout) + 1_000, "close completes within drainTimeout + grace")
      const exits = yield* Fiber.await(calls)
      assert.isTrue(Exit.isSuccess(exits))
      const outcomes = Exit.isSuccess(exits) ? exits.value : []
      for (const exit of outcomes) {
        if (Exit.isSuccess(exit)) continue
        const error = Cause.findErrorOption(exit.cause)
        assert.isTrue(Option.isSome(error) && isCallError(error.value), `a call ended with a typed error: ${Cause.pretty(exit.cause)}`)
      }
      assert.isTrue(outcomes.some(Exit.isSuccess), "calls in flight at close were answered")
      if (!setup.skipDurable) {
        // what the first instance did not finish must reach the next one: none acked unprocessed
        yield* Layer.build(Service.toLayer(Worker, handlers))
        yield* eventually(
          "every durable event was handled by one instance or the other",
          Effect.map(Ref.get(handled), (s) => s.size === total),
          "20 seconds"
        )
      }
      assert.strictEqual(yield* Bridge.use((b) => b.pendingRequests), 0)
    })), 60_000)

  it.live("maximum message size: enforced on send with a typed error, and on receive without decoding", () =>
    withBridge(Effect.gen(function*() {
      const limit = 4096
      const pad = "x".repeat(2 * limit)
      const event = Event.make(unique("big.job"), Job)
      const Sized = Service.make(unique("sized"), "1", {
        commands: [
          Command.make("echo", { input: Job, output: Job }),
          Command.make("inflate", { input: Job, output: Job })
        ],
        subscriptions: [Subscription.make("jobs", {
          filter: { eventName: event.name },
          payload: Job,
          delivery: "shared",
          durable: !setup.skipDurable
        })]
      })
      const jobs = yield* Queue.unbounded<number>()
      const small = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provideService(effect, MaxMessageBytes, limit)
      // the serving instance accepts at most 4 KiB; callers and publishers keep the default (1 MiB)
      yield* small(Layer.build(Service.toLayer(Sized, {
        echo: (job) => Effect.succeed(job),
        inflate: ({ n }) => Effect.succeed({ n, pad }),
        jobs: ({ n }) => Queue.offer(jobs, n)
      })))
      const Letters = deadLetterWatcher(unique("letters"), Sized.name)
      const letters = yield* Queue.unbounded<Subscription.DeadLetter>()
      yield* Layer.build(Service.toLayer(Letters, { letters: (l) => Queue.offer(letters, l) }))

      // send: a small client refuses before anything reaches the broker
      const smallClient = yield* small(Client.make(Sized, { timeout: within }))
      const sent = yield* Effect.flip(smallClient.echo({ n: 1, pad }))
      assert.strictEqual(sent._tag, "MessageTooLarge")
      const published = yield* Effect.flip(small(Event.publish(event, { n: 1, pad })))
      assert.strictEqual(published._tag, "MessageTooLarge")

      // receive: the instance rejects a large command without decoding it, and says so
      const client = yield* Client.make(Sized, { timeout: within })
      const before = yield* rejected("too-large", Sized.name)
      const refused = yield* Effect.flip(client.echo({ n: 2, pad }))
      assert.strictEqual(refused._tag, "InvalidInput")
      assert.include(refused.message, "over the receiver's maximum")
      assert.deepStrictEqual(yield* client.echo({ n: 3 }), { n: 3 }, "the instance goes on")
      // a reply over the instance's limit is not sent: the caller gets a RemoteDefect
      assert.strictEqual((yield* Effect.flip(client.inflate({ n: 4 })))._tag, "RemoteDefect")
      // a reply over the caller's limit is rejected by the caller
      const Big = Service.make(unique("big"), "1", { commands: [Command.make("inflate", { input: Job, output: Job })] })
      yield* Layer.build(Service.toLayer(Big, { inflate: ({ n }) => Effect.succeed({ n, pad }) }))
      const callerBefore = yield* rejected("too-large", "client")
      const bigReply = yield* Effect.flip((yield* small(Client.make(Big, { timeout: within }))).inflate({ n: 5 }))
      assert.strictEqual(bigReply._tag, "InvalidOutput")
      assert.strictEqual(yield* rejected("too-large", "client"), callerBefore + 1)

      // a large event is not decoded by the subscriber; a durable one is dead-lettered without its content
      yield* Event.publish(event, { n: 6, pad })
      yield* Event.publish(event, { n: 7 })
      const [n] = yield* Queue.take(jobs).pipe(Effect.map((x) => [x]), Effect.timeout(within))
      assert.strictEqual(n, 7)
      yield* eventually("both rejections counted", Effect.map(rejected("too-large", Sized.name), (x) => x === before + 2), within)
      if (!setup.skipDurable) {
        const letter = yield* Queue.take(letters).pipe(Effect.timeout(within))
        assert.include(letter.error, "over the maximum message size")
        assert.notInclude(JSON.stringify(letter.event), pad)
      }
      assert.strictEqual(yield* Bridge.use((b) => b.pendingRequests), 0)
    })), 30_000)
}
