/**
 * The connection supervisor under the AMQP bridge: connects to the first broker target that answers,
 * and on connection loss reconnects with backoff, failing over through the targets in turn, then
 * re-opens every resource registered with it (consumers and their queues) on the new connection.
 * A resource that fails to re-open is retried on its own, with backoff, for as long as the
 * connection lasts. Then the consumers, the resources of the bridge, and the small helpers every
 * broker call of the bridge goes through.
 */
import * as amqp from "amqplib"
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from "amqplib"
import type { Context, Fiber, Scope } from "effect"
import { Cause, Clock, Deferred, Duration, Effect, Exit, FiberSet, Schedule, Semaphore } from "effect"
import type { BridgeError } from "../BridgeError.ts"
import * as Metrics from "../Metrics.ts"
import * as Topology from "./amqpTopology.ts"
import { bestEffort, kitOf } from "./bridgeKit.ts"

/** The name of the AMQP bridge, as it appears in its errors. */
export const BRIDGE = "amqp"

/** The AMQP bridge's errors and bounded broker calls. */
export const { attempt, bridgeError, fail, within } = kitOf(BRIDGE)

/** Does nothing: the handler of errors that are reported some other way. */
export const noop = (): undefined => undefined

/** The channels of a bridge's main connection: requests and their direct replies, and confirmed event publishes. */
export type Core = {
  readonly rpc: Channel
  readonly pub: ConfirmChannel
}

/** One open connection, with the channels its supervisor's `setUp` opened on it (`C`: named channels). */
export interface Live<C extends Record<string, Channel> = Core> {
  readonly model: ChannelModel
  readonly channels: C
  /** Completed, with the broker's or the socket's reason, when the connection has closed. */
  readonly closed: Deferred.Deferred<string>
  dead: boolean
}

/** Something the bridge declared on the broker, re-created on every new connection. */
export interface Resource<C extends Record<string, Channel> = Core> {
  /** Opens the resource on `live` unless it is open there already. */
  readonly open: (live: Live<C>) => Effect.Effect<void, BridgeError>
}

/** The tracker of a connection that is not counted in the bridge's connection metrics. */
const untracked: Metrics.ConnectionTracker = { connected: noop, disconnected: noop }

/** Runs an effect in the background, as long as the supervisor's scope: interrupted when it closes. */
export type Background = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

/** What the supervisor needs from the bridge. */
export interface SupervisorOptions<C extends Record<string, Channel>> {
  /** The brokers to connect to, in order. */
  readonly targets: ReadonlyArray<Topology.Target>
  /** Bound of one broker operation: connecting, setting a connection up, closing. */
  readonly timeoutMs: number
  /** First wait before reconnecting; doubles (with jitter) on every failed attempt. */
  readonly reconnectInitialDelayMs: number
  /** Longest wait between reconnection attempts. */
  readonly reconnectMaxDelayMs: number
  /**
   * Sets up a new connection: declares what every connection needs and opens its channels (closed,
   * in their order, before the connection when the bridge closes). `recycle` closes the connection
   * (unless the bridge is closing), so that it is re-established.
   */
  readonly setUp: (model: ChannelModel, recycle: () => void) => Effect.Effect<C, BridgeError>
  /** Called when the connection `lost` was lost, before reconnecting. */
  readonly onLost?: ((lost: Live<C>) => void) | undefined
  /** Called when the bridge closes, before its connection is closed. */
  readonly onClose?: (() => void) | undefined
  /**
   * What the connection is for, in log lines: `"connection"` (the default) for a bridge's main one.
   * Any other connection of a bridge is not counted in `herald_bridge_connected` and
   * `herald_bridge_reconnects_total`, which follow the main one.
   */
  readonly role?: string | undefined
}

/** The connection of a bridge, kept open by `make`'s supervisor (see `make`). */
export interface Supervisor<C extends Record<string, Channel> = Core> {
  /** The open connection, `undefined` while reconnecting or once closed. */
  readonly current: () => Live<C> | undefined
  /** True once the bridge is closing. */
  readonly isClosing: () => boolean
  /** When (epoch ms) the last reconnection completed; minus infinity before any. */
  readonly reconnectedAt: () => number
  /**
   * The open connection, waiting for it while reconnecting (at most `ms`, or until interrupted when
   * `ms` is undefined); fails once the bridge is closed.
   */
  readonly connected: (what: string, ms?: number) => Effect.Effect<Live<C>, BridgeError>
  /** Runs an effect in the background until the bridge closes. */
  readonly background: Background
  /** Logs a warning about the bridge, in the background. */
  readonly warn: (message: string) => void
  /** Held while resources are opened, so that a reconnection and an opening do not interleave. */
  readonly lock: Semaphore.Semaphore
  /** The resources re-opened on every new connection: add one to keep it, delete it to let it go. */
  readonly resources: Set<Resource<C>>
  /** Re-opens one resource on `on` with backoff, for as long as `on` is the connection and the resource is wanted. */
  readonly reopen: (resource: Resource<C>, on: Live<C>) => void
  /** Connects for the first time (failing when no target answers), then supervises the connection. */
  readonly start: Effect.Effect<void, BridgeError>
}

