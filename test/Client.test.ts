import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Layer, Metric, Ref, Schedule, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import {
  Bridge,
  type BridgeError,
  Client,
  Codec,
  Command,
  MemoryBridge,
  MessageContext,
  type MessageContextShape,
  Metrics,
  NoResponder,
  Runtime,
  Service,
  withContext
} from "../src/index.ts"
import { Add, Calculator, CalculatorLive, calculatorHandlers, subscriptionOf } from "./fixtures.ts"

const withCalculator = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(CalculatorLive().pipe(Layer.provideMerge(MemoryBridge.layer))))

const pending = Bridge.Bridge.use((b) => b.pendingRequests)

describe("Client", () => {
  it.effect("returns the typed output", () =>
    withCalculator(Effect.gen(function*() {
      const calc = yield* Client.make(Calculator)
      assert.deepStrictEqual(yield* calc.add({ a: 1, b: 2 }), { sum: 3 })
      assert.deepStrictEqual(yield* calc.lookup({ key: "ab" }), { value: "AB" })
    })))

  it.effect("fails with the declared error, decoded as its class", () =>
    withCalculator(Effect.gen(function*() {
      const calc = yield* Client.make(Calculator)
      const error = yield* Effect.flip(calc.add({ a: 1000, b: 1 }))
      assert.strictEqual(error._tag, "Overflow")
      assert.strictEqual(error._tag === "Overflow" && error.limit, 1000)
      const recovered = yield* calc.add({ a: 1000, b: 1 }).pipe(
        Effect.catchTag("Overflow", (e) => Effect.succeed({ sum: -e.limit }))
      )
      assert.deepStrictEqual(recovered, { sum: -1000 })
    })))

  it.effect("validates the input before sending anything", () =>
    Effect.gen(function*() {
      // no service at all: an invalid input must fail with InvalidInput, not NoResponder
      const calc = yield* Client.make(Calculator)
      const error = yield* Effect.flip(calc.add({ a: Number.NaN, b: 1 }))
      assert.strictEqual(error._tag, "InvalidInput")
      assert.match(error.message, /calculator\/1\/add/)
    }).pipe(Effect.provide(MemoryBridge.layer)))

  it.effect("the receiver validates the input too", () =>
    withCalculator(Effect.gen(function*() {
      // a caller built from a looser contract sends an input the service's schema rejects
      const Loose = Service.make("calculator", "1", {
        commands: [Command.make("add", { input: Schema.Struct({ a: Schema.String }), output: Schema.Unknown })]
      })
      const loose = yield* Client.make(Loose)
      const error = yield* Effect.flip(loose.add({ a: "one" }))
      assert.strictEqual(error._tag, "InvalidInput")
      assert.match(error.message, /Expected/)
    })))

  it.effect("validates the output on receipt", () =>
    withCalculator(Effect.gen(function*() {
      const Strict = Service.make("calculator", "1", {
        commands: [Command.make("add", { input: Add.input, output: Schema.Struct({ sum: Schema.String }) })]
      })
      const strict = yield* Client.make(Strict)
      const error = yield* Effect.flip(strict.add({ a: 1, b: 2 }))
      assert.strictEqual(error._tag, "InvalidOutput")
    })))

  it.effect("fails fast with NoResponder when nobody serves the command", () =>
    Effect.gen(function*() {
      const calc = yield* Client.make(Calculator)
      // no TestClock.adjust: the failure must not wait for the 30 s timeout
      const error = yield* Effect.flip(calc.add({ a: 1, b: 2 }))
      assert.strictEqual(error._tag, "NoResponder")
      assert.strictEqual(yield* pending, 0)
    }).pipe(Effect.provide(MemoryBridge.layer)))

  it.effect("times out at the call's deadline and interrupts the handler there", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const Slow = Service.make("slow", "1", {
        commands: [Command.make("wait", { input: Schema.Struct({}), output: Schema.Struct({}) })]
      })
      const SlowLive = Service.toLayer(Slow, {
        wait: () =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
          )
      })
      yield* Effect.gen(function*() {
        const slow = yield* Client.make(Slow, { timeout: "1 minute" })
        const call = yield* Effect.forkChild(Effect.flip(slow.wait({}, { timeout: "2 seconds" })))
        yield* Deferred.await(started)
        yield* TestClock.adjust("1999 millis")
        assert.isUndefined(call.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        const error = yield* Fiber.join(call)
        assert.strictEqual(error._tag, "Timeout")
        assert.strictEqual(error._tag === "Timeout" && error.timeoutMs, 2000)
        yield* Deferred.await(interrupted)
        assert.strictEqual(yield* pending, 0)
      }).pipe(Effect.provide(SlowLive.pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))

  it.effect("uses the client's default timeout, 30 s unless configured", () =>
    withCalculator(Effect.gen(function*() {
      const calc = yield* Client.make(Calculator)
      const call = yield* Effect.forkChild(Effect.flip(calc.sleep({ ms: 60_000 })))
      yield* TestClock.adjust("29 seconds")
      assert.isUndefined(call.pollUnsafe())
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(call))._tag, "Timeout")
    })))

  it.effect("a receiver drops a command whose deadline has passed", () =>
    withCalculator(Effect.gen(function*() {
      const bridge = yield* Bridge.Bridge
      const expired = Metric.withAttributes(Runtime.rejectedMessages, { reason: "expired", service: "calculator" })
      const before = (yield* Metric.value(expired)).count
      const now = yield* Clock.currentTimeMillis
      const bytes = Codec.json.encode({
        id: "late-1",
        kind: "command",
        type: "add",
        source: "herald:client/0",
        time: now - 10,
        correlationId: "late-1",
        sender: Runtime.ANONYMOUS,
        receiver: { service: "calculator", version: "1" },
        expiresAt: now - 1,
        data: { a: 1, b: 2 }
      })
      const request = yield* Effect.forkChild(
        bridge.request({ service: "calculator", version: "1", command: "add" }, bytes, now - 1)
      )
      yield* Effect.yieldNow
      yield* Effect.yieldNow
      assert.strictEqual((yield* Metric.value(expired)).count, before + 1)
      assert.isUndefined(request.pollUnsafe(), "no reply is sent for an expired command")
      yield* Fiber.interrupt(request)
      assert.strictEqual(yield* pending, 0)
    })))

  it.effect("a handler defect reaches the caller as RemoteDefect without internal detail; the service goes on", () =>
    withCalculator(Effect.gen(function*() {
      const calc = yield* Client.make(Calculator)
      for (const how of ["throw", "die"] as const) {
        const error = yield* Effect.flip(calc.crash({ how }))
        assert.strictEqual(error._tag, "RemoteDefect")
        const text = JSON.stringify(error) + error.message + String(error.stack)
        assert.notInclude(text, "secret internal detail")
        assert.notInclude(text, "fixtures.ts")
      }
      assert.deepStrictEqual(yield* calc.add({ a: 2, b: 2 }), { sum: 4 })
    })))

  it.effect("retry is accepted only for idempotent commands and reuses the invocation id", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<Array<string>>([])
      const Flaky = Service.make("flaky", "1", {
        commands: [
          Command.make("get", { input: Schema.Struct({}), output: Schema.Struct({ n: Schema.Int }), idempotent: true }),
          Command.make("put", { input: Schema.Struct({}), output: Schema.Struct({}) })
        ]
      })
      const FlakyLive = Service.toLayer(Flaky, {
        get: () =>
          Effect.gen(function*() {
            const { messageId } = yield* MessageContext
            const ids = yield* Ref.updateAndGet(seen, (ids) => [...ids, messageId!])
            // the first attempt hangs past its deadline, the second answers
            return ids.length === 1 ? yield* Effect.never : { n: ids.length }
          }),
        put: () => Effect.succeed({})
      })
      yield* Effect.gen(function*() {
        const flaky = yield* Client.make(Flaky)
        const call = yield* Effect.forkChild(flaky.get({}, { timeout: "1 second", retry: Schedule.recurs(2) }))
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Fiber.join(call), { n: 2 })
        const ids = yield* Ref.get(seen)
        assert.strictEqual(ids.length, 2)
        assert.strictEqual(ids[0], ids[1])

        // @ts-expect-error retry is not an option of a non-idempotent command
        const refused = yield* Effect.exit(flaky.put({}, { retry: Schedule.recurs(1) }))
        assert.isTrue(Exit.isFailure(refused) && Cause.hasDies(refused.cause))
      }).pipe(Effect.provide(FlakyLive.pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))

  it.effect("retry does not repeat declared errors", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make(0)
      class Nope extends Schema.TaggedError<Nope>()("Nope", {}) {}
      const S = Service.make("s", "1", {
        commands: [Command.make("get", { input: Schema.Struct({}), output: Schema.Struct({}), errors: [Nope], idempotent: true })]
      })
      const Live = Service.toLayer(S, { get: () => Effect.andThen(Ref.update(calls, (n) => n + 1), Effect.fail(new Nope())) })
      yield* Effect.gen(function*() {
        const s = yield* Client.make(S)
        assert.strictEqual((yield* Effect.flip(s.get({}, { retry: Schedule.recurs(3) })))._tag, "Nope")
        assert.strictEqual(yield* Ref.get(calls), 1)
      }).pipe(Effect.provide(Live.pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))

  it.effect("emits publishes the output as the named event", () =>
    Effect.gen(function*() {
      const received = yield* Deferred.make<{ sum: number; tenant: string | undefined }>()
      const Audit = Service.make("audit", "1", { subscriptions: [subscriptionOf("added")] })
      const AuditLive = Service.toLayer(Audit, {
        added: (payload, info) => Deferred.succeed(received, { sum: payload.sum, tenant: info.tenantId })
      })
      yield* Effect.gen(function*() {
        const calc = yield* Client.make(Calculator)
        yield* calc.add({ a: 20, b: 22 }).pipe(withContext({ tenantId: "t1" }))
        assert.deepStrictEqual(yield* Deferred.await(received), { sum: 42, tenant: "t1" })
      }).pipe(Effect.provide(Layer.mergeAll(CalculatorLive(), AuditLive).pipe(Layer.provideMerge(MemoryBridge.layer))))
    }))

  it.effect("context flows from the handled message into every call and event it makes", () =>
    Effect.gen(function*() {
      type Seen = { readonly where: string } & MessageContextShape
      const seen = yield* Ref.make<Array<Seen>>([])
      const record = (where: string) =>
        Effect.flatMap(MessageContext, (ctx) => Ref.update(seen, (xs) => [...xs, { where, ...ctx }]))
      const Front = Service.make("front", "1", {
        commands: [Command.make("go", { input: Schema.Struct({}), output: Schema.Struct({ sum: Schema.Finite }) })]
      })
      const Watch = Service.make("watch", "1", { subscriptions: [subscriptionOf("added")] })
      const done = yield* Deferred.make<void>()
      const FrontLive = Service.toLayer(Front, {
        go: () =>
          Effect.gen(function*() {
            yield* record("front.go")
            const calc = yield* Client.make(Calculator)
            return yield* Effect.orDie(calc.add({ a: 1, b: 1 }))
          })
      })
      const CalcLive = Service.toLayer(Calculator, {
        ...calculatorHandlers,
        add: (input) => Effect.andThen(record("calculator.add"), calculatorHandlers.add(input))
      })
      const WatchLive = Service.toLayer(Watch, {
        added: () => Effect.andThen(record("watch.added"), Deferred.succeed(done, undefined))
      })
      yield* Effect.gen(function*() {
        const front = yield* Client.make(Front)
        yield* front.go({}).pipe(withContext({
          tenantId: "t9",
          principalId: "alice",
          traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        }))
        yield* Deferred.await(done)
      }).pipe(Effect.provide(
        Layer.mergeAll(FrontLive, CalcLive, WatchLive).pipe(Layer.provideMerge(MemoryBridge.layer))
      ))
      const [go, add, added] = yield* Ref.get(seen)
      assert.deepStrictEqual([go!.where, add!.where, added!.where], ["front.go", "calculator.add", "watch.added"])
      for (const s of [go!, add!, added!]) {
        assert.strictEqual(s.tenantId, "t9")
        assert.strictEqual(s.principalId, "alice")
        // no tracer collects spans here, so Herald opens none and the caller's traceparent runs through
        assert.strictEqual(s.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        assert.strictEqual(s.correlationId, go!.messageId, "the first message's id correlates the whole chain")
      }
      assert.strictEqual(add!.causationId, go!.messageId)
      assert.strictEqual(added!.causationId, add!.messageId)
      assert.strictEqual(go!.self?.service, "front")
      assert.strictEqual(add!.self?.service, "calculator")
    }))
})

describe("competing consumers", () => {
  it.effect("N concurrent calls over K instances: N replies, each executed exactly once", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 5 }), (n, k) =>
          Effect.runPromise(Effect.gen(function*() {
            const executions = yield* Ref.make(new Map<string, number>())
            const byInstance = yield* Ref.make(new Map<string, number>())
            const bump = (ref: Ref.Ref<Map<string, number>>, key: string) =>
              Ref.update(ref, (m) => new Map(m).set(key, (m.get(key) ?? 0) + 1))
            const instance = () =>
              Service.toLayer(Calculator, {
                ...calculatorHandlers,
                add: ({ a, b }) =>
                  Effect.gen(function*() {
                    const ctx = yield* MessageContext
                    yield* bump(executions, ctx.messageId!)
                    yield* bump(byInstance, ctx.self!.instance!)
                    return { sum: a + b }
                  })
              })
            const instances = Layer.mergeAll(...Array.from({ length: k }, instance) as [ReturnType<typeof instance>])
            yield* Effect.gen(function*() {
              const calc = yield* Client.make(Calculator)
              const sums = yield* Effect.forEach(
                Array.from({ length: n }, (_, i) => i),
                (i) => Effect.map(calc.add({ a: i, b: 1 }), (r) => r.sum),
                { concurrency: "unbounded" }
              )
              assert.deepStrictEqual(sums, Array.from({ length: n }, (_, i) => i + 1))
              assert.strictEqual(yield* pending, 0)
            }).pipe(Effect.provide(instances.pipe(Layer.provideMerge(MemoryBridge.layer))))
            const counts = [...(yield* Ref.get(executions)).values()]
            assert.strictEqual(counts.length, n)
            assert.isTrue(counts.every((c) => c === 1))
            const perInstance = yield* Ref.get(byInstance)
            assert.isAtMost(perInstance.size, k)
            assert.strictEqual([...perInstance.values()].reduce((x, y) => x + y, 0), n)
            if (n >= k) assert.strictEqual(perInstance.size, k, "round robin uses every instance")
          }))),
        { numRuns: 40 }
      )
    ))
})

