/**
 * Event contracts and publishing: a named, schema-typed event any code may publish.
 *
 * Subscriptions select events by content (`Subscription.make`); an `Event` contract is the
 * publisher's side, giving the payload a schema. Commands with `emits` publish their output
 * without one.
 */
import { Effect, Schema } from "effect"
import { Bridge } from "./Bridge.ts"
import { type BridgeError, InvalidInput } from "./BridgeError.ts"
import type { AnySchema } from "./Command.ts"
import { checkEventName } from "./internal/names.ts"
import * as Runtime from "./Runtime.ts"

/** An event contract. */
export interface Event<Name extends string = string, P extends AnySchema = AnySchema> {
  readonly _tag: "Event"
  readonly name: Name
  readonly payload: P
  readonly codec: Schema.Codec<P["Type"], unknown>
}

/** Defines an event. Throws a `DefinitionError` for a bad name (dot-separated lower-case segments). */
export const make = <const Name extends string, P extends AnySchema>(name: Name, payload: P): Event<Name, P> => {
  checkEventName("event name", name)
  return { _tag: "Event", name, payload, codec: Schema.toCodecJson(payload) as Schema.Codec<P["Type"], unknown> }
}

/**
 * Publishes an event with the current message context (correlation, tenant, principal, trace).
 * The payload is validated first; an invalid one fails with `InvalidInput` and nothing is sent.
 */
export const publish = <E extends Event>(
  event: E,
  payload: E["payload"]["Type"]
): Effect.Effect<void, BridgeError | InvalidInput, Bridge> =>
  Effect.gen(function*() {
    const data = yield* Effect.mapError(
      Schema.encodeEffect(event.codec)(payload),
      (e) => new InvalidInput({ address: event.name, issue: e.message })
    )
    yield* Runtime.publishEncoded(yield* Bridge, event.name, data)
  })
