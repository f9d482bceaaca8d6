/**
 * The broker-fault scenario shared by the broker tests: a steady load of calls and durable events,
 * an outage of the broker in the middle of it, and the accounting afterwards. Each broker test file
 * supplies its bridge and how to stop and start its broker.
 */
import { assert } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, FiberSet, Layer, Scope } from "effect"
import { Bridge, Client, Event, Service } from "../../src/index.ts"
import { Added, Calculator, CalculatorLive } from "../fixtures.ts"
import { eventSub, eventually, health, outcomeOf } from "./support.ts"

/** How one bridge's broker goes down and comes back, and how long its bridges may take to notice. */
export interface BrokerFault<E> {
  /** Short bridge name for the figures line (`nats`, `mqtt`, `amqp`). */
  readonly name: string
  /** A fresh bridge (its own connection) for the service and for the caller. */
  readonly bridge: () => Layer.Layer<Bridge.Bridge, E>
  /** Stops the broker; returns once it no longer accepts connections. */
  readonly stop: Effect.Effect<void>
  /** Starts the broker when it is down (a no-op when it is up); returns once it accepts connections. */
  readonly start: Effect.Effect<void>
  /** How long the broker stays down. Default 1 s. */
  readonly outageMs?: number
  /** How long the bridges may take to reconnect once the broker is back. Default 10 s. */
  readonly reconnectMs?: number
  /** Run during the outage and awaited once the broker is back (e.g. a service starting meanwhile). */
  readonly duringOutage?: Effect.Effect<void, unknown, Scope.Scope>
  /** How long the event handler works on each event, so some are unacknowledged at the stop. Default 50 ms. */
  readonly handlerMs?: number
}

/** What the scenario counted. Times in milliseconds. */
export interface FaultFigures {
  readonly calls: number
  /** Calls by outcome: `ok` or the `_tag` of the typed error (`Timeout`, `NoResponder`, `BridgeError`, …). */
  readonly outcomes: Readonly<Record<string, number>>
  /** The longest call, from its start to its result or error. */
  readonly slowestCall: number
  /** Events whose publish the broker acknowledged. */
  readonly published: number
  /** Events whose publish failed with a typed error (not acknowledged; they may or may not arrive). */
  readonly refused: number
  /** Acknowledged events delivered at least once. */
  readonly delivered: number
  /** Acknowledged events never delivered. */
  readonly lost: number
  /** Deliveries beyond the first of the same event. */
  readonly duplicated: number
  /** From the broker accepting connections again (or the node lost) to the end of the first successful call started after it. */
  readonly recovery: number
  /** From the same moment to the first delivery of an event published after it. */
  readonly eventRecovery: number
}

/** The deliveries a durable subscriber saw, with their times; `record` is called by its handler. */
export const deliveryLog = () => {
  const entries: Array<{ readonly sum: number; readonly at: number }> = []
  const record = (sum: number) => Effect.map(Clock.currentTimeMillis, (at) => void entries.push({ sum, at }))
  return { entries, record }
}

/** A log of deliveries (see `deliveryLog`). */
export type DeliveryLog = ReturnType<typeof deliveryLog>

/** Per-call deadline of the load. */
export const CALL_TIMEOUT_MS = 2_000
/** What a call may take beyond its deadline before it counts as a hang. */
export const GRACE_MS = 500
/** Outcomes a call may end with under a broker fault: its result or a typed transport error. */
const ALLOWED = ["ok", "Timeout", "NoResponder", "BridgeError"]

