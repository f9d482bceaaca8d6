/**
 * The NATS bridge: commands over core NATS request/reply with queue groups, events over JetStream.
 *
 * - Commands: served on `<prefix>.cmd.<service>.<version>.<command>` in the queue group
 *   `<service>.<version>`; requests reply to one wildcard inbox per bridge; the server's
 *   no-responders status (503) becomes `NoResponder` at once.
 * - Events: published to `<prefix>.evt.<tenant>.<sender>.<event-name>` through JetStream (the
 *   publish succeeds once the stream stored it). Non-durable subscriptions are core NATS
 *   subscriptions (queue groups for `shared`); durable ones are JetStream pull consumers, acked
 *   after the handler succeeds and nak'ed when it fails or is interrupted.
 *
 * The wire mapping is specified in `docs/nats-wire.md`.
 */
import type { ConsumerConfig, ConsumerMessages, JsMsg } from "@nats-io/jetstream"
import { jetstreamManager } from "@nats-io/jetstream"
import type { Msg, MsgHdrs, NatsConnection } from "@nats-io/transport-node"
import { connect, headers, nuid } from "@nats-io/transport-node"
import type { Context, Fiber, Scope } from "effect"
import { Cause, Clock, Deferred, Effect, Exit, Layer, Option, Schedule, Stream } from "effect"
import { addressKey, Bridge, type BridgeShape, type Health, type SubscriptionSpec } from "../Bridge.ts"
import { type BridgeError, NoResponder } from "../BridgeError.ts"
import * as Metrics from "../Metrics.ts"
import { bestEffort, millis } from "../internal/bridgeKit.ts"
import { attempt, BRIDGE, bridgeError, codeOf, connectionOptions, ensureStream, fail, type NatsBridgeConfig, within } from "../internal/natsSetup.ts"
import * as Subjects from "../internal/natsSubjects.ts"

export type { NatsBridgeConfig } from "../internal/natsSetup.ts"

/** Delay before a failed durable event is redelivered (the runtime has already retried it in-process). */
const NAK_DELAY_MS = 1000
/** Lifetime of one pull request of a durable consumer (heartbeats every half of it). */
const PULL_EXPIRES_MS = 5000
/** JetStream API error: a consumer of that name exists with another configuration (servers 2.10+). */
const CONSUMER_EXISTS = 10148

const ackDecoder = new TextDecoder()

/** The failure a JetStream PubAck reports (`{"error":{…}}`), or `undefined` when the event was stored. */
const pubAckError = (ack: Uint8Array): Effect.Effect<never, BridgeError> | undefined => {
  let parsed: { readonly error?: { readonly description?: unknown }; readonly stream?: unknown } | undefined
  try {
    parsed = JSON.parse(ackDecoder.decode(ack)) as typeof parsed
  } catch {
    return Effect.fail(fail("publish: the stream's acknowledgement is not JSON"))
  }
  if (parsed?.error !== undefined) return Effect.fail(fail(`publish: the stream refused the event: ${String(parsed.error.description)}`))
  return typeof parsed?.stream === "string" ? undefined : Effect.fail(fail("publish: unexpected stream acknowledgement"))
}

interface Pending {
  readonly key: string
  /** Ends the waiting request or publish with the reply (or the PubAck), or with why there is none. */
  readonly done: (exit: Exit.Exit<Uint8Array, NoResponder | BridgeError>) => void
}

