/**
 * Event contracts and publishing: a named, schema-typed event any code may publish.
 *
 * Subscriptions select events by content (`Subscription.make`); an `Event` contract is the
 * publisher's side, giving the payload a schema. Commands with `emits` publish their output
 * without one.
 */
import { Effect, Result, Schema } from "effect"
import { Bridge } from "./Bridge.ts"
import { type BridgeError, InvalidInput, type MessageTooLarge } from "./BridgeError.ts"
import type * as Command from "./Command.ts"
import type { AnySchema } from "./Command.ts"
import { checkUserEventName } from "./internal/names.ts"
import * as Runtime from "./Runtime.ts"

/** An event contract. */
export interface Event<Name extends string = string, P extends AnySchema = AnySchema> {
  readonly _tag: "Event"
  readonly name: Name
  readonly payload: P
  readonly codec: Schema.Codec<P["Type"], unknown>
  /** The codec's encoder, compiled once. */
  readonly encode: Command.Parser<unknown>
}

/**
 * Defines an event. Throws a `DefinitionError` for a bad name (dot-separated lower-case segments) or
 * one in the reserved `herald.` namespace.
 */
export const make = <const Name extends string, P extends AnySchema>(name: Name, payload: P): Event<Name, P> => {
  checkUserEventName("event name", name)
  const codec = Schema.toCodecJson(payload) as Schema.Codec<P["Type"], unknown>
  return { _tag: "Event", name, payload, codec, encode: Schema.encodeUnknownResult(codec) }
}

/**
 * Publishes an event with the current message context (correlation, tenant, principal, trace).
 * The payload is validated first; an invalid one fails with `InvalidInput` and nothing is sent. An
 * event whose envelope exceeds `MessageSize.MaxMessageBytes` fails with `MessageTooLarge`, unsent.
 */
export const publish = <E extends Event>(
  event: E,
  payload: E["payload"]["Type"]
): Effect.Effect<void, BridgeError | InvalidInput | MessageTooLarge, Bridge> =>
  Effect.suspend((): Effect.Effect<void, BridgeError | InvalidInput | MessageTooLarge, Bridge> => {
    const data = event.encode(payload)
    return Result.isFailure(data)
      ? Effect.fail(new InvalidInput({ address: event.name, issue: data.failure.message }))
      : Bridge.use((bridge) => Runtime.publishSized(bridge, event.name, data.success))
  })
