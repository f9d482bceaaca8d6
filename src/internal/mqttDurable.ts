/**
 * Durable subscriptions of the MQTT bridge: each one gets a persistent session of its own (one per
 * service for `shared` delivery, guarded by a retained lease; one per instance for `broadcast`),
 * whose QoS 1 messages are acknowledged by hand, only after the handler succeeded. A failed handler
 * reconnects the session so that the broker delivers the event again (MQTT has no nak).
 *
 * The bridge (`src/bridges/Mqtt.ts`) owns the connection, the lease mirror and the helpers; it
 * passes them in a `DurableContext`.
 */
import type { Fiber } from "effect"
import { Cause, Deferred, Effect, Exit, Schedule, Scope } from "effect"
import { connect, type IClientOptions, type IClientPublishOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from "mqtt"
import type { BridgeShape, SubscriptionSpec } from "../Bridge.ts"
import type { BridgeError } from "../BridgeError.ts"
import * as Topics from "./mqttTopics.ts"

/** Publishes on a client and waits for mqtt.js's callback (the bridge's `publishOn`). */
export type PublishOn = (
  client: MqttClient,
  batch: (client: MqttClient) => void,
  what: string,
  topic: string,
  payload: Buffer,
  options: IClientPublishOptions
) => Effect.Effect<void, BridgeError>

const EMPTY = Buffer.alloc(0)
/** Delay before a durable session whose handler failed reconnects to get the event again (MQTT has no nak). */
const NAK_DELAY_MS = 1000
/** Returned to mqtt.js by a durable session so that it does not acknowledge the message itself. */
const MANUAL_ACK = new Error("herald acknowledges after the handler")

/** Runs an effect in the background with the context it was captured in. */
export type Run = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
/** The handler of an event subscription, as the bridge receives it. */
export type EventHandler = Parameters<BridgeShape["subscribe"]>[1]

/** The resolved bridge options a durable session needs. */
export interface DurableSettings {
  /** Broker URL. */
  readonly url: string
  /** First levels of every Herald topic. */
  readonly prefix: string
  /** Client options shared by every connection of the bridge (protocol, credentials, TLS…). */
  readonly base: IClientOptions
  /** Session expiry of `shared` sessions, in seconds. */
  readonly sessionExpiry: number
  /** Session expiry of `broadcast` sessions, in seconds. */
  readonly broadcastExpiry: number
  /** Unacknowledged events in flight per session (MQTT Receive Maximum). */
  readonly maxInflight: number
  /** Bound of one broker operation, in milliseconds. */
  readonly timeoutMs: number
  /** Wait between reconnection attempts, in milliseconds. */
  readonly reconnectMs: number
  /** How often leases are refreshed, in milliseconds. */
  readonly presenceMs: number
  /** Expiry of a lease message, in seconds. */
  readonly ttl: number
  /** How long closing a session waits for running handlers, in milliseconds. */
  readonly drainMs: number
}

/** What the bridge lends its durable subscriptions: its settings, state and helpers. */
export interface DurableContext {
  /** The bridge's resolved options. */
  readonly settings: DurableSettings
  /** The bridge's own client id: the holder written in its leases. */
  readonly clientId: string
  /** The bridge's mirror of the retained leases, by lease topic. */
  readonly leases: Topics.Mirror<string>
  /** The current time in milliseconds, from the bridge's clock. */
  readonly now: () => number
  /** Runs an effect in the bridge's context. */
  readonly run: Run
  /** Captures the current context as a `Run`. */
  readonly runner: Effect.Effect<Run>
  /** The bridge's scope: sessions live in scopes forked from it. */
  readonly bridgeScope: Scope.Scope
  /** Waits until the bridge's connection is up and in sync. */
  readonly awaitGate: Effect.Effect<void>
  /** True while the bridge's connection is up and in sync. */
  readonly isUp: () => boolean
  /** The last connection error the bridge saw. */
  readonly lastError: () => string
  /** Records a connection error. */
  readonly setLastError: (message: string) => void
  /** A new write batcher, for one session's socket. */
  readonly newBatcher: () => (client: MqttClient) => void
  /** Turns Nagle's algorithm off on a client's socket. */
  readonly noDelay: (client: MqttClient) => void
  /** Publishes and waits for mqtt.js's callback. */
  readonly publishOn: PublishOn
  /** A `BridgeError` of the MQTT bridge. */
  readonly fail: (reason: string) => BridgeError
  /** A `BridgeError` of the MQTT bridge describing `e`. */
  readonly bridgeError: (what: string, e: unknown) => BridgeError
  /** Bounds an effect by `ms`, failing with a `BridgeError` on timeout. */
  readonly within: (what: string, ms: number) => <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E | BridgeError>
  /** Runs an effect for at most `ms`, ignoring its failure. */
  readonly bestEffort: <A, E>(ms: number, effect: Effect.Effect<A, E>) => Effect.Effect<void>
  /** The payload of a message as bytes. */
  readonly bytesOf: (packet: IPublishPacket) => Uint8Array
  /** Removes one element from an array, if present. */
  readonly remove: <A>(xs: Array<A>, x: A) => void
}

/** The local consumers of one durable session and the state of its delivery. */
interface Durable {
  readonly members: Array<{ readonly handler: EventHandler; readonly run: Run }>
  next: number
  inflight: number
  stopped: boolean
  readonly ready: Deferred.Deferred<void>
  readonly scope: Scope.Closeable
}

/** Acknowledges a QoS 1 message by hand (mqtt.js has no public call for it). */
const acknowledge = (client: MqttClient, messageId: number) =>
  (client as unknown as { _sendPacket: (packet: object) => void })._sendPacket({ cmd: "puback", messageId, reasonCode: 0 })

/**
 * The durable subscriptions of one bridge: returns the function that adds a local consumer to the
 * durable session of `spec`, opening the session for the first one and closing it with the last.
 */
export const makeDurables = (
  ctx: DurableContext
): (spec: SubscriptionSpec, filters: ReadonlyArray<string>, handler: EventHandler) => Effect.Effect<void, BridgeError, Scope.Scope> => {
  const { settings: s, clientId, leases, now, run, runner, bridgeScope, awaitGate, isUp, lastError, setLastError } = ctx
  const { newBatcher, noDelay, publishOn, fail, bridgeError, within, bestEffort, bytesOf, remove } = ctx
  const { prefix, timeoutMs } = s
  const durables = new Map<string, Durable>()

  /** Runs one durable session: waits for its lease (shared), connects, consumes, and starts over when the connection ends. */
  const holdSession = (group: Durable, spec: SubscriptionSpec, id: string, filters: ReadonlyArray<string>) => {
    const lease = spec.delivery === "shared" ? Topics.leaseTopic(prefix, spec) : undefined
    let naking = false
    const batchSession = newBatcher()
    const deliver = (session: MqttClient, packet: IPublishPacket) => {
      if (group.stopped || group.members.length === 0) return // not acknowledged: delivered again later
      const member = group.members[group.next++ % group.members.length]!
      group.inflight++
      member.run(member.handler({ bytes: bytesOf(packet), deliveryCount: packet.dup ? 2 : 1 })).addObserver((exit) => {
        group.inflight--
        if (packet.qos === 0 || packet.messageId === undefined || !session.connected) return
        if (Exit.isSuccess(exit)) return (batchSession(session), acknowledge(session, packet.messageId))
        if (Cause.hasInterruptsOnly(exit.cause) || naking) return
        // no nak in MQTT: reconnect the session so the broker sends the unacknowledged event again
        naking = true
        run(Effect.sleep(NAK_DELAY_MS).pipe(Effect.andThen(Effect.sync(() => ((naking = false), session.end(true))))))
      })
    }
    const leaseFree = () => {
      const holder = lease === undefined ? undefined : leases.get(lease, now())
      if (holder !== undefined && holder !== clientId) Deferred.doneUnsafe(group.ready, Exit.void) // the session is held
      return holder === undefined || holder === clientId
    }
    const open = Effect.suspend(() => {
      const ended = Deferred.makeUnsafe<void>()
      const session = connect(s.url, {
        ...s.base,
        clientId: id,
        clean: false,
        reconnectPeriod: 0,
        properties: { sessionExpiryInterval: lease === undefined ? s.broadcastExpiry : s.sessionExpiry, receiveMaximum: s.maxInflight },
        ...(lease === undefined ? {} : { will: { topic: lease, payload: EMPTY, qos: 1 as const, retain: true } })
      })
      session.handleMessage = (packet, done) => {
        deliver(session, packet)
        done(packet.qos > 0 ? MANUAL_ACK : undefined)
      }
      session.on("error", (e) => void setLastError(e.message))
      session.on("close", () => Deferred.doneUnsafe(ended, Exit.void))
      return Effect.callback<IConnackPacket, BridgeError>((resume) => {
        const settle = (result: Effect.Effect<IConnackPacket, BridgeError>) => {
          session.off("connect", onConnect).off("close", onClose)
          resume(result)
        }
        const onConnect = (connack: IConnackPacket) => settle(Effect.succeed(connack))
        const onClose = () => settle(Effect.fail(fail(`durable session ${id}: cannot connect: ${lastError()}`)))
        session.on("connect", onConnect).on("close", onClose)
      }).pipe(
        within(`durable session ${id}`, timeoutMs),
        Effect.map((connack) => ({ session, connack, ended })),
        Effect.onError(() => Effect.sync(() => session.end(true)))
      )
    })
    let refreshed = Number.NEGATIVE_INFINITY
    const refreshLease = (session: MqttClient, topic: string) =>
      Effect.suspend(() => {
        refreshed = now()
        return publishOn(session, batchSession, "lease", topic, Buffer.from(Topics.encodeLease(clientId)), {
          qos: 1,
          retain: true,
          properties: { messageExpiryInterval: s.ttl }
        })
      })
    /** Refreshes the lease every interval, and at once when the mirror shows it lost (e.g. to a late Last Will). */
    const keepLease = (session: MqttClient, topic: string) =>
      Effect.forever(Effect.andThen(
        Effect.suspend(() =>
          leases.get(topic, now()) === clientId && now() - refreshed < s.presenceMs ? Effect.void : refreshLease(session, topic)
        ),
        Effect.sleep(500)
      ))
    const consume = Effect.acquireUseRelease(
      open,
      ({ ended, session }) =>
        Effect.gen(function*() {
          noDelay(session)
          // every time, not only for a new session: a new version of the subscription may add filters
          yield* Effect.callback<void, BridgeError>((resume) => {
            session.subscribe([...filters], { qos: 1, rh: 2 }, (e) => resume(e ? Effect.fail(bridgeError(`subscribe ${id}`, e)) : Effect.void))
          }).pipe(within(`subscribe ${id}`, timeoutMs))
          if (lease !== undefined) yield* refreshLease(session, lease).pipe(within(`lease ${id}`, timeoutMs))
          Deferred.doneUnsafe(group.ready, Exit.void)
          const waitEnd = Deferred.await(ended)
          yield* lease === undefined ? waitEnd : Effect.raceFirst(waitEnd, keepLease(session, lease))
        }),
      ({ session }, exit) =>
        Exit.hasInterrupts(exit)
          ? Effect.gen(function*() {
            // closing: let running handlers acknowledge, then leave (shared: the Last Will frees the lease)
            group.stopped = true
            yield* bestEffort(
              s.drainMs,
              Effect.repeat(Effect.sync(() => group.inflight === 0), { schedule: Schedule.spaced(20), until: (idle) => idle })
            )
            yield* bestEffort(
              timeoutMs,
              Effect.tryPromise(() =>
                session.endAsync(
                  lease === undefined ? { reasonCode: 0, properties: { sessionExpiryInterval: 0 } } : { reasonCode: 4 }
                )
              )
            )
            session.end(true)
          })
          : Effect.sync(() => session.end(true))
    )
    const waitLease = Effect.repeat(Effect.sync(leaseFree), { schedule: Schedule.spaced(200), until: (free) => free })
    return awaitGate.pipe(
      Effect.andThen(waitLease),
      Effect.andThen(consume),
      // an expected outage of the broker is logged once by the connection, not by every session
      Effect.catch((e) => isUp() ? Effect.logWarning(`herald: mqtt ${e.message}`) : Effect.logDebug(`herald: mqtt ${e.message}`)),
      Effect.andThen(Effect.suspend(() => Effect.sleep(s.reconnectMs + Math.floor(Math.random() * 250)))),
      Effect.forever
    )
  }

  const consumeDurable = (spec: SubscriptionSpec, filters: ReadonlyArray<string>, handler: EventHandler) =>
    Effect.gen(function*() {
      const id = Topics.durableClientId(prefix, spec)
      const member = { handler, run: yield* runner }
      let group = durables.get(id)
      if (group === undefined) {
        const scope = yield* Scope.fork(bridgeScope)
        group = { members: [], next: 0, inflight: 0, stopped: false, ready: Deferred.makeUnsafe(), scope }
        durables.set(id, group)
        yield* Effect.forkIn(holdSession(group, spec, id, filters), scope)
      }
      const owned = group
      owned.members.push(member)
      yield* Effect.addFinalizer(() =>
        Effect.suspend(() => {
          remove(owned.members, member)
          if (owned.members.length > 0 || durables.get(id) !== owned) return Effect.void
          durables.delete(id)
          return Scope.close(owned.scope, Exit.void)
        })
      )
      yield* Deferred.await(owned.ready).pipe(within(`subscribe ${id}`, timeoutMs))
    })

  return consumeDurable
}