/** Builds a NATS bridge that lives as long as the current scope. */
export const make = (config: NatsBridgeConfig = {}): Effect.Effect<BridgeShape, BridgeError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = config.subjectPrefix ?? "herald"
    if (!Subjects.isTokens(prefix)) {
      return yield* fail(`subjectPrefix ${JSON.stringify(prefix)} is not NATS tokens ([A-Za-z0-9_-] joined by '.')`)
    }
    const streamName = config.streamName ?? Subjects.streamNameOf(prefix)
    if (!Subjects.isToken(streamName)) return yield* fail(`streamName ${JSON.stringify(streamName)} may only hold [A-Za-z0-9_-]`)
    const replicas = config.streamReplicas ?? 1
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
      return yield* fail(`streamReplicas ${replicas} is not an integer from 1 to 5`)
    }
    const timeoutMs = millis(config.timeout, "5 seconds")
    const drainMs = millis(config.drainTimeout, "5 seconds")
    const graceMs = millis(config.reconnectMaxWait, "5 seconds") + 1000

    let conn: NatsConnection | undefined
    const { options, servers } = connectionOptions(config, timeoutMs, () => conn)
    const nc = yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const connecting = connect(options)
        return Effect.tryPromise({ try: () => connecting, catch: (e) => bridgeError(`cannot connect to ${servers}`, e) }).pipe(
          Effect.timeoutOrElse({
            duration: timeoutMs + 1000,
            orElse: () =>
              Effect.andThen(
                Effect.sync(() => void connecting.then((late) => late.close(), () => undefined)),
                Effect.fail(fail(`cannot connect to ${servers}: timed out`))
              )
          })
        )
      }),
      (nc) => Effect.andThen(bestEffort(drainMs, () => nc.drain()), bestEffort(drainMs, () => nc.close()))
    )
    conn = nc
    const tracker = Metrics.connectionTracker("nats", yield* Effect.context<never>())
    tracker.connected()
    yield* Effect.addFinalizer(() => Effect.sync(tracker.disconnected))

    const pending = new Map<string, Pending>()
    let requests = 0 // entries of `pending` that are command requests (the others wait for a PubAck)
    const failPending = (reason: string) => {
      for (const p of pending.values()) p.done(Exit.fail(fail(`request ${p.key}: ${reason}`)))
    }
    // nats.js drops what is published while disconnected, so sends wait for this gate (open while connected)
    let health: Health = "connected"
    let gate = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(gate, Exit.void)
    let reconnectedAt = Number.NEGATIVE_INFINITY
    yield* Stream.fromAsyncIterable(nc.status(), (e) => e).pipe(
      Stream.runForEach((status) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          if (status.type === "disconnect" || status.type === "reconnecting" || status.type === "staleConnection") {
            health = "reconnecting"
            tracker.disconnected()
            if (Deferred.isDoneUnsafe(gate)) gate = Deferred.makeUnsafe<void>()
          } else if (status.type === "reconnect" || status.type === "close") {
            health = status.type === "close" ? "closed" : "connected"
            if (status.type === "close") tracker.disconnected()
            else tracker.connected()
            reconnectedAt = now
            Deferred.doneUnsafe(gate, Exit.void)
            if (status.type === "close") failPending("the connection closed")
          }
        })
      ),
      Effect.ignore,
      Effect.forkScoped
    )
    /** Waits until the connection is up; fails when it is closed for good. */
    const connected = (what: string) =>
      Effect.andThen(
        Effect.suspend(() => Deferred.await(gate)),
        Effect.suspend(() => (nc.isClosed() ? Effect.fail(fail(`${what}: the connection is closed`)) : Effect.void))
      )
    /** Whether sends can go out now, without waiting for the gate (the common case). */
    const isUp = () => Deferred.isDoneUnsafe(gate) && !nc.isClosed()
    const flush = (what: string) => attempt(what, () => nc.flush()).pipe(within(what, timeoutMs))
    const runner = Effect.map(Effect.context<never>(), (ctx: Context.Context<never>): Run => Effect.runForkWith(ctx))
    /**
     * A core NATS subscription owned by the current scope (drained, bounded, then unsubscribed when it
     * closes); each message goes to `onMessage` with a runner for the context of the subscriber.
     */
    const subscribeCore = (what: string, subject: string, queue: string | undefined, onMessage: (msg: Msg, run: Run) => void) =>
      Effect.flatMap(runner, (run) =>
        Effect.acquireRelease(
          Effect.try({
            try: () =>
              nc.subscribe(subject, {
                ...(queue === undefined ? {} : { queue }),
                callback: (err, msg) =>
                  err === null ? onMessage(msg, run) : void run(Effect.logWarning(`herald: nats ${what}: ${err.message}`))
              }),
            catch: (e) => bridgeError(what, e)
          }),
          (sub) => Effect.andThen(bestEffort(drainMs, () => sub.drain()), Effect.ignore(Effect.try(() => sub.unsubscribe())))
        ))

    const jsm = yield* attempt("JetStream is not available", () => jetstreamManager(nc, { timeout: timeoutMs }))
    const js = jsm.jetstream()
    yield* ensureStream(jsm, Subjects.streamConfig(streamName, prefix, millis(config.streamMaxAge, 0), config.streamMaxBytes ?? -1, replicas))
    const consumerSettings: Subjects.ConsumerSettings = {
      ackWaitMs: millis(config.ackWait, "30 seconds"),
      maxAckPending: config.maxAckPending ?? 256,
      inactiveMs: millis(config.broadcastInactiveThreshold, "10 minutes"),
      multiFilter: Subjects.supportsFilterSubjects(nc.info?.version)
    }

    const storeRetries = Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("1 second")]).pipe(
      Schedule.upTo({ duration: timeoutMs })
    )

    // one wildcard inbox for every request of this bridge: `<inbox>.<n>` answers pending request n
    const inbox = Subjects.inboxOf(prefix, nuid.next())
    let seq = 0
    yield* Effect.addFinalizer(() => Effect.sync(() => failPending("the bridge closed")))
    yield* subscribeCore("subscribe the reply inbox", `${inbox}.*`, undefined, (msg) => {
      const entry = pending.get(msg.subject.slice(inbox.length + 1))
      if (entry === undefined) return
      const noResponders = msg.headers?.code === 503 && msg.data.length === 0
      entry.done(noResponders ? Exit.fail(new NoResponder({ address: entry.key })) : Exit.succeed(msg.data))
    })
    yield* flush("subscribe the reply inbox")

    /**
     * Publishes `bytes` to `subject` with a reply subject in the bridge's inbox and waits for the
     * answer: one callback, registered in `pending` exactly while it waits (removed on the answer, a
     * failed send and interruption). `key` names it in `NoResponder` and when the connection closes,
     * `what` in a failed send; `isRequest` counts it in `pendingRequests`.
     */
    const exchange = (key: string, what: string, subject: string, bytes: Uint8Array, h: MsgHdrs | undefined, isRequest: boolean) =>
      Effect.callback<Uint8Array, NoResponder | BridgeError>((resume) => {
        const id = String(++seq)
        const forget = () => {
          if (pending.delete(id) && isRequest) requests--
        }
        pending.set(id, {
          key,
          done: (exit) => {
            forget()
            resume(exit)
          }
        })
        if (isRequest) requests++
        try {
          nc.publish(subject, bytes, h === undefined ? { reply: `${inbox}.${id}` } : { reply: `${inbox}.${id}`, headers: h })
        } catch (e) {
          forget()
          return resume(Effect.fail(bridgeError(what, e)))
        }
        return Effect.sync(forget)
      })

    /** Creates the durable consumer, or updates it when it exists with another configuration. */
    const ensureConsumer = (name: string, cfg: Partial<ConsumerConfig>) =>
      Effect.tryPromise({ try: () => jsm.consumers.add(streamName, cfg), catch: (e) => e }).pipe(
        Effect.catch((e) =>
          codeOf(e) === CONSUMER_EXISTS
            ? attempt(`update consumer ${name}`, () => jsm.consumers.update(streamName, name, cfg))
            : Effect.fail(bridgeError(`create consumer ${name}`, e))
        ),
        within(`create consumer ${name}`, timeoutMs),
        Effect.asVoid
      )

    const consumeDurable = (spec: SubscriptionSpec, subjects: ReadonlyArray<string>, handler: EventHandler) =>
      Effect.gen(function*() {
        const name = Subjects.consumerName(spec)
        const cfg = Subjects.consumerConfig(spec, subjects, consumerSettings)
        yield* ensureConsumer(name, cfg)
        // a broadcast consumer belongs to this instance alone: remove it when the instance leaves
        if (spec.delivery === "broadcast") {
          yield* Effect.addFinalizer(() => bestEffort(drainMs, () => jsm.consumers.delete(streamName, name)))
        }
        const run = yield* runner
        // while a handler runs, tell the server it is still working so ack_wait does not redeliver it
        const every = Math.max(consumerSettings.ackWaitMs / 3, 100)
        const heartbeat = (m: JsMsg) =>
          Effect.forever(Effect.andThen(Effect.sleep(every), Effect.ignore(Effect.try(() => m.working()))))
        const settle = (m: JsMsg, exit: Exit.Exit<void, BridgeError>) => {
          try {
            if (Exit.isSuccess(exit)) m.ack()
            else m.nak(Cause.hasInterruptsOnly(exit.cause) ? undefined : NAK_DELAY_MS)
          } catch {
            // the connection is closed: the server redelivers after ack_wait
          }
        }
        let stopped = false
        const start = Effect.flatMap(
          attempt(`open consumer ${name}`, () => js.consumers.get(streamName, name)),
          (consumer) =>
            attempt(`consume ${name}`, () =>
              consumer.consume({
                max_messages: Math.min(consumerSettings.maxAckPending, 100),
                // a pull lives this long; the server sends heartbeats every half of it and two missed
                // ones make the client pull again: it bounds the stall when a cluster moves the consumer
                expires: PULL_EXPIRES_MS,
                callback: (m) => {
                  if (stopped) return settle(m, Exit.interrupt())
                  const handle = handler({ bytes: m.data, deliveryCount: m.info.deliveryCount })
                  run(Effect.andThen(Effect.forkChild(heartbeat(m)), handle)).addObserver((exit) => settle(m, exit))
                }
              }))
        )
        let current = yield* start
        yield* Effect.addFinalizer(() =>
          Effect.andThen(Effect.sync(() => (stopped = true)), bestEffort(drainMs, () => current.close()))
        )
        // when the consumer disappears (deleted by an operator, idle past its threshold), recreate it and
        // consume again: the running pull would otherwise only notice after missed heartbeats
        const watch = (messages: ConsumerMessages): Effect.Effect<void, BridgeError> =>
          Stream.fromAsyncIterable(messages.status(), (e) => e).pipe(
            Stream.filter((n) => n.type === "consumer_not_found" || n.type === "consumer_deleted"),
            Stream.runHead,
            Effect.map(Option.isSome),
            Effect.orElseSucceed(() => false),
            Effect.flatMap((lost) =>
              lost
                ? Effect.andThen(ensureConsumer(name, cfg), start).pipe(
                  Effect.retry(Schedule.spaced("1 second")),
                  Effect.tap((next) =>
                    Effect.andThen(Effect.sync(() => (current = next)), bestEffort(drainMs, () => messages.close()))
                  ),
                  Effect.flatMap(watch)
                )
                : Effect.void
            )
          )
        yield* Effect.forkScoped(Effect.ignore(watch(current)))
      })

    const bridge: BridgeShape = {
      name: BRIDGE,
      capabilities: { durable: true, persistent: true },
      health: Effect.sync(() => (nc.isClosed() ? "closed" : health)),
      // the inbox also waits for publish acknowledgements: only the command requests count here
      pendingRequests: Effect.sync(() => requests),

      publish: (route, bytes) =>
        Effect.suspend(() => {
          const subject = Subjects.eventSubject(prefix, route)
          const what = `publish ${route.eventName}`
          if (subject === undefined) return Effect.fail(fail(`${what}: the event name and sender service must be NATS tokens`))
          const h = headers()
          h.set("Content-Type", "application/cloudevents+json")
          // JetStream de-duplicates on the envelope id: a retried publish is stored once
          h.set("Nats-Msg-Id", route.id)
          // published with a reply subject in the bridge's inbox: the stream answers with its PubAck
          const store = Effect.flatMap(
            within(what, timeoutMs)(exchange(what, what, subject, bytes, h, false)),
            (ack) => pubAckError(ack) ?? Effect.void
          )
          // no responder: the stream is not (yet) there, e.g. just after a server restart, or has no
          // leader while a cluster elects one (seconds after a node is lost): retry for `timeout`
          const stored = Effect.catch(store, (e) =>
            e._tag !== "NoResponder" ? Effect.fail(e) : Effect.retry(store, { schedule: storeRetries, while: (e) => e._tag === "NoResponder" }).pipe(
              Effect.mapError((e) => e._tag === "NoResponder" ? fail(`${what}: no JetStream stream stores ${subject}`) : e)
            ))
          return isUp() ? stored : Effect.andThen(connected(what).pipe(within(what, timeoutMs)), stored)
        }),

      serve: (address, handler) =>
        Effect.gen(function*() {
          const key = addressKey(address)
          if (!Subjects.isValidAddress(address)) return yield* fail(`serve ${key}: not a valid NATS address`)
          const reply = (to: string | undefined) => (bytes: Uint8Array) => {
            if (to === undefined) return Effect.void
            const send = Effect.try({ try: () => nc.publish(to, bytes), catch: (e) => bridgeError(`reply ${key}`, e) })
            return isUp() ? send : connected(`reply ${key}`).pipe(within(`reply ${key}`, timeoutMs), Effect.andThen(send))
          }
          const subject = Subjects.commandSubject(prefix, address)
          yield* subscribeCore(`serve ${key}`, subject, Subjects.commandQueue(address), (msg, run) =>
            void run(handler({ bytes: msg.data, reply: reply(msg.reply) })))
          yield* flush(`serve ${key}`)
        }),

      request: (address, bytes) =>
        Effect.suspend(() => {
          const key = addressKey(address)
          if (!Subjects.isValidAddress(address)) return Effect.fail(fail(`request ${key}: not a valid NATS address`))
          if (nc.isClosed()) return Effect.fail(fail(`request ${key}: the connection is closed`))
          const send = exchange(key, `request ${key}`, Subjects.commandSubject(prefix, address), bytes, undefined, true)
          const once = Effect.suspend(() => (isUp() ? send : Effect.andThen(connected(`request ${key}`), send)))
          // right after a reconnection the servers of the address may not have re-subscribed yet:
          // a NoResponder then is retried (until the caller's deadline interrupts) instead of final
          const retried: Effect.Effect<Uint8Array, NoResponder | BridgeError> = Effect.catch(once, (e) =>
            e._tag !== "NoResponder" ? Effect.fail(e) : Effect.flatMap(
              Clock.currentTimeMillis,
              (now) => now - reconnectedAt < graceMs ? Effect.andThen(Effect.sleep("100 millis"), retried) : Effect.fail(e)
            ))
          return retried
        }),

      subscribe: (spec, handler) =>
        Effect.gen(function*() {
          const subjects = Subjects.filterSubjects(prefix, spec)
          const what = `subscribe ${spec.service}/${spec.version}/${spec.subscription}`
          if (subjects.length === 0) return yield* Effect.logDebug(`herald: nats ${what}: no event name can match`)
          if (spec.durable) return yield* consumeDurable(spec, subjects, handler)
          const queue = spec.delivery === "shared" ? Subjects.eventQueue(spec) : undefined
          for (const subject of subjects) {
            yield* subscribeCore(what, subject, queue, (msg, run) => void run(handler({ bytes: msg.data, deliveryCount: 1 })))
          }
          yield* flush(what)
        })
    }
    return bridge
  })

type EventHandler = Parameters<BridgeShape["subscribe"]>[1]
type Run = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

/** The NATS bridge as a Layer: connects when built, drains and closes when released. */
export const layer = (config?: NatsBridgeConfig): Layer.Layer<Bridge, BridgeError, never> => Layer.effect(Bridge, make(config))