describe("pending table", () => {
  type Op = "ok" | "error" | "defect" | "timeout" | "interrupt" | "noResponder"
  const ops = fc.array(fc.constantFrom<Op>("ok", "error", "defect", "timeout", "interrupt", "noResponder"), {
    minLength: 1,
    maxLength: 30
  })

  it.effect("is empty after any mix of successes, failures, timeouts and interruptions", () =>
    Effect.gen(function*() {
      const context = yield* Effect.context<never>() // carries the TestClock into every run
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(ops, (plan) =>
            Effect.runPromiseWith(context)(Effect.gen(function*() {
              const Nobody = Service.make("nobody", "1", { commands: [Add] })
              const calc = yield* Client.make(Calculator, { timeout: "1 second" })
              const nobody = yield* Client.make(Nobody)
              const fibers = yield* Effect.forEach(plan, (op) =>
                Effect.forkChild(
                  (op === "ok"
                    ? calc.add({ a: 1, b: 2 })
                    : op === "error"
                    ? calc.add({ a: 1000, b: 2 })
                    : op === "defect"
                    ? calc.crash({ how: "die" })
                    : op === "noResponder"
                    ? nobody.add({ a: 1, b: 2 })
                    : calc.sleep({ ms: 60_000 })) as Effect.Effect<unknown, unknown>
                ))
              yield* Effect.yieldNow
              yield* Effect.forEach(plan, (op, i) => op === "interrupt" ? Fiber.interrupt(fibers[i]!) : Effect.void)
              yield* TestClock.adjust("1 second")
              const exits = yield* Effect.forEach(fibers, Fiber.await)
              plan.forEach((op, i) => {
                const exit = exits[i]!
                const tag = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
                const expected = {
                  ok: undefined,
                  error: "Overflow",
                  defect: "RemoteDefect",
                  timeout: "Timeout",
                  noResponder: "NoResponder",
                  interrupt: "interrupted"
                }[op]
                if (op === "interrupt") assert.isTrue(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))
                else assert.strictEqual((tag as { _tag?: string } | undefined)?._tag, expected, op)
              })
              assert.strictEqual(yield* pending, 0)
            }).pipe(Effect.provide(CalculatorLive().pipe(Layer.provideMerge(MemoryBridge.layer)))))),
          { numRuns: 60 }
        )
      )
    }))
})

