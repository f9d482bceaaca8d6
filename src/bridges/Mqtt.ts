/**
 * The MQTT 5 bridge: commands over shared subscriptions with request/response properties, events
 * over QoS 1 publishes, durable subscriptions over persistent sessions acknowledged by hand.
 *
 * - Commands: published to `<prefix>/cmd/<service>/<version>/<command>` with a Response Topic (the
 *   bridge's inbox), Correlation Data and a Message Expiry Interval taken from the deadline, and
 *   served through `$share/<service>.<version>.<command>/…`. Every bridge announces the addresses it
 *   serves in a retained presence message (cleared on exit and by its Last Will) and mirrors
 *   everyone's, so a call nobody serves fails with `NoResponder` after one round trip at most.
 * - Events: published with QoS 1 to `<prefix>/evt/<tenant>/<sender>/<event/name>`; the publish
 *   succeeds on PUBACK. Non-durable subscriptions use the bridge's connection (`$share/` for
 *   `shared` delivery); a durable one gets a persistent session of its own whose messages are
 *   acknowledged only after the handler succeeded.
 *
 * The wire mapping is specified in `docs/mqtt-wire.md`.
 */
import type { Context } from "effect"
import { Clock, Deferred, Effect, Exit, Layer, Scheduler, Scope } from "effect"
import { connect, type IClientPublishOptions, type IPublishPacket, type MqttClient } from "mqtt"
import { addressKey, Bridge, type BridgeShape, type Health } from "../Bridge.ts"
import { BridgeError, NoResponder } from "../BridgeError.ts"
import * as Metrics from "../Metrics.ts"
import { makeDurables, type PublishOn, type Run } from "../internal/mqttDurable.ts"
import { makePresence } from "../internal/mqttPresence.ts"
import { BRIDGE, bridgeError, fail, type MqttBridgeConfig, settingsOf, within } from "../internal/mqttSettings.ts"
import * as Topics from "../internal/mqttTopics.ts"
import { toBuffer } from "../internal/bridgeKit.ts"
import { writeBatcher } from "../internal/mqttWrites.ts"

export type { MqttBridgeConfig, MqttTlsOptions } from "../internal/mqttSettings.ts"

const CONTENT_TYPE = "application/cloudevents+json"
const EMPTY = Buffer.alloc(0)

const bestEffort = <A, E>(ms: number, effect: Effect.Effect<A, E>): Effect.Effect<void> => Effect.ignore(Effect.timeoutOption(effect, ms))
const bytesOf = (packet: IPublishPacket): Uint8Array => typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload
const remove = <A>(xs: Array<A>, x: A) => {
  const i = xs.indexOf(x)
  if (i >= 0) xs.splice(i, 1)
}

type Member = (packet: IPublishPacket) => void
const runner = Effect.map(Effect.context<never>(), (ctx: Context.Context<never>): Run => Effect.runForkWith(ctx))

/** One broker subscription of the bridge's connection, shared by every local consumer of its filter. */
interface Route {
  readonly id: number
  readonly filter: string
  readonly qos: 0 | 1
  /** The registry wants retained messages; commands and events are never retained, so they skip them. */
  readonly retained: boolean
  /** Every member gets each message (broadcast), or one in turn (commands, shared events). */
  readonly fanout: boolean
  readonly members: Array<Member>
  next: number
  readonly ready: Deferred.Deferred<void, BridgeError>
}

/** Turns Nagle's algorithm off on the client's socket (TCP or TLS; a no-op for WebSockets). */
const noDelay = (client: MqttClient) => (client.stream as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true)

/** Publishes and waits for mqtt.js's callback: the PUBACK for QoS 1, the write for QoS 0. */
const publishOn: PublishOn = (client, batch, what, topic, payload, options) =>
  Effect.callback<void, BridgeError>((resume) => {
    batch(client)
    client.publish(topic, payload, options, (e) => resume(e ? Effect.fail(bridgeError(what, e)) : Effect.void))
  })

