/**
 * What every message the runtime sends or receives shares: ids, the envelope fields inherited from
 * the message context, rejection counting, and publishing an encoded event.
 */
import { Clock, Effect, type Fiber, Metric, Schema } from "effect"
import type { BridgeShape } from "../Bridge.ts"
import { BridgeError, type MessageTooLarge } from "../BridgeError.ts"
import * as Codec from "../Codec.ts"
import * as Envelope from "../Envelope.ts"
import type { Address } from "../Envelope.ts"
import { MessageContext, type MessageContextShape } from "../MessageContext.ts"
import { exceeds, MaxMessageBytes } from "../MessageSize.ts"
import * as Metrics from "../Metrics.ts"
import * as Telemetry from "./telemetry.ts"

/** A new random message or instance id. */
export const newId = (): string => crypto.randomUUID()

/** Counts and logs a dropped message; its payload joins the log line only when `LogPayloads` is on. */
export const reject = (reason: string, service: string, detail: string, payload?: () => unknown) =>
  Effect.andThen(
    Metric.update(Metric.withAttributes(Metrics.rejectedMessages, { reason, service }), 1),
    Telemetry.logBadMessage(`herald: ${service} dropped a message (${reason}): ${detail}`, payload)
  )

/** The first 4 KiB of undecodable bytes as text, for a log line that opted in to payloads. */
export const rawText = (bytes: Uint8Array) => () => new TextDecoder().decode(bytes.subarray(0, 4096))

/** The sender of messages sent outside any handler. */
export const ANONYMOUS: Address = { service: "client", version: "0" }

/** The context a handler runs with, derived from the message it handles. */
export const contextOf = (env: Envelope.Envelope, self: Address): MessageContextShape => ({
  messageId: env.id,
  correlationId: env.correlationId,
  causationId: env.causationId,
  principalId: env.principalId,
  tenantId: env.tenantId,
  traceparent: env.traceparent,
  tracestate: env.tracestate,
  self
})

/**
 * The envelope fields every outgoing message inherits from the current context; its `traceparent`
 * names the message's own `herald.invoke`/`herald.publish` span, or is the context's when there is
 * none (tracing off).
 */
export const outgoing = (ctx: MessageContextShape, id: string, span: Telemetry.Span | undefined) => {
  const sender = ctx.self ?? ANONYMOUS
  const correlationId = ctx.correlationId ?? id
  if (span !== undefined) Telemetry.annotateSpan(span, id, correlationId, ctx.tenantId)
  return {
    id,
    source: Envelope.sourceOf(sender),
    sender,
    correlationId,
    causationId: ctx.messageId,
    principalId: ctx.principalId,
    tenantId: ctx.tenantId,
    traceparent: (span === undefined ? undefined : Telemetry.formatTraceparent(span)) ?? ctx.traceparent,
    tracestate: ctx.tracestate
  }
}

export const issueOf = (e: Schema.SchemaError): string => e.message

/** The current time of the fiber's clock (the TestClock under test), read without an Effect step. */
export const nowOf = (fiber: Fiber.Fiber<unknown, unknown>): number => fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()

/**
 * Publishes an event whose payload is already JSON-encoded, with the current message context.
 * Fails with `MessageTooLarge`, before anything is sent, when the envelope exceeds `maxBytes`
 * (by default the fiber's `MessageSize.MaxMessageBytes`).
 */
export const publishSized = (
  bridge: BridgeShape,
  eventName: string,
  data: unknown,
  maxBytes?: number
): Effect.Effect<void, BridgeError | MessageTooLarge> =>
  Telemetry.observePublish(eventName, (span, fiber): Effect.Effect<void, BridgeError | MessageTooLarge> => {
    const envelope: Envelope.Envelope = {
      ...outgoing(fiber.getRef(MessageContext), newId(), span),
      kind: "event",
      type: eventName,
      time: nowOf(fiber),
      data
    }
    const bytes = Codec.json.encode(envelope)
    const tooLarge = exceeds(`event ${eventName}`, bytes, maxBytes ?? fiber.getRef(MaxMessageBytes))
    if (tooLarge !== undefined) return Effect.fail(tooLarge)
    return bridge.publish(
      { id: envelope.id, eventName, senderService: envelope.sender.service, tenantId: envelope.tenantId },
      bytes
    )
  })

/**
 * Publishes an event whose payload is already JSON-encoded, with the current message context; like
 * `publishSized`, but an event over the maximum message size fails as a `BridgeError` (unsent).
 */
export const publishEncoded = (bridge: BridgeShape, eventName: string, data: unknown): Effect.Effect<void, BridgeError> =>
  publishSized(bridge, eventName, data).pipe(
    Effect.catchTag("MessageTooLarge", (e) => Effect.fail(new BridgeError({ bridge: bridge.name, reason: e.message })))
  )
