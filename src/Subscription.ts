/**
 * Subscription contracts: a content filter over events, a schema for the payload, and how the
 * subscribing service consumes them (shared or broadcast, durable or not, retries, concurrency).
 */
import { Duration, Schedule, Schema } from "effect"
import { DefinitionError } from "./BridgeError.ts"
import type { AnySchema } from "./Command.ts"
import * as Filter from "./Filter.ts"
import { checkName } from "./internal/names.ts"

/** The retry policy type of a subscription: any schedule over the handler's failures. */
export type RetryPolicy = Schedule.Schedule<unknown, unknown>

/** The options of `Subscription.make`. */
export interface SubscriptionOptions<P extends AnySchema> {
  /**
   * Which events to receive (DESIGN §5). Validated and compiled here; a bad filter throws a
   * `DefinitionError`. Discovery events (`herald.discovery.*`) match only a filter whose `eventName`
   * names them exactly.
   */
  readonly filter: Filter.Filter
  /** Schema of the event payload. An event whose payload fails it goes straight to the dead-letter stream. */
  readonly payload: P
  /**
   * `shared`: each event reaches one instance of the subscribing service (competing consumers);
   * `broadcast`: each event reaches every instance.
   */
  readonly delivery: "shared" | "broadcast"
  /**
   * Durable subscriptions are at-least-once: events are kept while no instance is subscribed and
   * acknowledged only after the handler succeeds. Non-durable ones are at-most-once while connected.
   * Default `false`.
   */
  readonly durable?: boolean | undefined
  /**
   * How a failing handler is retried before the event goes to the dead-letter stream.
   * Default: 3 retries, exponential from 100 ms (100, 200, 400 ms). Use `Schedule.recurs(0)` for none.
   */
  readonly retry?: RetryPolicy | undefined
  /** Handlers in flight at once per subscribing instance. Default 16; use 1 to handle events in order. */
  readonly concurrency?: number | undefined
}

/** A subscription contract. */
export interface Subscription<Name extends string = string, P extends AnySchema = AnySchema> {
  readonly _tag: "Subscription"
  readonly name: Name
  readonly filter: Filter.Filter
  /** The filter compiled once at definition. */
  readonly matcher: Filter.Compiled
  readonly payload: P
  readonly payloadCodec: Schema.Codec<P["Type"], unknown>
  readonly delivery: "shared" | "broadcast"
  readonly durable: boolean
  readonly retry: RetryPolicy
  readonly concurrency: number
  /** Broker pre-filter hints derived from the filter (`undefined`: any). */
  readonly eventNames: ReadonlyArray<string> | undefined
  readonly tenantIds: ReadonlyArray<string> | undefined
}

/** Any subscription, for constraints. */
export type Any = Subscription<string, AnySchema>

/** The decoded payload type of a subscription. */
export type Payload<S extends Any> = S["payload"]["Type"]

/** The default retry policy: 3 retries, exponential from 100 ms. */
export const defaultRetry: RetryPolicy = Schedule.exponential(Duration.millis(100)).pipe(
  Schedule.upTo({ times: 3 })
) as RetryPolicy

/**
 * Defines a subscription. Throws a `DefinitionError` for a bad name, filter or option.
 *
 * @example
 * const BigOrders = Subscription.make("big-orders", {
 *   filter: { eventName: "order.placed", data: { total: [{ numeric: [">", 100] }] } },
 *   payload: OrderPlaced,
 *   delivery: "shared",
 *   durable: true
 * })
 */
export const make = <const Name extends string, P extends AnySchema>(
  name: Name,
  options: SubscriptionOptions<P>
): Subscription<Name, P> => {
  checkName("subscription", name)
  if (!Schema.isSchema(options.payload)) {
    throw new DefinitionError(`subscription ${name}: payload must be an Effect schema`)
  }
  if (options.delivery !== "shared" && options.delivery !== "broadcast") {
    throw new DefinitionError(`subscription ${name}: delivery must be "shared" or "broadcast"`)
  }
  const concurrency = options.concurrency ?? 16
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new DefinitionError(`subscription ${name}: concurrency must be a positive integer, got ${concurrency}`)
  }
  let filter: Filter.Filter
  try {
    filter = Filter.validate(options.filter)
  } catch (e) {
    throw new DefinitionError(`subscription ${name}: invalid filter: ${e instanceof Error ? e.message : String(e)}`)
  }
  const eventNames = Filter.eventNames(filter)
  return {
    _tag: "Subscription",
    name,
    filter,
    matcher: withoutDiscovery(Filter.compile(filter), eventNames),
    payload: options.payload,
    payloadCodec: Schema.toCodecJson(options.payload) as Schema.Codec<P["Type"], unknown>,
    delivery: options.delivery,
    durable: options.durable ?? false,
    retry: options.retry ?? defaultRetry,
    concurrency,
    eventNames,
    tenantIds: Filter.tenantIds(filter)
  }
}

/** Discovery's own traffic (`Discovery`): delivered only to subscriptions whose filter names it exactly. */
const DISCOVERY_EVENTS = "herald.discovery."

/**
 * Keeps discovery events away from a subscription that does not name them in its `eventName`, so that
 * a catch-all filter does not receive (and dead-letter) every announcement.
 */
const withoutDiscovery = (compiled: Filter.Compiled, eventNames: ReadonlyArray<string> | undefined): Filter.Compiled =>
  eventNames?.some((n) => n.startsWith(DISCOVERY_EVENTS))
    ? compiled
    : { ...compiled, matches: (target) => !target.eventName.startsWith(DISCOVERY_EVENTS) && compiled.matches(target) }

/** The event name of dead letters. Subscribe to it (filter `{ eventName: DEAD_LETTER }`) to receive them. */
export const DEAD_LETTER = "herald.dead-letter"

/** The payload of a dead letter: the event that could not be handled, where, and why. */
export const DeadLetter = Schema.Struct({
  /** The subscribing service, its version and the subscription whose handler gave up. */
  service: Schema.String,
  version: Schema.String,
  subscription: Schema.String,
  /** The original event, in its CloudEvents wire form. */
  event: Schema.Json,
  /** Handler attempts made (0 when the payload failed its schema). */
  attempts: Schema.Int,
  /** The last failure in one line (`Tag: message`). */
  error: Schema.String,
  /** The last failure in full, as `Cause.pretty` renders it (stack traces included). */
  cause: Schema.String
})

/** The payload of a dead letter, as a type. */
export type DeadLetter = typeof DeadLetter.Type