/** Builds an MQTT bridge that lives as long as the current scope. */
export const make = (config: MqttBridgeConfig = {}): Effect.Effect<BridgeShape, BridgeError, Scope.Scope> =>
  Effect.gen(function*() {
    const s = yield* settingsOf(config)
    const { prefix, timeoutMs } = s
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const run = yield* runner
    const scheduler = yield* Scheduler.Scheduler
    const newBatcher = () => {
      const dispatcher = scheduler.makeDispatcher()
      return writeBatcher((task) => dispatcher.scheduleTask(task, 0))
    }
    const batch = newBatcher()
    const bridgeScope = yield* Effect.scope
    const clientId = `${s.clientIdPrefix}-${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`
    const inbox = Topics.inboxTopic(prefix, clientId)
    const presenceTopic = Topics.presenceTopic(prefix, clientId)
    const graceMs = s.reconnectMs + 1000
    const tracker = Metrics.connectionTracker("mqtt", yield* Effect.context<never>())

    let health: Health = "reconnecting"
    let closed = false
    let generation = 0
    let reconnectedAt = Number.NEGATIVE_INFINITY
    let lastError = "no answer"
    // open while connected and in sync with the broker's registry; sends wait for it
    let gate = Deferred.makeUnsafe<void>()
    const routes = new Map<string, Route>()
    const byId = new Map<number, Route>()
    let routeIds = 0
    /** Requests waiting for their reply, by correlation data; each entry resumes its caller once. */
    const pending = new Map<string, (reply: Effect.Effect<Uint8Array, BridgeError>) => void>()
    /** Event publishes waiting for their PUBACK; a sweep fails those older than the timeout. */
    const unconfirmed = new Set<{ readonly at: number; readonly expire: () => void }>()
    const barriers = new Map<string, Deferred.Deferred<Uint8Array, BridgeError>>()
    let seq = 0
    const leases = new Topics.Mirror<string>()

    const client = yield* Effect.try({
      try: () =>
        connect(s.url, {
          ...s.base,
          clientId,
          clean: true,
          reconnectPeriod: s.reconnectMs,
          properties: { sessionExpiryInterval: 0 },
          // a crash or a lost connection clears this bridge's presence at once
          will: { topic: presenceTopic, payload: EMPTY, qos: 1, retain: true }
        }),
      catch: (e) => bridgeError(`cannot connect to ${s.url}`, e)
    })
    if (typeof (client as unknown as { _sendPacket?: unknown })._sendPacket !== "function") {
      client.end(true)
      return yield* fail("this mqtt.js version cannot acknowledge messages by hand")
    }
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* bestEffort(timeoutMs, announce)
        closed = true
        health = "closed"
        tracker.disconnected()
        for (const resume of [...pending.values()]) resume(Effect.fail(fail("request: the bridge closed")))
        pending.clear()
        Deferred.doneUnsafe(gate, Exit.void)
        yield* bestEffort(timeoutMs, Effect.tryPromise(() => client.endAsync()))
        client.end(true)
      })
    )

    const isUp = () => !closed && Deferred.isDoneUnsafe(gate)
    /** Waits until the connection is up and in sync, within the timeout; fails when the bridge is closed. */
    const connected = (what: string) => {
      const isClosed = Effect.suspend(() => (closed ? Effect.fail(fail(`${what}: the bridge is closed`)) : Effect.void))
      const wait = Effect.andThen(isClosed, Effect.andThen(Effect.suspend(() => Deferred.await(gate)), isClosed))
      return Effect.suspend(() => (isUp() ? Effect.void : within(what, timeoutMs)(wait)))
    }
    const publish = (what: string, topic: string, payload: Buffer, options: IClientPublishOptions) =>
      publishOn(client, batch, what, topic, payload, options)
    const subscribeNow = (route: Route, done: (e: Error | null) => void) =>
      client.subscribe(route.filter, { qos: route.qos, rh: route.retained ? 0 : 2, properties: { subscriptionIdentifier: route.id } }, (e) =>
        done(e))
    const subscribeTo = (route: Route) =>
      Effect.callback<void, BridgeError>((resume) => {
        subscribeNow(route, (e) => resume(e ? Effect.fail(bridgeError(`subscribe ${route.filter}`, e)) : Effect.void))
      })

    /** A round trip through the broker: every message routed to this bridge before it has arrived. */
    const barrier = Effect.suspend(() => {
      const key = `b${++seq}`
      const done = Deferred.makeUnsafe<Uint8Array, BridgeError>()
      barriers.set(key, done)
      return publish("sync", inbox, EMPTY, { qos: 0, properties: { correlationData: Buffer.from(key) } }).pipe(
        Effect.andThen(Deferred.await(done)),
        within("sync with the broker", timeoutMs),
        Effect.ensuring(Effect.sync(() => barriers.delete(key)))
      )
    })
    const { announce, heartbeat, isLive, live, serving, mirror: presence } = makePresence({
      topic: presenceTopic,
      ttl: s.ttl,
      timeoutMs,
      now,
      canPublish: () => !closed && client.connected,
      publish,
      barrier,
      bestEffort
    })

    /** After every (re)connection: resubscribe, announce, then open the gate once the registry is in sync. */
    const resync = (g: number) =>
      Effect.gen(function*() {
        // issued before the barrier: the broker handles a connection's packets in order
        for (const route of routes.values()) subscribeNow(route, (e) => e && void (lastError = e.message))
        run(Effect.ignore(announce))
        const synced = yield* Effect.exit(barrier)
        if (g !== generation || closed) return
        if (Exit.isFailure(synced)) yield* Effect.logWarning(`herald: mqtt could not sync the registry after connecting`)
        presence.prune(g)
        leases.prune(g)
        health = "connected"
        tracker.connected()
        Deferred.doneUnsafe(gate, Exit.void)
      })

    client.on("error", (e) => void (lastError = e.message))
    client.on("close", () => {
      if (closed || !Deferred.isDoneUnsafe(gate)) return
      health = "reconnecting"
      tracker.disconnected()
      gate = Deferred.makeUnsafe<void>()
      run(Effect.logWarning(`herald: mqtt connection to ${s.url} lost (${lastError}); reconnecting`))
    })
    client.on("connect", () => {
      noDelay(client)
      if (generation > 0) {
        reconnectedAt = now()
        run(Effect.logInfo(`herald: mqtt reconnected to ${s.url}`))
      }
      run(resync(++generation))
    })
    client.on("message", (_topic, _payload, packet) => {
      const ids = packet.properties?.subscriptionIdentifier
      for (const id of typeof ids === "number" ? [ids] : ids ?? []) {
        const route = byId.get(id)
        if (route === undefined || route.members.length === 0) continue
        if (route.fanout) for (const member of [...route.members]) member(packet)
        else route.members[route.next++ % route.members.length]!(packet)
      }
    })

    /** Adds a local consumer of `filter`, subscribing the connection to it when it is new (`ready` says when). */
    const registerRoute = (what: string, filter: string, qos: 0 | 1, fanout: boolean, member: Member, retained = false) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          let route = routes.get(filter)
          if (route === undefined) {
            const fresh: Route = { id: ++routeIds, filter, qos, retained, fanout, members: [], next: 0, ready: Deferred.makeUnsafe() }
            routes.set(filter, fresh)
            byId.set(fresh.id, fresh)
            run(Effect.andThen(connected(what), subscribeTo(fresh)).pipe(
              within(what, timeoutMs),
              Effect.exit,
              Effect.flatMap((exit) => Deferred.done(fresh.ready, exit))
            ))
            route = fresh
          }
          route.members.push(member)
          return route
        }),
        (route) =>
          Effect.callback<void>((resume) => {
            remove(route.members, member)
            if (route.members.length > 0 || routes.get(filter) !== route) return resume(Effect.void)
            routes.delete(filter)
            byId.delete(route.id)
            if (closed || !client.connected) return resume(Effect.void)
            client.unsubscribe(filter, () => resume(Effect.void))
          }).pipe((effect) => bestEffort(timeoutMs, effect))
      )
    const addRoute = (what: string, filter: string, qos: 0 | 1, fanout: boolean, member: Member) =>
      Effect.flatMap(registerRoute(what, filter, qos, fanout, member), (route) => Deferred.await(route.ready))

    const onRegistry = <A>(mirror: Topics.Mirror<A>, decode: (bytes: Uint8Array) => A | undefined): Member => (packet) => {
      if (bytesOf(packet).length === 0) return mirror.delete(packet.topic)
      const value = decode(bytesOf(packet))
      const ttl = packet.properties?.messageExpiryInterval ?? s.ttl
      if (value !== undefined) mirror.set(packet.topic, value, now() + ttl * 1000, generation)
    }
    const onInbox: Member = (packet) => {
      const key = packet.properties?.correlationData?.toString() ?? ""
      const resume = pending.get(key)
      if (resume !== undefined) {
        pending.delete(key)
        return resume(Effect.succeed(bytesOf(packet)))
      }
      const barrier = barriers.get(key)
      if (barrier !== undefined) Deferred.doneUnsafe(barrier, Exit.succeed(bytesOf(packet)))
    }
    // subscribed by the first resync, before its barrier
    yield* registerRoute("subscribe the inbox", inbox, s.commandQos, true, onInbox)
    yield* registerRoute("subscribe to presence", Topics.presenceFilter(prefix), 1, true, onRegistry(presence, Topics.decodePresence), true)
    yield* registerRoute("subscribe to leases", Topics.leaseFilter(prefix), 1, true, onRegistry(leases, Topics.decodeLease), true)
    yield* Deferred.await(gate).pipe(
      Effect.timeoutOrElse({ duration: timeoutMs, orElse: () => Effect.fail(fail(`cannot connect to ${s.url}: ${lastError}`)) })
    )
    // presence and leases expire unless refreshed
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(s.presenceMs), heartbeat)))
    const sweep = Effect.sync(() => {
      const limit = now() - timeoutMs
      for (const entry of unconfirmed) {
        if (entry.at > limit) break // insertion order is age order
        unconfirmed.delete(entry)
        entry.expire()
      }
    })
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(Math.min(250, timeoutMs)), sweep)))

    /** Publishes an event with QoS 1 and waits for its PUBACK (bounded by the sweep, not by a timer per publish). */
    const publishConfirmed = (what: string, topic: string, payload: Buffer) =>
      Effect.callback<void, BridgeError>((resume) => {
        const entry = { at: now(), expire: () => resume(Effect.fail(fail(`${what}: not acknowledged within ${timeoutMs} ms`))) }
        unconfirmed.add(entry)
        batch(client)
        client.publish(topic, payload, { qos: 1, properties: { contentType: CONTENT_TYPE } }, (e) => {
          if (unconfirmed.delete(entry)) resume(e ? Effect.fail(bridgeError(what, e)) : Effect.void)
        })
        return Effect.sync(() => void unconfirmed.delete(entry))
      })

    /** Sends a command and waits for the reply correlated with it. */
    const send = (key: string, topic: string, payload: Buffer, expiresAt: number) =>
      Effect.callback<Uint8Array, BridgeError>((resume) => {
        const id = String(++seq)
        pending.set(id, resume)
        batch(client)
        client.publish(topic, payload, {
          qos: s.commandQos,
          properties: {
            responseTopic: inbox,
            correlationData: Buffer.from(id),
            messageExpiryInterval: Topics.expirySeconds(expiresAt, now()),
            contentType: CONTENT_TYPE
          }
        }, (e) => {
          if (e && pending.delete(id)) resume(Effect.fail(bridgeError(`request ${key}`, e)))
        })
        return Effect.sync(() => void pending.delete(id))
      })

    const consumeDurable = makeDurables({
      settings: s,
      clientId,
      leases,
      now,
      run,
      runner,
      bridgeScope,
      awaitGate: Effect.suspend(() => Deferred.await(gate)),
      isUp,
      lastError: () => lastError,
      setLastError: (message) => void (lastError = message),
      newBatcher,
      noDelay,
      publishOn,
      fail,
      bridgeError,
      within,
      bestEffort,
      bytesOf,
      remove
    })

    const bridge: BridgeShape = {
      name: BRIDGE,
      capabilities: { durable: true, persistent: true },
      health: Effect.sync(() => (closed ? "closed" : health)),
      pendingRequests: Effect.sync(() => pending.size),

      publish: (route, bytes) =>
        Effect.suspend(() => {
          const topic = Topics.eventTopic(prefix, route)
          const what = `publish ${route.eventName}`
          if (topic === undefined) return Effect.fail(fail(`${what}: the event name and sender service must be MQTT levels`))
          const confirmed = publishConfirmed(what, topic, toBuffer(bytes))
          return isUp() ? confirmed : Effect.andThen(connected(what), confirmed)
        }),

      serve: (address, handler) =>
        Effect.gen(function*() {
          const key = addressKey(address)
          if (!Topics.isValidAddress(address)) return yield* fail(`serve ${key}: not a valid MQTT address`)
          const runHandler = yield* runner
          const reply = (to: string, correlationData: Buffer | undefined) => (bytes: Uint8Array) =>
            Effect.andThen(
              connected(`reply ${key}`),
              publish(`reply ${key}`, to, toBuffer(bytes), {
                qos: s.commandQos,
                properties: correlationData === undefined ? { contentType: CONTENT_TYPE } : { correlationData, contentType: CONTENT_TYPE }
              })
            )
          yield* addRoute(`serve ${key}`, Topics.commandFilter(prefix, address), s.commandQos, false, (packet) => {
            const to = packet.properties?.responseTopic
            void runHandler(handler({
              bytes: bytesOf(packet),
              reply: to === undefined
                ? () => Effect.void
                : Topics.isTopicName(to)
                ? reply(to, packet.properties?.correlationData)
                // publishing to it would make the broker drop this connection (a protocol error)
                : () => Effect.logWarning(`herald: mqtt ${key}: no reply to the invalid response topic ${JSON.stringify(to.slice(0, 200))}`)
            }))
          })
          yield* serving(key)
          yield* connected(`serve ${key}`).pipe(Effect.andThen(announce), within(`serve ${key}`, timeoutMs))
        }),

      request: (address, bytes, expiresAt) =>
        Effect.suspend(() => {
          const key = addressKey(address)
          if (!Topics.isValidAddress(address)) return Effect.fail(fail(`request ${key}: not a valid MQTT address`))
          const topic = Topics.commandTopic(prefix, address)
          const payload = toBuffer(bytes)
          if (isUp() && isLive(key)) return send(key, topic, payload, expiresAt)
          const once: Effect.Effect<Uint8Array, NoResponder | BridgeError> = connected(`request ${key}`).pipe(
            Effect.andThen(live(key)),
            Effect.andThen(Effect.suspend(() => send(key, topic, payload, expiresAt))),
            // right after a reconnection the servers may not have announced themselves again yet
            Effect.catchIf(
              (e) => e._tag === "NoResponder" && now() - reconnectedAt < graceMs,
              () => Effect.andThen(Effect.sleep(100), once)
            )
          )
          return once
        }),

      subscribe: (spec, handler) =>
        Effect.gen(function*() {
          const what = `subscribe ${spec.service}/${spec.version}/${spec.subscription}`
          if (![spec.service, spec.version, spec.subscription].every(Topics.isLevel)) return yield* fail(`${what}: not valid MQTT names`)
          const filters = Topics.filterTopics(prefix, spec)
          if (filters.length === 0) return yield* Effect.logDebug(`herald: mqtt ${what}: no event name can match`)
          if (spec.durable) return yield* consumeDurable(spec, filters, handler)
          const runHandler = yield* runner
          const member: Member = (packet) => void runHandler(handler({ bytes: bytesOf(packet), deliveryCount: 1 }))
          const shared = spec.delivery === "shared"
          for (const filter of filters) {
            yield* addRoute(what, shared ? Topics.sharedEventFilter(spec, filter) : filter, s.eventQos, !shared, member)
          }
        })
    }
    return bridge
  })

/** The MQTT bridge as a Layer: connects when built, leaves the broker cleanly when released. */
export const layer = (config?: MqttBridgeConfig): Layer.Layer<Bridge, BridgeError, never> => Layer.effect(Bridge, make(config))
