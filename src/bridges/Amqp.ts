/**
 * The AMQP 0-9-1 bridge (RabbitMQ): commands through per-command queues with direct reply-to,
 * events through one topic exchange with publisher confirms.
 *
 * - Commands: each is published to the default exchange with routing key
 *   `<prefix>.cmd.<service>.<version>.<command>`, `mandatory`, an `expiration` from its deadline and
 *   `reply_to` = direct reply-to. The queue is transient and auto-deleted with its last consumer, so
 *   it exists exactly while some instance serves it: an unroutable command comes back at once
 *   (`basic.return`) and becomes `NoResponder`. A serving bridge publishes replies on a connection
 *   of their own: a reply to a direct reply-to name RabbitMQ cannot decode closes the connection it
 *   is published on.
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
import type { Channel, ConsumeMessage, Message, Options } from "amqplib"
import { Clock, Duration, Effect, Exit, Layer, Redacted, Scope, Semaphore } from "effect"
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
import { type BridgeError, NoResponder } from "../BridgeError.ts"
import * as Connection from "../internal/amqpConnection.ts"
import { attempt, BRIDGE, bridgeError, fail, type Live, noop } from "../internal/amqpConnection.ts"
import { millis, toBuffer } from "../internal/bridgeKit.ts"
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
  /**
   * Connection name shown in the broker's management UI. Default `"herald"`. A bridge that serves
   * commands has a second connection for its replies, named `"<connectionName> (replies)"`.
   */
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

/** The channel of a serving bridge's reply connection. */
type Replies = { readonly reply: Channel }