/**
 * Makes the supervisor of one connection of the bridge, owned by the current scope: when the scope
 * closes, its background fibers are interrupted, then the channels `setUp` opened and the connection
 * are closed. Connects only when `start` runs.
 */
export const make = <C extends Record<string, Channel>>(
  options: SupervisorOptions<C>
): Effect.Effect<Supervisor<C>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { targets, timeoutMs } = options
    const backoff = Schedule.exponential(options.reconnectInitialDelayMs).pipe(
      Schedule.jittered,
      Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.millis(options.reconnectMaxDelayMs))))
    )

    let live: Live<C> | undefined
    let closing = false
    let gate = Deferred.makeUnsafe<void>()
    let reconnectedAt = Number.NEGATIVE_INFINITY
    let nextTarget = 0
    const resources = new Set<Resource<C>>()
    const lock = yield* Semaphore.make(1)
    const role = options.role ?? "connection"
    const tracker = role === "connection" ? Metrics.connectionTracker("amqp", yield* Effect.context<never>()) : untracked
    // closing: registered before the background fibers, so it runs after they are interrupted
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closing = true
        tracker.disconnected()
        Deferred.doneUnsafe(gate, Exit.void)
        options.onClose?.()
        const last = live
        live = undefined
        if (last !== undefined && !last.dead) {
          for (const ch of Object.values(last.channels)) yield* bestEffort(timeoutMs, () => ch.close())
          yield* bestEffort(timeoutMs, () => last.model.close())
        }
      })
    )
    const background: Background = yield* FiberSet.makeRuntime<never, unknown, unknown>()
    const warn = (message: string) => void background(Effect.logWarning(`herald: amqp ${message}`))

    const connected = (what: string, ms?: number): Effect.Effect<Live<C>, BridgeError> =>
      Effect.suspend(() => {
        if (closing) return Effect.fail(fail(`${what}: the bridge is closed`))
        if (live !== undefined && !live.dead) return Effect.succeed(live)
        const wait = Effect.andThen(Deferred.await(gate), connected(what))
        return ms === undefined ? wait : within(`${what}: no connection`, ms)(wait)
      })

    /** Opens a connection to one target and sets it up (see `SupervisorOptions.setUp`). */
    const open = (target: Topology.Target): Effect.Effect<Live<C>, BridgeError> =>
      Effect.gen(function*() {
        let connecting: Promise<ChannelModel> | undefined
        const model = yield* attempt(`cannot connect to ${target.display}`, () => (connecting = amqp.connect(target.options, target.socket))).pipe(
          within(`cannot connect to ${target.display}`, timeoutMs + 1000),
          Effect.onError(() => Effect.sync(() => void connecting?.then((late) => late.close()).catch(noop)))
        )
        Topology.coalesceWrites(model)
        const closed = Deferred.makeUnsafe<string>()
        const self: { live?: Live<C> } = {}
        model.on("error", noop) // always followed by "close"
        model.on("close", (err?: Error) => {
          if (self.live !== undefined) self.live.dead = true
          Deferred.doneUnsafe(closed, Exit.succeed(err?.message ?? "closed"))
        })
        model.on("blocked", (reason) => warn(`the broker blocks publishing: ${reason}`))
        // a core channel closed by the broker (e.g. a publish to an exchange someone deleted) recycles the connection
        const recycle = () => void (closing ? undefined : model.close().catch(noop))
        const setUp = Effect.map(options.setUp(model, recycle), (channels) => {
          self.live = { model, channels, closed, dead: Deferred.isDoneUnsafe(closed) }
          return self.live
        })
        return yield* setUp.pipe(
          within(`set up the connection to ${target.display}`, timeoutMs),
          Effect.tapError(() => bestEffort(timeoutMs, () => model.close()))
        )
      })

    /** Tries every target once, starting with the one after the last that worked. */
    const connectAny = Effect.suspend(() => {
      const start = nextTarget
      const tryFrom = (i: number, errors: ReadonlyArray<string>): Effect.Effect<Live<C>, BridgeError> =>
        i === targets.length
          ? Effect.fail(fail(errors.join("; ")))
          : open(targets[(start + i) % targets.length]!).pipe(
            Effect.tap(() => Effect.sync(() => (nextTarget = (start + i) % targets.length))),
            Effect.catch((e) => tryFrom(i + 1, [...errors, e.reason]))
          )
      return tryFrom(0, [])
    })

    const adopt = (next: Live<C>, reconnected: boolean) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (closing) return void next.model.close().catch(noop)
        live = next
        tracker.connected()
        if (reconnected) reconnectedAt = now
        Deferred.doneUnsafe(gate, Exit.void)
      })

    const reopen = (resource: Resource<C>, on: Live<C>): void =>
      void background(
        Effect.suspend(() => (closing || on.dead || !resources.has(resource) ? Effect.void : lock.withPermit(resource.open(on)))).pipe(
          Effect.tapError((e) => Effect.logWarning(`herald: amqp ${e.reason}; retrying`)),
          Effect.retry(backoff),
          Effect.delay(Duration.millis(50))
        )
      )

    const start = Effect.gen(function*() {
      // the first connection: the bridge fails to build without it
      yield* adopt(yield* connectAny, false)
      // the supervisor: on connection loss, reconnect with backoff and re-open everything
      void background(Effect.gen(function*() {
        while (true) {
          const current = live!
          const reason = yield* Deferred.await(current.closed)
          if (closing) return
          live = undefined
          tracker.disconnected()
          gate = Deferred.makeUnsafe<void>()
          options.onLost?.(current)
          yield* Effect.logWarning(`herald: amqp ${role} lost (${reason}); reconnecting`)
          const next = yield* connectAny.pipe(Effect.retry(backoff))
          yield* lock.withPermit(Effect.forEach(resources, (r) =>
            r.open(next).pipe(Effect.catch((e) => Effect.sync(() => (warn(e.reason), reopen(r, next))))), { concurrency: 8, discard: true }))
          yield* adopt(next, true)
          yield* Effect.logInfo(`herald: amqp ${role} reconnected`)
        }
      }))
    })

    return {
      current: () => (live !== undefined && !live.dead ? live : undefined),
      isClosing: () => closing,
      reconnectedAt: () => reconnectedAt,
      connected,
      background,
      warn,
      lock,
      resources,
      reopen,
      start
    }
  })