describe("startRequest (a bridge's callback form of request)", () => {
  interface Counts {
    started: number
    declined: number
    cancelled: number
    done: number
  }
  /**
   * The memory bridge with a `startRequest` built from its `request`, counting what the runtime does
   * with it; `decline` makes it answer "not now" (the runtime must then use `request`).
   */
  const fastBridge = (counts: Counts, decline = false) =>
    Layer.effect(
      Bridge.Bridge,
      Bridge.Bridge.use((memory) => Effect.succeed<Bridge.BridgeShape>({
        ...memory,
        startRequest: (address, bytes, expiresAt, done) => {
          if (decline) return (counts.declined++, undefined)
          counts.started++
          let cancelled = false
          const fiber = Effect.runFork(memory.request(address, bytes, expiresAt))
          fiber.addObserver((exit) => {
            if (!cancelled) (counts.done++, done(exit as Exit.Exit<Uint8Array, NoResponder | BridgeError>))
          })
          return () => {
            cancelled = true
            counts.cancelled++
            fiber.interruptUnsafe()
          }
        }
      }))
    ).pipe(Layer.provide(MemoryBridge.layer))
  const withFast = (counts: Counts, decline = false) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(Effect.provide(CalculatorLive().pipe(Layer.provideMerge(fastBridge(counts, decline)))))
  const fresh = (): Counts => ({ started: 0, declined: 0, cancelled: 0, done: 0 })
  /** The calls of `calculator` v1 `command` counted with `outcome` so far (the fast path records them itself). */
  const calls = (command: string, outcome: string) =>
    Effect.map(
      Metric.value(Metric.withAttributes(Metrics.clientCalls, { service: "calculator", version: "1", command, outcome })),
      (s) => s.count
    )

  it.live("calls go through it with the live clock: replies, declared errors, defects and NoResponder as through request", () => {
    const counts = fresh()
    return withFast(counts)(Effect.gen(function*() {
      const before = [yield* calls("add", "ok"), yield* calls("add", "Overflow"), yield* calls("crash", "RemoteDefect")]
      const calc = yield* Client.make(Calculator, { timeout: "5 seconds" })
      assert.deepStrictEqual(yield* calc.add({ a: 1, b: 2 }), { sum: 3 })
      assert.strictEqual((yield* Effect.flip(calc.add({ a: 1000, b: 1 })))._tag, "Overflow")
      assert.strictEqual((yield* Effect.flip(calc.crash({ how: "die" })))._tag, "RemoteDefect")
      const nobody = yield* Client.make(Service.make("nobody", "1", { commands: [Add] }))
      assert.strictEqual((yield* Effect.flip(nobody.add({ a: 1, b: 2 })))._tag, "NoResponder")
      assert.deepStrictEqual(counts, { started: 4, declined: 0, cancelled: 0, done: 4 })
      assert.strictEqual(yield* pending, 0)
      const after = [yield* calls("add", "ok"), yield* calls("add", "Overflow"), yield* calls("crash", "RemoteDefect")]
      assert.deepStrictEqual(after.map((n, i) => n - before[i]!), [1, 1, 1], "each outcome counted once")
    }))
  })

  it.live("times out at the call's deadline, cancelling the wait", () => {
    const counts = fresh()
    return withFast(counts)(Effect.gen(function*() {
      const calc = yield* Client.make(Calculator)
      const timeouts = yield* calls("sleep", "Timeout")
      const started = Date.now()
      const error = yield* Effect.flip(calc.sleep({ ms: 60_000 }, { timeout: "60 millis" }))
      assert.strictEqual(error._tag, "Timeout")
      assert.strictEqual((yield* calls("sleep", "Timeout")) - timeouts, 1)
      assert.isAtLeast(Date.now() - started, 55)
      assert.deepStrictEqual(counts, { started: 1, declined: 0, cancelled: 1, done: 0 })
      assert.strictEqual(yield* pending, 0)
    }))
  })

  it.live("interrupting the caller cancels the wait; a reply in time clears the timer", () => {
    const counts = fresh()
    return withFast(counts)(Effect.gen(function*() {
      const calc = yield* Client.make(Calculator, { timeout: "100 millis" })
      const interrupted = yield* calls("sleep", "Interrupted")
      const call = yield* Effect.forkChild(calc.sleep({ ms: 60_000 }))
      yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(call)
      assert.strictEqual((yield* calls("sleep", "Interrupted")) - interrupted, 1)
      assert.deepStrictEqual(counts, { started: 1, declined: 0, cancelled: 1, done: 0 })
      // replies within the timeout: no timer may fire after them (it would cancel nothing and fail nothing)
      for (let i = 0; i < 5; i++) assert.deepStrictEqual(yield* calc.add({ a: i, b: 1 }), { sum: i + 1 })
      yield* Effect.sleep("150 millis")
      assert.deepStrictEqual(counts, { started: 6, declined: 0, cancelled: 1, done: 5 })
      assert.strictEqual(yield* pending, 0)
    }))
  })

  it.live("when it declines, the call goes through request, timeout included", () => {
    const counts = fresh()
    return withFast(counts, true)(Effect.gen(function*() {
      const calc = yield* Client.make(Calculator, { timeout: "5 seconds" })
      assert.deepStrictEqual(yield* calc.add({ a: 2, b: 2 }), { sum: 4 })
      const error = yield* Effect.flip(calc.sleep({ ms: 60_000 }, { timeout: "30 millis" }))
      assert.strictEqual(error._tag, "Timeout")
      assert.deepStrictEqual(counts, { started: 0, declined: 2, cancelled: 0, done: 0 })
      assert.strictEqual(yield* pending, 0)
    }))
  })

  it.live("a result given before it returns ends the call at once, with no timer left behind", () => {
    let armed = 0
    const synchronous = Layer.succeed(Bridge.Bridge, {
      name: "synchronous",
      capabilities: { durable: false, persistent: false },
      health: Effect.succeed("connected"),
      pendingRequests: Effect.succeed(0),
      publish: () => Effect.void,
      serve: () => Effect.void,
      subscribe: () => Effect.void,
      request: () => Effect.die("request must not be used"),
      startRequest: (_address, _bytes, _expiresAt, done) => {
        done(Exit.fail(new NoResponder({ address: "calculator/1/add" })))
        return () => void armed++
      }
    } satisfies Bridge.BridgeShape)
    return Effect.gen(function*() {
      const calc = yield* Client.make(Calculator, { timeout: "40 millis" })
      assert.strictEqual((yield* Effect.flip(calc.add({ a: 1, b: 2 })))._tag, "NoResponder")
      yield* Effect.sleep("80 millis")
      assert.strictEqual(armed, 0, "the wait was cancelled after it had ended: a timer was armed")
    }).pipe(Effect.provide(synchronous))
  })
})

