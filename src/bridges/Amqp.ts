/**
 * The AMQP 0-9-1 bridge (RabbitMQ): commands through per-command queues with direct reply-to,
 * events through one topic exchange with publisher confirms.
 *
 * - Commands: each is published to the default exchange with routing key
 *   `<prefix>.cmd.<service>.<version>.<command>`, `mandatory`, an `expiration` from its deadline and
 *   `reply_to` = direct reply-to. The queue is transient and auto-deleted with its last consumer, so
 *   it exists exactly while some instance serves it: an unroutable command comes back at once
 *   (`basic.return`) and becomes `NoResponder`.
 * - Events: published persistent, with publisher confirms, to the topic exchange `<prefix>.events`
 *   with routing key `<tenant-word>.<sender>.<event-name>`. Subscriptions bind their queue with keys
 *   derived from their filter's event names and tenants (a superset the runtime re-checks).
 * - Durable subscriptions use durable (quorum where available) queues, acknowledged after the
 *   handler succeeds; messages the broker gives up on go to `<prefix>.dead-letters`. Non-durable ones
 *   use transient queues consumed without acknowledgements (at most once, bounded in flight).
 * - The bridge reconnects by itself, with backoff over its URLs, and re-declares everything it
 *   declared; sends wait for the connection within their deadline.
 *
 * The wire mapping is specified in `docs/amqp-wire.md`.
 */
import * as amqp from "amqplib"
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Message, Options } from "amqplib"
import type { Context, Fiber, Scope } from "effect"
import { Cause, Clock, Deferred, Duration, Effect, Exit, FiberSet, Layer, Redacted, Schedule, Semaphore } from "effect"
import type { ConnectionOptions as TlsOptions } from "node:tls"
import {
  addressKey,
  Bridge,
  type BridgeShape,
  type CommandAddress,
  type Health,
  type IncomingCommand,
  type IncomingEvent
} from "../Bridge.ts"
import { BridgeError, NoResponder } from "../BridgeError.ts"
import * as Topology from "../internal/amqpTopology.ts"

/** Options of the AMQP bridge. Every option has a default; `AmqpBridge.layer()` talks to a local RabbitMQ as guest. */
export interface AmqpBridgeConfig {
  /**
   * Broker URL(s), `amqp://user:pass@host:port/vhost` or `amqps://…`. With several, the bridge
   * connects to the first that answers and fails over to the next ones in turn when it reconnects.
   * Default `"amqp://guest:guest@127.0.0.1:5672"`.
   */
  readonly urls?: string | ReadonlyArray<string> | undefined
  /** User name; overrides the one in the URLs. */
  readonly username?: string | undefined
  /** Password; overrides the one in the URLs. */
  readonly password?: string | Redacted.Redacted<string> | undefined
  /** Virtual host; overrides the URLs' path. Default: the URL's path, else `/`. */
  readonly vhost?: string | undefined
  /** TLS socket options (CA, client certificate, `servername`, …) for `amqps://` URLs; setting it requires one. */
  readonly tls?: TlsOptions | undefined
  /** Authenticate with the TLS client certificate (SASL `EXTERNAL`) instead of a user name and password. */
  readonly externalAuth?: boolean | undefined
  /** Connection name shown in the broker's management UI. Default `"herald"`. */
  readonly connectionName?: string | undefined
  /** AMQP heartbeat: a dead peer is detected after about twice this. `0` disables it. Default 10 s. */
  readonly heartbeat?: Duration.Input | undefined
  /**
   * First word(s) of every exchange and queue Herald declares: `[A-Za-z0-9_-]` words joined by `.`,
   * at most 64 characters. Default `"herald"`.
   */
  readonly prefix?: string | undefined
  /**
   * Unacknowledged messages in flight per command server and per durable subscription: the
   * backpressure bound. Non-durable subscriptions are consumed without acknowledgements (at most
   * once); with more than 10 × `prefetch` deliveries in flight they drop further ones, with a warning.
   * Default 100.
   */
  readonly prefetch?: number | undefined
  /** Type of the durable queues. Default `"quorum"` when the broker has quorum queues (RabbitMQ 3.8+), else `"classic"`. */
  readonly queueType?: "quorum" | "classic" | undefined
  /** Quorum queues: deliveries of one message before the broker dead-letters it to `<prefix>.dead-letters`. Default 20. */
  readonly deliveryLimit?: number | undefined
  /** Durable `broadcast` subscriptions: the broker deletes an instance's queue after this long without it. Default 10 min. */
  readonly broadcastExpiry?: Duration.Input | undefined
  /** Bound of one broker operation: connecting, declaring, a publisher confirm, an event publish while disconnected. Default 5 s. */
  readonly timeout?: Duration.Input | undefined
  /** First wait before reconnecting; doubles (with jitter) on every failed attempt up to `reconnectMaxDelay`. Default 100 ms. */
  readonly reconnectInitialDelay?: Duration.Input | undefined
  /** Longest wait between reconnection attempts. Default 5 s. */
  readonly reconnectMaxDelay?: Duration.Input | undefined
}

