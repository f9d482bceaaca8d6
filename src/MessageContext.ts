/**
 * The context that flows from a message being handled into every call and event it causes.
 *
 * Handlers read it with `yield* MessageContext`; callers outside any handler set principal and
 * tenant with `MessageContext.with({...})`. It travels through Effect's context, never through
 * extra parameters.
 */
import { Context, Effect } from "effect"
import type { Address } from "./Envelope.ts"

/** The fields of the current message context. All optional: a top-level caller starts with none. */
export interface MessageContextShape {
  /** Id of the message being handled; outgoing messages name it as their causation id. */
  readonly messageId?: string | undefined
  /** Shared by every message descending from one original call or event. */
  readonly correlationId?: string | undefined
  /** Id of the message that caused the one being handled. */
  readonly causationId?: string | undefined
  readonly principalId?: string | undefined
  readonly tenantId?: string | undefined
  /** W3C trace context of the message being handled. */
  readonly traceparent?: string | undefined
  readonly tracestate?: string | undefined
  /** The service instance handling the message: the sender of everything it sends. */
  readonly self?: Address | undefined
}

/** The current message context (empty outside handlers). */
export const MessageContext: Context.Reference<MessageContextShape> = Context.Reference<MessageContextShape>(
  "herald/MessageContext",
  { defaultValue: () => ({}) }
)

/**
 * Runs an effect with some context fields set, e.g. the principal and tenant of a caller.
 *
 * @example
 * calc.add({ a: 1, b: 2 }).pipe(withContext({ tenantId: "t1", principalId: "u7" }))
 */
export const withContext = (fields: MessageContextShape) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.updateService(self, MessageContext, (current) => ({ ...current, ...fields }))
