/**
 * The in-memory bridge: every service and client in one process, messages serialised through the
 * same codec as on a real broker. The default for development and tests.
 *
 * - Commands: round robin over the live instances serving an address; `NoResponder` at once when
 *   there are none.
 * - Events: one group per (service, version, subscription) for `shared` delivery, one per instance
 *   for `broadcast`; round robin inside a group.
 * - Durable `shared` groups outlive their subscribers: events published while no instance is
 *   subscribed are kept (in memory, for the life of the bridge) and delivered when one returns. An
 *   event whose handling fails or is interrupted is delivered again. Nothing survives the process.
 * - A durable group has at most `MAX_IN_FLIGHT` events handed to its subscribers and not yet
 *   settled; the rest wait in the group's backlog (as on a broker), so a slow subscriber's process
 *   holds a bounded number of them.
 */
import { Effect, Exit, type Fiber, Layer, type Scope } from "effect"
import {
  addressKey,
  Bridge,
  type BridgeShape,
  type EventRoute,
  type IncomingCommand,
  type IncomingEvent,
  type SubscriptionSpec
} from "../Bridge.ts"
import { BridgeError, NoResponder } from "../BridgeError.ts"
import * as Metrics from "../Metrics.ts"

type Run = <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

interface Server {
  readonly handler: (message: IncomingCommand) => Effect.Effect<void>
  readonly run: Run
}

interface Consumer {
  readonly handler: (message: IncomingEvent) => Effect.Effect<void, BridgeError>
  readonly run: Run
}

interface Pool<A> {
  readonly members: Array<A>
  next: number
}

interface Group extends Pool<Consumer> {
  readonly key: string
  readonly durable: boolean
  readonly keepWhenEmpty: boolean
  readonly eventNames: ReadonlySet<string> | undefined
  readonly tenantIds: ReadonlySet<string> | undefined
  readonly backlog: Array<Pending>
  /** Durable groups: events handed to a subscriber and not yet settled. */
  inFlight: number
}

interface Pending {
  readonly bytes: Uint8Array
  readonly deliveryCount: number
}

const pick = <A>(pool: Pool<A>): A => {
  const member = pool.members[pool.next % pool.members.length]!
  pool.next = (pool.next + 1) % pool.members.length
  return member
}

const remove = <A>(pool: Pool<A>, member: A) => {
  const i = pool.members.indexOf(member)
  if (i >= 0) pool.members.splice(i, 1)
}

/** Events a durable group hands to its subscribers before they settle (like NATS `max_ack_pending`). */
export const MAX_IN_FLIGHT = 256

const toSet = (xs: ReadonlyArray<string> | undefined) => (xs === undefined ? undefined : new Set(xs))

const admits = (group: Group, route: EventRoute) =>
  (group.eventNames === undefined || group.eventNames.has(route.eventName)) &&
  (group.tenantIds === undefined || (route.tenantId !== undefined && group.tenantIds.has(route.tenantId)))

/** Builds a memory bridge that lives as long as the current scope. */
export const make: Effect.Effect<BridgeShape, never, Scope.Scope> = Effect.gen(function*() {
  const servers = new Map<string, Pool<Server>>()
  const groups = new Map<string, Group>()
  const pending = new Set<object>()
  let closed = false
  const closedError = (what: string) => new BridgeError({ bridge: "memory", reason: `${what}: the bridge is closed` })

  const tracker = Metrics.connectionTracker("memory", yield* Effect.context<never>())
  tracker.connected()
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closed = true
      tracker.disconnected()
      servers.clear()
      groups.clear()
    })
  )

  const runner = Effect.map(Effect.context<never>(), (ctx): Run => Effect.runForkWith(ctx))

  const deliver = (group: Group, item: Pending): void => {
    if (closed) return
    if (group.members.length === 0 || (group.durable && group.inFlight >= MAX_IN_FLIGHT)) {
      if (group.durable) group.backlog.push(item)
      return
    }
    const consumer = pick(group)
    const fiber = consumer.run(consumer.handler(item))
    if (group.durable) {
      group.inFlight++
      fiber.addObserver((exit) => {
        group.inFlight--
        if (Exit.isFailure(exit)) deliver(group, { bytes: item.bytes, deliveryCount: item.deliveryCount + 1 })
        const next = group.backlog.shift()
        if (next !== undefined) deliver(group, next)
      })
    }
  }

  const bridge: BridgeShape = {
    name: "memory",
    capabilities: { durable: true, persistent: false },
    health: Effect.sync(() => (closed ? "closed" : "connected")),
    pendingRequests: Effect.sync(() => pending.size),

    publish: (route, bytes) =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(closedError(`publish ${route.eventName}`))
        for (const group of groups.values()) {
          if (admits(group, route)) deliver(group, { bytes, deliveryCount: 1 })
        }
        return Effect.void
      }),

    serve: (address, handler) =>
      Effect.gen(function*() {
        if (closed) return yield* closedError(`serve ${addressKey(address)}`)
        const key = addressKey(address)
        const server: Server = { handler, run: yield* runner }
        let pool = servers.get(key)
        if (pool === undefined) {
          pool = { members: [], next: 0 }
          servers.set(key, pool)
        }
        pool.members.push(server)
        const owned = pool
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            remove(owned, server)
            if (owned.members.length === 0 && servers.get(key) === owned) servers.delete(key)
          })
        )
      }),

    request: (address, bytes) =>
      Effect.suspend((): Effect.Effect<Uint8Array, NoResponder | BridgeError> => {
        const key = addressKey(address)
        if (closed) return Effect.fail(closedError(`request ${key}`))
        const pool = servers.get(key)
        if (pool === undefined || pool.members.length === 0) return Effect.fail(new NoResponder({ address: key }))
        const server = pick(pool)
        // the inbox lives exactly as long as this call: removed on reply, and on interruption
        return Effect.callback<Uint8Array>((resume) => {
          const inbox = {}
          pending.add(inbox)
          server.run(server.handler({
            bytes,
            reply: (reply) =>
              Effect.sync(() => {
                if (pending.delete(inbox)) resume(Effect.succeed(reply))
              })
          }))
          return Effect.sync(() => void pending.delete(inbox))
        })
      }),

    subscribe: (spec: SubscriptionSpec, handler) =>
      Effect.gen(function*() {
        if (closed) return yield* closedError(`subscribe ${spec.service}/${spec.subscription}`)
        const shared = spec.delivery === "shared"
        const key = `${spec.service}/${spec.version}/${spec.subscription}${shared ? "" : `/${spec.instance}`}`
        let group = groups.get(key)
        if (group === undefined) {
          group = {
            key,
            members: [],
            next: 0,
            durable: spec.durable,
            keepWhenEmpty: spec.durable && shared,
            eventNames: toSet(spec.eventNames),
            tenantIds: toSet(spec.tenantIds),
            backlog: [],
            inFlight: 0
          }
          groups.set(key, group)
        }
        const consumer: Consumer = { handler, run: yield* runner }
        group.members.push(consumer)
        const owned = group
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            remove(owned, consumer)
            if (owned.members.length === 0 && !owned.keepWhenEmpty && groups.get(key) === owned) groups.delete(key)
          })
        )
        const backlog = group.backlog.splice(0)
        for (const item of backlog) deliver(group, item)
      })
  }
  return bridge
})

/** The memory bridge as a Layer: one bridge per layer build, closed with its scope. */
export const layer: Layer.Layer<Bridge, never, never> = Layer.effect(Bridge, make)