const BRIDGE = "amqp"
/** Delay before an event whose handling failed is returned to its queue (the runtime already retried it in-process). */
const REQUEUE_DELAY = "1 second"
/** Non-durable subscriptions (no acknowledgements): deliveries beyond this many times the prefetch in flight are dropped. */
const NO_ACK_BACKLOG = 10

const millis = (input: Duration.Input | undefined, fallback: Duration.Input): number =>
  Duration.toMillis(Duration.fromInputUnsafe(input ?? fallback))
const fail = (reason: string) => new BridgeError({ bridge: BRIDGE, reason })
const bridgeError = (what: string, e: unknown) => fail(`${what}: ${e instanceof Error ? e.message : String(e)}`)
const noop = () => undefined

/** Runs a promise-returning broker call as an Effect failing with a `BridgeError` that says what was being done. */
const attempt = <A>(what: string, thunk: () => Promise<A>): Effect.Effect<A, BridgeError> =>
  Effect.tryPromise({ try: thunk, catch: (e) => bridgeError(what, e) })

/** Bounds an effect by `ms`, failing with a `BridgeError` on timeout. */
const within = (what: string, ms: number) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | BridgeError, R> =>
  Effect.timeoutOrElse(effect, { duration: ms, orElse: () => Effect.fail(fail(`${what}: timed out after ${ms} ms`)) })

/** Runs a cleanup promise, bounded and ignoring failures (the broker may already be gone). */
const bestEffort = (ms: number, thunk: () => Promise<unknown>): Effect.Effect<void> =>
  Effect.ignore(Effect.timeoutOption(Effect.tryPromise(thunk), ms))

/** One open connection with the channels every bridge has: requests and replies, and confirmed event publishes. */
interface Live {
  readonly model: ChannelModel
  readonly rpc: Channel
  readonly pub: ConfirmChannel
  /** Completed, with the broker's or the socket's reason, when the connection has closed. */
  readonly closed: Deferred.Deferred<string>
  dead: boolean
}

interface Pending {
  readonly key: string
  /** Completes the waiting request. */
  readonly resume: (result: Effect.Effect<Uint8Array, NoResponder | BridgeError>) => void
  /** The channel the request went out on: replies can only come back while it is open. */
  readonly sentOn: Channel
}

/** Something the bridge declared on the broker, re-created on every new connection. */
interface Resource {
  /** Opens the resource on `live` unless it is open there already. */
  readonly open: (live: Live) => Effect.Effect<void, BridgeError>
}

type Run = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

