/**
 * The presence registry of the MQTT bridge: which command addresses this bridge serves, announced
 * in a retained presence message, and the mirror of every bridge's announcements, from which a call
 * nobody serves fails with `NoResponder` after one round trip through the broker at most.
 *
 * The bridge (`src/bridges/Mqtt.ts`) owns the connection and the round trip; it passes them in a
 * `PresenceContext`.
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import type { IClientPublishOptions } from "mqtt"
import { type BridgeError, NoResponder } from "../BridgeError.ts"
import * as Topics from "./mqttTopics.ts"

const EMPTY = Buffer.alloc(0)

/** What the bridge lends its presence registry. */
export interface PresenceContext {
  /** This bridge's retained presence topic. */
  readonly topic: string
  /** Expiry of a presence message, in seconds. */
  readonly ttl: number
  /** Bound of one broker operation, in milliseconds. */
  readonly timeoutMs: number
  /** The current time in milliseconds, from the bridge's clock. */
  readonly now: () => number
  /** True while the bridge is open and its client connected. */
  readonly canPublish: () => boolean
  /** Publishes on the bridge's connection and waits for mqtt.js's callback. */
  readonly publish: (what: string, topic: string, payload: Buffer, options: IClientPublishOptions) => Effect.Effect<void, BridgeError>
  /** A round trip through the broker: every message routed to this bridge before it has arrived. */
  readonly barrier: Effect.Effect<unknown, BridgeError>
  /** Runs an effect for at most `ms`, ignoring its failure. */
  readonly bestEffort: <A, E>(ms: number, effect: Effect.Effect<A, E>) => Effect.Effect<void>
}

/** The presence registry of one bridge. */
export interface Presence {
  /** The mirror of every bridge's retained presence: the addresses each one serves. */
  readonly mirror: Topics.Mirror<ReadonlyArray<string>>
  /** Publishes this bridge's presence: the addresses it serves, or an empty retained message once it serves none. */
  readonly announce: Effect.Effect<void, BridgeError>
  /** Announces again while this bridge serves anything: presence expires unless refreshed. */
  readonly heartbeat: Effect.Effect<void>
  /** True when this bridge or, as far as the mirror knows, another one serves `key`. */
  readonly isLive: (key: string) => boolean
  /** Fails with `NoResponder` when no bridge serves `key`, after a round trip that brings the registry up to date. */
  readonly live: (key: string) => Effect.Effect<void, NoResponder | BridgeError>
  /** Counts `key` as served by this bridge until the scope closes, then announces the change. */
  readonly serving: (key: string) => Effect.Effect<void, never, Scope.Scope>
}

/** Builds the presence registry of one bridge. */
export const makePresence = (ctx: PresenceContext): Presence => {
  const { topic, ttl, timeoutMs, now, canPublish, publish, barrier, bestEffort } = ctx
  const served = new Map<string, number>()
  let announced = false
  const mirror = new Topics.Mirror<ReadonlyArray<string>>((commands) => commands)

  const announce = Effect.suspend(() => {
    if (!canPublish() || (served.size === 0 && !announced)) return Effect.void
    announced = served.size > 0
    return announced
      ? publish("announce", topic, Buffer.from(Topics.encodePresence(served.keys())), {
        qos: 1,
        retain: true,
        properties: { messageExpiryInterval: ttl }
      })
      : publish("announce", topic, EMPTY, { qos: 1, retain: true })
  })

  const heartbeat = Effect.suspend(() => (served.size > 0 ? Effect.ignore(announce) : Effect.void))

  const isLive = (key: string) => (served.get(key) ?? 0) > 0 || mirror.has(key, now())
  const live = (key: string) =>
    Effect.suspend(() =>
      isLive(key) ? Effect.void : Effect.andThen(
        barrier,
        Effect.suspend(() => isLive(key) ? Effect.void : Effect.fail(new NoResponder({ address: key })))
      )
    )

  const serving = (key: string) =>
    Effect.acquireRelease(
      Effect.sync(() => void served.set(key, (served.get(key) ?? 0) + 1)),
      () =>
        Effect.suspend(() => {
          const left = (served.get(key) ?? 1) - 1
          if (left > 0) served.set(key, left)
          else served.delete(key)
          return bestEffort(timeoutMs, announce)
        })
    )

  return { mirror, announce, heartbeat, isLive, live, serving }
}