/** Delay before an event whose handling failed is returned to its queue (the runtime already retried it in-process). */
const REQUEUE_DELAY = "1 second"
/** Non-durable subscriptions (no acknowledgements): deliveries beyond this many times the prefetch in flight are dropped. */
const NO_ACK_BACKLOG = 10

type Run = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

/**
 * A consumer owned by the current scope, on a channel of its own, of the queue `declare` declares;
 * each message goes to `handle` (see `consumer`). `settlement` says what happens when the handling
 * Effect ends:
 * - `requeue`: acked on success; requeued at once when interrupted, after a delay when it failed;
 * - `drop`: acked, unless interrupted (then requeued);
 * - `none`: consumed without acknowledgements (at most once); beyond `NO_ACK_BACKLOG` × prefetch
 *   handlers in flight, further deliveries are dropped and logged.
 * Closing the scope cancels the consumer; its channel closes once the messages in flight are settled.
 */
export type Consume = (
  what: string,
  declare: (ch: Channel) => Effect.Effect<string, BridgeError>,
  handle: (msg: ConsumeMessage) => Effect.Effect<void, unknown>,
  settlement: "requeue" | "drop" | "none",
  onStop?: (ch: Channel) => Promise<unknown>
) => Effect.Effect<void, BridgeError, Scope.Scope>

/**
 * The consumers of a bridge (see `Consume`): each is registered with `supervisor` as a resource, so
 * that it is re-opened on every new connection, and on its own when its channel closes. Consumers
 * with acknowledgements have `prefetch` deliveries in flight at most; `timeoutMs` bounds opening and
 * closing their channels.
 */