interface Pending {
  readonly key: string
  /** Completes the waiting request. */
  readonly resume: (result: Exit.Exit<Uint8Array, NoResponder | BridgeError>) => void
  /** The channel the request went out on: replies can only come back while it is open. */
  readonly sentOn: Channel
}
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
    const connectionName = config.connectionName ?? "herald"
    const targets = Topology.targetsOf({
      urls: typeof config.urls === "string" ? [config.urls] : [...(config.urls ?? ["amqp://guest:guest@127.0.0.1:5672"])],
      username: config.username,
      password: config.password === undefined || typeof config.password === "string" ? config.password : Redacted.value(config.password),
      vhost: config.vhost,
      tls: config.tls,
      externalAuth: config.externalAuth ?? false,
      heartbeatSeconds: Math.round(millis(config.heartbeat, "10 seconds") / 1000),
      timeoutMs,
      connectionName
    })
    if (typeof targets === "string") return yield* fail(targets)
    const exchange = Topology.eventsExchange(prefix)
    let settings: Topology.QueueSettings | undefined

    let seq = 0
    const pending = new Map<string, Pending>()

    /** Ends the request waiting for `id`, if any, with `result`. */
    const settleRequest = (id: unknown, result: (key: string) => Exit.Exit<Uint8Array, NoResponder | BridgeError>) => {
      const entry = pending.get(String(id))
      if (entry === undefined) return
      pending.delete(String(id))
      entry.resume(result(entry.key))
    }
    const failPending = (reason: string, on?: Channel) => {
      for (const [id, p] of pending) {
        if (on === undefined || p.sentOn === on) settleRequest(id, (key) => Exit.fail(fail(`request ${key}: ${reason}`)))
      }
    }

    // the connection and its supervisor: its finalizer (registered now, before its background fibers)
    // closes the connection once they are interrupted
    const reconnection = {
      targets,
      timeoutMs,
      reconnectInitialDelayMs: millis(config.reconnectInitialDelay, "100 millis"),
      reconnectMaxDelayMs: maxDelayMs
    }
    const connection = yield* Connection.make({
      ...reconnection,
      // sets up a new connection: exchanges and the dead-letter queue, the request and publish channels
      setUp: (model, recycle) =>
        Effect.gen(function*() {
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
            settleRequest(msg.properties.correlationId, (address) => Exit.fail(new NoResponder({ address }))))
          yield* attempt("consume direct replies", () =>
            rpc.consume(Topology.DIRECT_REPLY_TO, (msg) => {
              if (msg !== null) settleRequest(msg.properties.correlationId, () => Exit.succeed(msg.content))
            }, { noAck: true }))
          const pub = yield* attempt("open the publish channel", () => model.createConfirmChannel())
          pub.on("error", noop)
          pub.on("close", recycle)
          return { rpc, pub }
        }),
      onLost: (lost) => failPending("the connection was lost", lost.channels.rpc),
      onClose: () => failPending("the bridge closed")
    })
    const { background, connected } = connection

    // publishes waiting for their confirm; a sweeper fails the overdue ones (cheaper than a timer each)
    const confirms = Topology.makeConfirms()
    void background(Effect.forever(Effect.andThen(
      Effect.sleep(Duration.millis(Math.min(Math.max(timeoutMs / 10, 10), 250))),
      Effect.map(Clock.currentTimeMillis, (now) => confirms.sweep(now))
    )))

    // the first connection (the bridge fails to build without it), then the supervision of it
    yield* connection.start
    const consume = Connection.consumer(connection, prefetch, timeoutMs)

    // the connection replies go out on, opened with the first `serve`: RabbitMQ closes the connection
    // a reply is published on when it cannot decode the reply's direct reply-to name (541, sent by a
    // broken or hostile client); on a connection of their own that loses the replies in flight only,
    // not the bridge's consumers, calls and publishes
    const bridgeScope = yield* Effect.scope
    const replyLock = yield* Semaphore.make(1)
    let replyConnectionOpen: Connection.Supervisor<Replies> | undefined
    const replyConnection = replyLock.withPermit(Effect.suspend(() => {
      if (replyConnectionOpen !== undefined) return Effect.succeed(replyConnectionOpen)
      return Effect.flatMap(Scope.fork(bridgeScope), (scope) =>
        Effect.gen(function*() {
          const supervisor = yield* Connection.make<Replies>({
            ...reconnection,
            targets: targets.map((t) => ({
              ...t,
              socket: { ...t.socket, clientProperties: { connection_name: `${connectionName} (replies)` } }
            })),
            role: "reply connection",
            setUp: (model, recycle) =>
              Effect.map(attempt("open the reply channel", () => model.createChannel()), (reply) => {
                reply.on("error", noop)
                reply.on("close", recycle)
                return { reply }
              })
          }).pipe(Scope.provide(scope))
          yield* Effect.mapError(supervisor.start, (e) => fail(`the reply connection: ${e.reason}`))
          return (replyConnectionOpen = supervisor)
        }).pipe(Effect.onError(() => Scope.close(scope, Exit.void))))
    }))

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

    /** Right after a reconnection, when the servers of an address may not have re-declared their queue yet. */
    const inGrace = (now: number) => now - connection.reconnectedAt() < maxDelayMs + 1000

    /**
     * Sends a command on `on` and registers its wait for the reply, returning the cancellation of the
     * wait; when the send fails, `done` gets the failure at once.
     */
    const sendRequest = (
      on: Live,
      target: { readonly key: string; readonly queue: string },
      content: Buffer,
      expiresAt: number,
      now: number,
      done: Pending["resume"]
    ): () => void => {
      const id = String(++seq)
      try {
        on.channels.rpc.publish("", target.queue, content, {
          replyTo: Topology.DIRECT_REPLY_TO,
          correlationId: id,
          expiration: Topology.expirationOf(expiresAt, now),
          mandatory: true,
          contentType: Topology.CONTENT_TYPE
        })
      } catch (e) {
        done(Exit.fail(bridgeError(`request ${target.key}`, e)))
        return noop
      }
      pending.set(id, { key: target.key, resume: done, sentOn: on.channels.rpc })
      return () => void pending.delete(id)
    }

    const bridge: BridgeShape = {
      name: BRIDGE,
      capabilities: { durable: true, persistent: true },
      health: Effect.sync((): Health =>
        connection.isClosing() ? "closed" : connection.current() !== undefined ? "connected" : "reconnecting"
      ),
      pendingRequests: Effect.sync(() => pending.size),

      publish: (route, bytes) =>
        Effect.withFiber((fiber) => {
          const what = `publish ${route.eventName}`
          const key = Topology.routingKey(route)
          if (key === undefined) return Effect.fail(fail(`${what}: the event name and sender service must be routing-key words`))
          const content = toBuffer(bytes)
          const options: Options.Publish = {
            persistent: true,
            contentType: Topology.CONTENT_TYPE,
            messageId: route.id,
            type: route.eventName
          }
          const clock = fiber.getRef(Clock.Clock)
          const deadline = clock.currentTimeMillisUnsafe() + timeoutMs
          // confirmed by the broker once routed (and, for durable queues, stored); a publish lost to a
          // dropped connection is sent again on the next one, until the deadline (failures of the
          // send go to `again` from the confirm callback: no error handler on the way when it succeeds);
          // an interrupted publish stops waiting for its confirm
          const once = (on: Live): Effect.Effect<void, BridgeError> =>
            Effect.callback((resume) =>
              Effect.sync(confirms.publish(on.channels.pub, exchange, key, content, options, deadline, (err) =>
                resume(err === undefined ? Effect.void : again(bridgeError(what, err))))))
          const whenConnected = (ms: number) => Effect.matchEffect(connected(what, ms), { onFailure: again, onSuccess: once })
          const again = (e: BridgeError): Effect.Effect<void, BridgeError> => {
            const left = deadline - clock.currentTimeMillisUnsafe()
            return connection.isClosing() || left <= 50 ? Effect.fail(e) : Effect.andThen(Effect.sleep("50 millis"), whenConnected(left))
          }
          const live = connection.current()
          return live !== undefined ? once(live) : whenConnected(timeoutMs)
        }),

      serve: (address, handler) =>
        Effect.gen(function*() {
          const target = commandTarget(address)
          if (typeof target === "string") return yield* fail(`serve ${target}`)
          const { key, queue } = target
          const replies = yield* Effect.mapError(replyConnection, (e) => fail(`serve ${key}: ${e.reason}`))
          const reply = (msg: ConsumeMessage) => (bytes: Uint8Array): Effect.Effect<void, BridgeError> => {
            const to: unknown = msg.properties.replyTo
            if (typeof to !== "string" || to === "") return Effect.void
            const correlationId: unknown = msg.properties.correlationId
            const options: Options.Publish = {
              contentType: Topology.CONTENT_TYPE,
              ...(typeof correlationId === "string" ? { correlationId } : {})
            }
            const send = (on: Live<Replies>) =>
              Effect.try({
                try: () => void on.channels.reply.publish("", to, toBuffer(bytes), options),
                catch: (e) => bridgeError(`reply ${key}`, e)
              })
            const live = replies.current()
            return live !== undefined ? send(live) : Effect.flatMap(replies.connected(`reply ${key}`, timeoutMs), send)
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
          if (connection.isClosing()) return Effect.fail(fail(`request ${target.key}: the bridge is closed`))
          const content = toBuffer(bytes)
          const clock = fiber.getRef(Clock.Clock)
          // the pending entry lives exactly as long as the wait: removed by the reply, or on interruption
          const send = (on: Live) =>
            Effect.callback<Uint8Array, NoResponder | BridgeError>((resume) =>
              Effect.sync(sendRequest(on, target, content, expiresAt, clock.currentTimeMillisUnsafe(), resume))
            )
          const live = connection.current()
          if (live !== undefined && !inGrace(clock.currentTimeMillisUnsafe())) return send(live)
          // right after a reconnection the servers of the address may not have re-declared their queue
          // yet: a NoResponder then is retried (until the caller's deadline interrupts) instead of final
          const retried: Effect.Effect<Uint8Array, NoResponder | BridgeError> = Effect.catch(
            Effect.flatMap(connected(`request ${target.key}`), send),
            (e) =>
              e._tag === "NoResponder" && inGrace(clock.currentTimeMillisUnsafe())
                ? Effect.andThen(Effect.sleep("100 millis"), retried)
                : Effect.fail(e)
          )
          return retried
        }),

      startRequest: (address, bytes, expiresAt, done) => {
        const target = commandTarget(address)
        if (typeof target === "string" || connection.isClosing()) return undefined
        const live = connection.current()
        const now = Date.now()
        if (live === undefined || inGrace(now)) return undefined
        return sendRequest(live, target, toBuffer(bytes), expiresAt, now, done)
      },

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