describe("Service.toLayer lifecycle", () => {
  it.effect("closing an instance stops new work, lets in-flight calls finish, then deregisters", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const Job = Service.make("job", "1", {
        commands: [Command.make("run", { input: Schema.Struct({}), output: Schema.Struct({ done: Schema.Boolean }) })]
      })
      const JobLive = Service.toLayer(Job, {
        run: () => Deferred.succeed(started, undefined).pipe(Effect.andThen(Deferred.await(release)), Effect.as({ done: true }))
      })
      const bridgeScope = yield* Scope.make()
      const bridge = yield* Layer.buildWithScope(MemoryBridge.layer, bridgeScope)
      const serviceScope = yield* Scope.make()
      yield* Layer.buildWithScope(JobLive, serviceScope).pipe(Effect.provide(bridge))
      const job = yield* Client.make(Job).pipe(Effect.provide(bridge))

      const call = yield* Effect.forkChild(job.run({}))
      yield* Deferred.await(started)
      const closing = yield* Effect.forkChild(Scope.close(serviceScope, Exit.void))
      yield* Effect.yieldNow
      // no new work once closing has begun
      assert.strictEqual((yield* Effect.flip(job.run({})))._tag, "NoResponder")
      assert.isUndefined(closing.pollUnsafe(), "closing waits for the in-flight call")
      yield* Deferred.succeed(release, undefined)
      assert.deepStrictEqual(yield* Fiber.join(call), { done: true })
      yield* Fiber.join(closing)
      yield* Scope.close(bridgeScope, Exit.void)
    }))

  it.effect("in-flight work still running at the drain timeout is interrupted", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const Job = Service.make("job", "1", {
        commands: [Command.make("run", { input: Schema.Struct({}), output: Schema.Struct({}) })]
      })
      const JobLive = Service.toLayer(Job, {
        run: () =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
          )
      }, { drainTimeout: "5 seconds" })
      const bridge = yield* Layer.build(MemoryBridge.layer)
      const serviceScope = yield* Scope.make()
      yield* Layer.buildWithScope(JobLive, serviceScope).pipe(Effect.provide(bridge))
      const job = yield* Client.make(Job).pipe(Effect.provide(bridge))
      const call = yield* Effect.forkChild(Effect.flip(job.run({}, { timeout: "1 minute" })))
      yield* Deferred.await(started)
      const closing = yield* Effect.forkChild(Scope.close(serviceScope, Exit.void))
      yield* TestClock.adjust("4 seconds")
      assert.isUndefined(closing.pollUnsafe())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      yield* Deferred.await(interrupted)
      // the caller is not left hanging: it ends at its own deadline
      yield* TestClock.adjust("1 minute")
      assert.strictEqual((yield* Fiber.join(call))._tag, "Timeout")
    }))
})
