/**
 * The bridge contract: a small driver that moves encoded messages over one broker.
 *
 * A bridge knows nothing of schemas, handlers or filters beyond the pre-filter hints it is given;
 * the runtime knows nothing of brokers. A bridge is chosen only by which Layer provides `Bridge`.
 */
import { Context, type Effect, type Exit, type Scope } from "effect"
import type { BridgeError, NoResponder } from "./BridgeError.ts"

/** Where a command is served: one address per service, major version and command. */
export interface CommandAddress {
  readonly service: string
  readonly version: string
  readonly command: string
}

/** `service/version/command`, the display form of a command address used in errors and logs. */
export const addressKey = (a: CommandAddress): string => `${a.service}/${a.version}/${a.command}`

/** A command delivered to one serving instance. */
export interface IncomingCommand {
  readonly bytes: Uint8Array
  /** Sends the reply to the caller. A no-op when the caller has gone (timed out, interrupted). */
  readonly reply: (bytes: Uint8Array) => Effect.Effect<void, BridgeError>
}

/** An event delivered to one subscriber. */
export interface IncomingEvent {
  readonly bytes: Uint8Array
  /** 1 on first delivery; higher when the broker redelivers an unacknowledged message. */
  readonly deliveryCount: number
}

/** What a publisher tells the bridge about an event besides its bytes, for broker-side routing. */
export interface EventRoute {
  /** The envelope id; brokers with de-duplication use it so a re-published event is stored once. */
  readonly id: string
  readonly eventName: string
  readonly senderService: string
  readonly tenantId?: string | undefined
}

/** How a subscriber consumes events. */
export interface SubscriptionSpec {
  /** The subscribing service, its major version and the subscribing instance. */
  readonly service: string
  readonly version: string
  readonly instance: string
  /** The subscription's name, unique within the service. */
  readonly subscription: string
  /** `shared`: one instance per (service, version, subscription) gets each event; `broadcast`: every instance does. */
  readonly delivery: "shared" | "broadcast"
  /** Durable: at-least-once, kept while no instance is subscribed, acknowledged after the handler succeeds. */
  readonly durable: boolean
  /**
   * Pre-filter hints: the event names (and tenants) that can match, or `undefined` for any.
   * A bridge may deliver more than the hints admit (the runtime re-checks the exact filter), never fewer.
   */
  readonly eventNames?: ReadonlyArray<string> | undefined
  readonly tenantIds?: ReadonlyArray<string> | undefined
}

/** What a bridge can honour; the runtime fails fast at start when a contract needs more. */
export interface Capabilities {
  /** Durable subscriptions (at-least-once, kept across subscriber restarts). */
  readonly durable: boolean
  /** Durable messages survive a restart of the broker itself. */
  readonly persistent: boolean
}

/** Connection state of a bridge. */
export type Health = "connected" | "reconnecting" | "closed"

/**
 * The encoded driver every bridge implements.
 *
 * Handlers return an Effect that the bridge runs with the context of the fiber that called `serve`
 * or `subscribe` (the serving service's services and scope). It must not fail for a message it handled;
 * for durable subscriptions the bridge acknowledges the message when the Effect succeeds and
 * redelivers it when the Effect fails or is interrupted.
 *
 * Closing the scope of `serve` or `subscribe` stops delivering new messages, but handler Effects
 * already running go on: a service closes its consumers first and drains its in-flight handlers
 * afterwards. A bridge must keep whatever those handlers still need (the channel or session that
 * sends their reply or acknowledgement) until they have ended or the bridge itself closes.
 */
export interface BridgeShape {
  /** Short name used in errors and logs, e.g. `memory`, `nats`. */
  readonly name: string
  readonly capabilities: Capabilities
  /** Publishes an event. Succeeds once the broker has accepted it (confirmed, for persistent bridges). */
  readonly publish: (route: EventRoute, bytes: Uint8Array) => Effect.Effect<void, BridgeError>
  /**
   * Serves a command address as one of its competing consumers until the scope closes.
   * Each command goes to exactly one live consumer of its address.
   */
  readonly serve: (
    address: CommandAddress,
    handler: (message: IncomingCommand) => Effect.Effect<void>
  ) => Effect.Effect<void, BridgeError, Scope.Scope>
  /**
   * Sends a command and waits for its reply. Fails with `NoResponder` at once when no consumer serves
   * the address. The reply inbox lives exactly as long as this Effect: interrupting it (the runtime's
   * timeout does) leaves nothing registered. `expiresAt` (epoch ms) lets brokers with message TTL drop it.
   */
  readonly request: (
    address: CommandAddress,
    bytes: Uint8Array,
    expiresAt: number
  ) => Effect.Effect<Uint8Array, NoResponder | BridgeError>
  /**
   * Optional: `request` as a plain callback, which spares the runtime a fiber and a suspension per
   * call. When it can send at once it sends the command, returns a function that cancels the wait
   * (after which `done` is never called), and later calls `done` exactly once with the `Exit`
   * `request` would have ended with (`done` may run before it returns). When it cannot send at once
   * (no connection, a reconnection in progress, an invalid address) it returns `undefined` having
   * done nothing, and the runtime uses `request`. The runtime calls it only under Effect's built-in
   * clock and bounds the wait by the call's timeout, as it does for `request`.
   */
  readonly startRequest?: (
    address: CommandAddress,
    bytes: Uint8Array,
    expiresAt: number,
    done: (result: Exit.Exit<Uint8Array, NoResponder | BridgeError>) => void
  ) => (() => void) | undefined
  /** Consumes events as described by `spec` until the scope closes. */
  readonly subscribe: (
    spec: SubscriptionSpec,
    handler: (message: IncomingEvent) => Effect.Effect<void, BridgeError>
  ) => Effect.Effect<void, BridgeError, Scope.Scope>
  /** Requests waiting for a reply right now (zero when every call has ended). */
  readonly pendingRequests: Effect.Effect<number>
  readonly health: Effect.Effect<Health>
}

/** The bridge in use. Provide exactly one bridge Layer (memory, NATS, MQTT, AMQP). */
export class Bridge extends Context.Service<Bridge, BridgeShape>()("herald/Bridge") {}