/** Builds an AMQP bridge that lives as long as the current scope: connects now, closes channels and connection at the end. */
export const make = (config: AmqpBridgeConfig = {}): Effect.Effect<BridgeShape, BridgeError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = config.prefix ?? "herald"
    if (!Topology.isValidPrefix(prefix)) {
      return yield* fail(`prefix ${JSON.stringify(prefix)} is not [A-Za-z0-9_-] words joined by '.' (at most 64 characters)`)
    }
    const prefetch = config.prefetch ?? 100
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65535) return yield* fail(`prefetch must be 1..65535, got ${prefetch}`)
    const timeoutMs = millis(config.timeout, "5 seconds")
    const maxDelayMs = millis(config.reconnectMaxDelay, "5 seconds")
    const targets = Topology.targetsOf({
      urls: typeof config.urls === "string" ? [config.urls] : [...(config.urls ?? ["amqp://guest:guest@127.0.0.1:5672"])],
      username: config.username,
      password: config.password === undefined || typeof config.password === "string" ? config.password : Redacted.value(config.password),
      vhost: config.vhost,
      tls: config.tls,
      externalAuth: config.externalAuth ?? false,
      heartbeatSeconds: Math.round(millis(config.heartbeat, "10 seconds") / 1000),
      timeoutMs,
      connectionName: config.connectionName ?? "herald"
    })
    if (typeof targets === "string") return yield* fail(targets)
    const exchange = Topology.eventsExchange(prefix)
    const backoff = Schedule.exponential(millis(config.reconnectInitialDelay, "100 millis")).pipe(
      Schedule.jittered,
      Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.millis(maxDelayMs))))
    )
    let settings: Topology.QueueSettings | undefined

    let live: Live | undefined
    let closing = false
    let gate = Deferred.makeUnsafe<void>()
    let reconnectedAt = Number.NEGATIVE_INFINITY
    let nextTarget = 0
    let seq = 0
    const pending = new Map<string, Pending>()
    const resources = new Set<Resource>()
    const lock = yield* Semaphore.make(1)
    // closing: registered before the background fibers, so it runs after they are interrupted
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        closing = true
        Deferred.doneUnsafe(gate, Exit.void)
        failPending("the bridge closed")
        const last = live
        live = undefined
        if (last !== undefined && !last.dead) {
          yield* bestEffort(timeoutMs, () => last.rpc.close())
          yield* bestEffort(timeoutMs, () => last.pub.close())
          yield* bestEffort(timeoutMs, () => last.model.close())
        }
      })
    )
    const background = yield* FiberSet.makeRuntime<never, unknown, unknown>()
    const warn = (message: string) => void background(Effect.logWarning(`herald: amqp ${message}`))

    /**
     * The open connection, waiting for it while reconnecting (at most `ms`, or until interrupted when
     * `ms` is undefined); fails once the bridge is closed.
     */
    const connected = (what: string, ms?: number): Effect.Effect<Live, BridgeError> =>
      Effect.suspend(() => {
        if (closing) return Effect.fail(fail(`${what}: the bridge is closed`))
        if (live !== undefined && !live.dead) return Effect.succeed(live)
        const wait = Effect.andThen(Deferred.await(gate), connected(what))
        return ms === undefined ? wait : within(`${what}: no connection`, ms)(wait)
      })

    // publishes waiting for their confirm; a sweeper fails the overdue ones (cheaper than a timer each)
    const confirms = Topology.makeConfirms()
    void background(Effect.forever(Effect.andThen(
      Effect.sleep(Duration.millis(Math.min(Math.max(timeoutMs / 10, 10), 250))),
      Effect.map(Clock.currentTimeMillis, (now) => confirms.sweep(now))
    )))

    /** Ends the request waiting for `id`, if any, with `result`. */
    const settleRequest = (id: unknown, result: (key: string) => Effect.Effect<Uint8Array, NoResponder | BridgeError>) => {
      const entry = pending.get(String(id))
      if (entry === undefined) return
      pending.delete(String(id))
      entry.resume(result(entry.key))
    }
    const failPending = (reason: string, on?: Channel) => {
      for (const [id, p] of pending) {
        if (on === undefined || p.sentOn === on) settleRequest(id, (key) => Effect.fail(fail(`request ${key}: ${reason}`)))
      }
    }

    /** Opens a connection to one target and sets up the exchanges, the dead-letter queue and the core channels. */
    const open = (target: Topology.Target): Effect.Effect<Live, BridgeError> =>
      Effect.gen(function*() {
        let connecting: Promise<ChannelModel> | undefined
        const model = yield* attempt(`cannot connect to ${target.display}`, () => (connecting = amqp.connect(target.options, target.socket))).pipe(
          within(`cannot connect to ${target.display}`, timeoutMs + 1000),
          Effect.onError(() => Effect.sync(() => void connecting?.then((late) => late.close()).catch(noop)))
        )
        Topology.coalesceWrites(model)
        const closed = Deferred.makeUnsafe<string>()
        const self: { live?: Live } = {}
        model.on("error", noop) // always followed by "close"
        model.on("close", (err?: Error) => {
          if (self.live !== undefined) self.live.dead = true
          Deferred.doneUnsafe(closed, Exit.succeed(err?.message ?? "closed"))
        })
        model.on("blocked", (reason) => warn(`the broker blocks publishing: ${reason}`))
        // a core channel closed by the broker (e.g. a publish to an exchange someone deleted) recycles the connection
        const recycle = () => void (closing ? undefined : model.close().catch(noop))
        const setUp = Effect.gen(function*() {
          settings ??= {
            queueType: config.queueType ??
              (Topology.supportsQuorum(model.connection.serverProperties.version) ? "quorum" : "classic"),
            deliveryLimit: config.deliveryLimit ?? 20,
            broadcastExpiresMs: millis(config.broadcastExpiry, "10 minutes")
          }
          yield* attempt("declare the exchanges and the dead-letter queue", () => Topology.declareCore(model, prefix, settings!))
          const rpc = yield* attempt("open the request channel", () => model.createChannel())
          rpc.on("error", noop)
          rpc.on("close", () => (failPending("the connection was lost", rpc), recycle()))
          // a command nobody serves is unroutable (its queue exists only while served): returned at once
          rpc.on("return", (msg: Message) =>
            settleRequest(msg.properties.correlationId, (address) => Effect.fail(new NoResponder({ address }))))
          yield* attempt("consume direct replies", () =>
            rpc.consume(Topology.DIRECT_REPLY_TO, (msg) => {
              if (msg !== null) settleRequest(msg.properties.correlationId, () => Effect.succeed(msg.content))
            }, { noAck: true }))
          const pub = yield* attempt("open the publish channel", () => model.createConfirmChannel())
          pub.on("error", noop)
          pub.on("close", recycle)
          self.live = { model, rpc, pub, closed, dead: Deferred.isDoneUnsafe(closed) }
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
      const tryFrom = (i: number, errors: ReadonlyArray<string>): Effect.Effect<Live, BridgeError> =>
        i === targets.length
          ? Effect.fail(fail(errors.join("; ")))
          : open(targets[(start + i) % targets.length]!).pipe(
            Effect.tap(() => Effect.sync(() => (nextTarget = (start + i) % targets.length))),
            Effect.catch((e) => tryFrom(i + 1, [...errors, e.reason]))
          )
      return tryFrom(0, [])
    })

    const adopt = (next: Live, reconnected: boolean) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (closing) return void next.model.close().catch(noop)
        live = next
        if (reconnected) reconnectedAt = now
        Deferred.doneUnsafe(gate, Exit.void)
      })

    /** Re-opens one resource on `on` with backoff, for as long as `on` is the connection and the resource is wanted. */
    const reopen = (resource: Resource, on: Live): void =>
      void background(
        Effect.suspend(() => (closing || on.dead || !resources.has(resource) ? Effect.void : lock.withPermit(resource.open(on)))).pipe(
          Effect.tapError((e) => Effect.logWarning(`herald: amqp ${e.reason}; retrying`)),
          Effect.retry(backoff),
          Effect.delay(Duration.millis(50))
        )
      )

    // the first connection: the bridge fails to build without it
    yield* adopt(yield* connectAny, false)
    // the supervisor: on connection loss, reconnect with backoff and re-open everything
    void background(Effect.gen(function*() {
      while (true) {
        const current = live!
        const reason = yield* Deferred.await(current.closed)
        if (closing) return
        live = undefined
        gate = Deferred.makeUnsafe<void>()
        failPending("the connection was lost", current.rpc)
        yield* Effect.logWarning(`herald: amqp connection lost (${reason}); reconnecting`)
        const next = yield* connectAny.pipe(Effect.retry(backoff))
        yield* lock.withPermit(Effect.forEach(resources, (r) =>
          r.open(next).pipe(Effect.catch((e) => Effect.sync(() => (warn(e.reason), reopen(r, next))))), { concurrency: 8, discard: true }))
        yield* adopt(next, true)
        yield* Effect.logInfo(`herald: amqp reconnected`)
      }
    }))

    const runner = Effect.map(Effect.context<never>(), (ctx: Context.Context<never>): Run => Effect.runForkWith(ctx))

    /** The display key and queue of a command address (cached per address object), or why it cannot be one. */
    const commandTargets = new WeakMap<CommandAddress, { readonly key: string; readonly queue: string }>()
    const commandTarget = (address: CommandAddress): { readonly key: string; readonly queue: string } | string => {
      const known = commandTargets.get(address)
      if (known !== undefined) return known
      const key = addressKey(address)
      if (!Topology.isValidAddress(address)) return `${key}: not a valid AMQP address`
      const target = { key, queue: Topology.commandQueue(prefix, address) }
      commandTargets.set(address, target)
      return target
    }

    /**
     * A consumer owned by the current scope, on a channel of its own, of the queue `declare` declares;
     * each message goes to `handle`. `settle` says what happens when the handling Effect ends:
     * - `requeue`: acked on success; requeued at once when interrupted, after a delay when it failed;
     * - `drop`: acked, unless interrupted (then requeued);
     * - `none`: consumed without acknowledgements (at most once); beyond `NO_ACK_BACKLOG` × prefetch
     *   handlers in flight, further deliveries are dropped and logged.
     * Closing the scope cancels the consumer; its channel closes once the messages in flight are settled.
     */
    const consume = (
      what: string,
      declare: (ch: Channel) => Effect.Effect<string, BridgeError>,
      handle: (msg: ConsumeMessage) => Effect.Effect<void, unknown>,
      settlement: "requeue" | "drop" | "none",
      onStop?: (ch: Channel) => Promise<unknown>
    ) =>
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
          lock.withPermit(Effect.suspend(() =>
            live !== undefined && !live.dead ? resource.open(live) : Effect.fail(fail(`${what}: the connection was lost`))
          ))).pipe(
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

    const bridge: BridgeShape = {
      name: BRIDGE,
      capabilities: { durable: true, persistent: true },
      health: Effect.sync((): Health => (closing ? "closed" : live !== undefined && !live.dead ? "connected" : "reconnecting")),
      pendingRequests: Effect.sync(() => pending.size),

      publish: (route, bytes) =>
        Effect.withFiber((fiber) => {
          const what = `publish ${route.eventName}`
          const key = Topology.routingKey(route)
          if (key === undefined) return Effect.fail(fail(`${what}: the event name and sender service must be routing-key words`))
          const content = Topology.toBuffer(bytes)
          const options: Options.Publish = {
            persistent: true,
            contentType: Topology.CONTENT_TYPE,
            messageId: route.id,
            type: route.eventName
          }
          const clock = fiber.getRef(Clock.Clock)
          const deadline = clock.currentTimeMillisUnsafe() + timeoutMs
          // confirmed by the broker once routed (and, for durable queues, stored); a publish lost to a
          // dropped connection is sent again on the next one, until the deadline
          const once = (on: Live) =>
            Effect.callback<void, BridgeError>((resume) =>
              Effect.sync(confirms.publish(on.pub, exchange, key, content, options, deadline, (err) =>
                resume(err === undefined ? Effect.void : Effect.fail(bridgeError(what, err))))))
          const again = (e: BridgeError): Effect.Effect<void, BridgeError> => {
            const left = deadline - clock.currentTimeMillisUnsafe()
            return closing || left <= 50
              ? Effect.fail(e)
              : Effect.andThen(Effect.sleep("50 millis"), Effect.catch(Effect.flatMap(connected(what, left), once), again))
          }
          return Effect.catch(live !== undefined && !live.dead ? once(live) : Effect.flatMap(connected(what, timeoutMs), once), again)
        }),

      serve: (address, handler) =>
        Effect.gen(function*() {
          const target = commandTarget(address)
          if (typeof target === "string") return yield* fail(`serve ${target}`)
          const { key, queue } = target
          const reply = (msg: ConsumeMessage) => (bytes: Uint8Array): Effect.Effect<void, BridgeError> => {
            const to: unknown = msg.properties.replyTo
            if (typeof to !== "string" || to === "") return Effect.void
            const correlationId: unknown = msg.properties.correlationId
            const options: Options.Publish = {
              contentType: Topology.CONTENT_TYPE,
              ...(typeof correlationId === "string" ? { correlationId } : {})
            }
            const send = (on: Live) =>
              Effect.try({ try: () => void on.rpc.publish("", to, Topology.toBuffer(bytes), options), catch: (e) => bridgeError(`reply ${key}`, e) })
            return live !== undefined && !live.dead ? send(live) : Effect.flatMap(connected(`reply ${key}`, timeoutMs), send)
          }
          yield* consume(
            `serve ${key}`,
            (ch) => Effect.as(attempt(`declare queue ${queue}`, () => ch.assertQueue(queue, Topology.commandQueueOptions)), queue),
            (msg) => handler({ bytes: msg.content, reply: reply(msg) } satisfies IncomingCommand),
            "drop"
          )
        }),

      request: (address, bytes, expiresAt) =>
        Effect.withFiber((fiber) => {
          const target = commandTarget(address)
          if (typeof target === "string") return Effect.fail(fail(`request ${target}`))
          if (closing) return Effect.fail(fail(`request ${target.key}: the bridge is closed`))
          const content = Topology.toBuffer(bytes)
          const clock = fiber.getRef(Clock.Clock)
          // the pending entry lives exactly as long as the wait: removed by the reply, or on interruption
          const send = (on: Live) =>
            Effect.callback<Uint8Array, NoResponder | BridgeError>((resume) => {
              const id = String(++seq)
              try {
                on.rpc.publish("", target.queue, content, {
                  replyTo: Topology.DIRECT_REPLY_TO,
                  correlationId: id,
                  expiration: Topology.expirationOf(expiresAt, clock.currentTimeMillisUnsafe()),
                  mandatory: true,
                  contentType: Topology.CONTENT_TYPE
                })
              } catch (e) {
                return resume(Effect.fail(bridgeError(`request ${target.key}`, e)))
              }
              pending.set(id, { key: target.key, resume, sentOn: on.rpc })
              return Effect.sync(() => void pending.delete(id))
            })
          const inGrace = () => clock.currentTimeMillisUnsafe() - reconnectedAt < maxDelayMs + 1000
          if (live !== undefined && !live.dead && !inGrace()) return send(live)
          // right after a reconnection the servers of the address may not have re-declared their queue
          // yet: a NoResponder then is retried (until the caller's deadline interrupts) instead of final
          const retried: Effect.Effect<Uint8Array, NoResponder | BridgeError> = Effect.catch(
            Effect.flatMap(connected(`request ${target.key}`), send),
            (e) => e._tag === "NoResponder" && inGrace() ? Effect.andThen(Effect.sleep("100 millis"), retried) : Effect.fail(e)
          )
          return retried
        }),

      subscribe: (spec, handler) =>
        Effect.gen(function*() {
          const what = `subscribe ${spec.service}/${spec.version}/${spec.subscription}`
          const queue = Topology.subscriptionQueue(prefix, spec)
          if (queue === undefined) return yield* fail(`${what}: the names do not make a valid AMQP queue name`)
          const keys = Topology.bindingKeys(spec)
          if (keys.length === 0) return yield* Effect.logDebug(`herald: amqp ${what}: no event name can match`)
          const options = Topology.subscriptionQueueOptions(prefix, spec, settings!)
          const declare = (ch: Channel) =>
            Effect.gen(function*() {
              yield* attempt(`declare queue ${queue}`, () => ch.assertQueue(queue, options))
              for (const k of keys) yield* attempt(`bind queue ${queue} to ${k}`, () => ch.bindQueue(queue, exchange, k))
              return queue
            })
          const handle = (msg: ConsumeMessage) =>
            handler({
              bytes: msg.content,
              deliveryCount: Topology.deliveryCountOf(msg.fields.redelivered, msg.properties.headers)
            } satisfies IncomingEvent)
          // a durable broadcast queue belongs to this instance alone: removed when the instance leaves
          const onStop = spec.durable && spec.delivery === "broadcast" ? (ch: Channel) => ch.deleteQueue(queue) : undefined
          yield* consume(what, declare, handle, spec.durable ? "requeue" : "none", onStop)
        })
    }
    return bridge
  })

/** The AMQP bridge as a Layer: connects when built, closes its channels and connection when released. */
export const layer = (config?: AmqpBridgeConfig): Layer.Layer<Bridge, BridgeError, never> => Layer.effect(Bridge, make(config))