export const consumer = (supervisor: Supervisor, prefetch: number, timeoutMs: number): Consume => {
  const { background, connected, lock, reopen, resources, warn } = supervisor
  const runner = Effect.map(Effect.context<never>(), (ctx: Context.Context<never>): Run => Effect.runForkWith(ctx))

  const consume: Consume = (what, declare, handle, settlement, onStop) =>
    Effect.gen(function*() {
      const run = yield* runner
      const state: {
        channel?: Channel | undefined
        acker?: Topology.Acker
        on?: Live
        tag?: string
        inflight: number
        stopping: boolean
      } = {
        inflight: 0,
        stopping: false
      }
      const finish = (): void => {
        const ch = state.channel
        if (!state.stopping || state.inflight > 0 || ch === undefined) return
        state.channel = undefined
        state.acker?.flush()
        void background(Effect.andThen(
          onStop === undefined ? Effect.void : bestEffort(timeoutMs, () => onStop(ch)),
          bestEffort(timeoutMs, () => ch.close())
        ))
      }
      const noAck = settlement === "none"
      const backlog = NO_ACK_BACKLOG * prefetch
      let dropped = 0
      const settle = (acker: Topology.Acker, msg: ConsumeMessage, exit: Exit.Exit<void, unknown>) => {
        if (noAck) {
          if (dropped > 0 && state.inflight < backlog / 2) warn(`${what}: dropped ${dropped} deliveries while handlers were behind`)
          if (state.inflight < backlog / 2) dropped = 0
          return
        }
        if (Exit.isSuccess(exit) || (settlement === "drop" && !Cause.hasInterruptsOnly(exit.cause))) return acker.ack(msg)
        if (Cause.hasInterruptsOnly(exit.cause)) return acker.nack(msg, true)
        state.inflight++
        void background(Effect.sleep(REQUEUE_DELAY).pipe(
          Effect.ensuring(Effect.sync(() => (state.inflight--, acker.nack(msg, true), finish())))
        ))
      }
      const onMessage = (ch: Channel, acker: Topology.Acker) => (msg: ConsumeMessage | null) => {
        // null: the broker cancelled the consumer (its queue was deleted); closing the channel re-opens it
        if (msg === null) return void ch.close().catch(noop)
        if (state.stopping) return noAck ? undefined : acker.nack(msg, true)
        if (noAck && state.inflight >= backlog) {
          if (dropped++ === 0) warn(`${what}: ${backlog} deliveries in flight; dropping further ones (at most once)`)
          return
        }
        if (!noAck) acker.delivered(msg)
        state.inflight++
        run(handle(msg)).addObserver((exit) => {
          state.inflight--
          settle(acker, msg, exit)
          finish()
        })
      }
      const resource: Resource = {
        open: (on) =>
          Effect.suspend(() => {
            if (state.stopping || (state.channel !== undefined && state.on === on)) return Effect.void
            return Effect.gen(function*() {
              const ch = yield* attempt(`${what}: open a channel`, () => on.model.createChannel())
              let lost = false
              ch.on("error", (e: Error) => warn(`${what}: ${e.message}`))
              ch.on("close", () => {
                if (state.channel !== ch) return void (lost = true)
                state.channel = undefined
                if (!state.stopping) reopen(resource, on)
              })
              yield* Effect.gen(function*() {
                if (!noAck) yield* attempt(`${what}: set the prefetch`, () => ch.prefetch(prefetch))
                const queue = yield* declare(ch)
                const acker = Topology.makeAcker(ch)
                const { consumerTag } = yield* attempt(`${what}: consume ${queue}`, () =>
                  ch.consume(queue, onMessage(ch, acker), { noAck }))
                if (lost) return yield* fail(`${what}: the channel closed while opening`)
                state.channel = ch
                state.acker = acker
                state.on = on
                state.tag = consumerTag
              }).pipe(within(what, timeoutMs), Effect.tapError(() => bestEffort(timeoutMs, () => ch.close())))
            })
          })
      }
      // registered first, so that a reconnection from now on re-opens it; then opened now, waiting
      // for the connection outside the lock (a competing auto-delete queue may vanish under it: retried)
      resources.add(resource)
      yield* Effect.flatMap(connected(what, timeoutMs), () =>
        lock.withPermit(Effect.suspend(() => {
          const live = supervisor.current()
          return live !== undefined ? resource.open(live) : Effect.fail(fail(`${what}: the connection was lost`))
        }))).pipe(
          Effect.retry({ times: 2, schedule: Schedule.spaced("100 millis") }),
          Effect.tapError(() => {
            state.stopping = true
            resources.delete(resource)
            const ch = state.channel
            state.channel = undefined
            return ch === undefined ? Effect.void : bestEffort(timeoutMs, () => ch.close())
          })
        )
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          state.stopping = true
          resources.delete(resource)
          const ch = state.channel
          if (ch !== undefined && state.tag !== undefined) yield* bestEffort(timeoutMs, () => ch.cancel(state.tag!))
          finish()
        })
      )
    })
  return consume
}