/** One line of figures, as the fault tests print it. */
export const formatFigures = (name: string, f: FaultFigures): string => {
  const outcomes = Object.entries(f.outcomes).sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k} ${n}`).join(", ")
  return `fault ${name}: calls ${f.calls} (${outcomes}), slowest ${f.slowestCall} ms; events published+acked ${f.published}` +
    ` (refused ${f.refused}), delivered ${f.delivered}, lost ${f.lost}, duplicated ${f.duplicated};` +
    ` recovery: calls ${f.recovery} ms, events ${f.eventRecovery} ms`
}

interface CallRecord {
  readonly outcome: string
  readonly start: number
  readonly end: number
}

/** Calls of a client with the fixtures' `lookup` command. */
type Calc = Effect.Success<ReturnType<typeof Client.make<typeof Calculator>>>

/**
 * A steady load: every 100 ms one call (2 s deadline) and one durable event publish, each in its own
 * fiber, so some start before, some during and some after a fault. `stop` ends the load and awaits
 * every call and publish it started; `account` counts and checks them (see `brokerFault`).
 */
export const steadyLoad = (calc: Calc, publish: (sum: number) => Effect.Effect<void, unknown>) =>
  Effect.gen(function*() {
    const calls: Array<CallRecord> = []
    const acked: Array<number> = []
    const publishedAt = new Map<number, number>()
    let refused = 0
    const inflight = yield* FiberSet.make()
    const call = Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(calc.lookup({ key: "k" }, { timeout: CALL_TIMEOUT_MS }))
      calls.push({ outcome: outcomeOf(exit), start, end: yield* Clock.currentTimeMillis })
    })
    const publishOne = (sum: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => {
        publishedAt.set(sum, at)
        return Effect.map(Effect.exit(publish(sum)), (exit) => Exit.isSuccess(exit) ? acked.push(sum) : refused++)
      })
    let next = 0
    const load = yield* Effect.gen(function*() {
      yield* FiberSet.run(inflight, call)
      yield* FiberSet.run(inflight, publishOne(next++))
      yield* Effect.sleep("100 millis")
    }).pipe(Effect.forever, Effect.forkChild)
    /** True once a call that started at or after `since` succeeded. */
    const succeededSince = (since: number) => Effect.sync(() => calls.some((c) => c.outcome === "ok" && c.start >= since))
    const stop = Effect.gen(function*() {
      yield* Fiber.interrupt(load)
      yield* FiberSet.awaitEmpty(inflight).pipe(Effect.timeout("15 seconds"))
      // one more call and one more event on the same bridges, after everything else: both must succeed
      yield* call
      const last = next++
      publishedAt.set(last, yield* Clock.currentTimeMillis)
      yield* publish(last)
      acked.push(last)
    })
    /**
     * Waits (bounded by `waitMs`) until every acknowledged event is in the delivery log, prints the
     * figures and checks them. `since` is the moment the broker was back (or the node was lost):
     * recovery is measured from there to the end of the first successful call started after it, and
     * to the first delivery of an event published after it.
     */
    const account = (name: string, log: DeliveryLog, since: number, waitMs: number) =>
      Effect.gen(function*() {
        const missing = () => {
          const got = new Set(log.entries.map((e) => e.sum))
          return acked.filter((sum) => !got.has(sum))
        }
        yield* Effect.exit(eventually("every acknowledged event is delivered", Effect.sync(() => missing().length === 0), waitMs))
        yield* Effect.sleep("200 millis") // late redeliveries count as duplicates
        const deliveries = log.entries.map((e) => e.sum)
        const outcomes: Record<string, number> = {}
        for (const c of calls) outcomes[c.outcome] = (outcomes[c.outcome] ?? 0) + 1
        const ackedSet = new Set(acked)
        const firstOk = Math.min(...calls.filter((c) => c.outcome === "ok" && c.start >= since).map((c) => c.end))
        const figures: FaultFigures = {
          calls: calls.length,
          outcomes,
          slowestCall: Math.max(...calls.map((c) => c.end - c.start)),
          published: acked.length,
          refused,
          delivered: new Set(deliveries.filter((sum) => ackedSet.has(sum))).size,
          lost: missing().length,
          duplicated: deliveries.length - new Set(deliveries).size,
          recovery: firstOk - since,
          eventRecovery: Math.min(...log.entries.filter((e) => (publishedAt.get(e.sum) ?? -Infinity) >= since).map((e) => e.at)) -
            since
        }
        console.log(formatFigures(name, figures))
        for (const c of calls) {
          assert.include(ALLOWED, c.outcome)
          assert.isAtMost(c.end - c.start, CALL_TIMEOUT_MS + GRACE_MS, `a ${c.outcome} call took ${c.end - c.start} ms`)
        }
        assert.strictEqual(calls.at(-1)?.outcome, "ok", "a call after the fault succeeds on the same bridges")
        assert.isAbove(figures.published, 1)
        assert.deepStrictEqual(missing(), [], "acknowledged events never delivered")
        return figures
      })
    return { succeededSince, stop, account }
  })

/**
 * Runs the scenario against one broker and checks it: a `steadyLoad` of calls and durable events;
 * the broker is stopped 300 ms in and started again `outageMs` later; the load goes on for a second
 * after the first call started after the restart succeeded, then every fiber is awaited.
 *
 * Checks: every call ended with its result or a typed error within deadline + grace; every event
 * whose publish was acknowledged was delivered at least once (lost = 0; duplicates are counted,
 * not failed: durable delivery is at-least-once); calls and events work again on the same bridges,
 * without restarting the service. Prints one line of figures and returns them with the caller's bridge.
 */
export const brokerFault = <E>(fault: BrokerFault<E>) =>
  Effect.gen(function*() {
    const handlerMs = fault.handlerMs ?? 50
    const reconnectMs = fault.reconnectMs ?? 10_000
    const Tick = Event.make("fault.tick", Added)
    const Sink = Service.make("fault-sink", "1", { subscriptions: [eventSub("ticks", "fault.tick", { durable: true })] })
    const deliveries = deliveryLog()
    const serving = yield* Layer.build(fault.bridge())
    yield* Layer.build(
      Layer.mergeAll(
        CalculatorLive(),
        Service.toLayer(Sink, { ticks: (p) => Effect.andThen(Effect.sleep(handlerMs), deliveries.record(p.sum)) })
      )
    ).pipe(Effect.provide(serving))
    const calling = yield* Layer.build(fault.bridge())
    const calc = yield* Client.make(Calculator).pipe(Effect.provide(calling))
    // registered last, so it runs first: the broker is up again before anything else closes
    yield* Effect.addFinalizer(() => fault.start)
    assert.deepStrictEqual(yield* calc.lookup({ key: "up" }, { timeout: "2 seconds" }), { value: "UP" })

    const load = yield* steadyLoad(calc, (sum) => Event.publish(Tick, { sum }).pipe(Effect.provide(calling)))
    yield* Effect.sleep("300 millis")
    yield* fault.stop
    yield* eventually("the bridge notices the outage", Effect.map(health(calling), (h) => h !== "connected"), 3_000)
    const meanwhile = fault.duringOutage === undefined ? undefined : yield* Effect.forkChild(fault.duringOutage)
    yield* Effect.sleep(fault.outageMs ?? 1_000)
    yield* fault.start
    const backAt = yield* Clock.currentTimeMillis
    if (meanwhile !== undefined) yield* Fiber.join(meanwhile)
    yield* eventually("the calling bridge reconnects", Effect.map(health(calling), (h) => h === "connected"), reconnectMs)
    yield* eventually("the serving bridge reconnects", Effect.map(health(serving), (h) => h === "connected"), reconnectMs)
    yield* eventually("a call of the load succeeds after the restart", load.succeededSince(backAt), reconnectMs)
    yield* Effect.sleep("1 second")
    yield* load.stop
    const figures = yield* load.account(fault.name, deliveries, backAt, reconnectMs + 5_000)
    return { figures, calling }
  })
