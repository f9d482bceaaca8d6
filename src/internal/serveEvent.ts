/**
 * The consuming side of an event: decode, filter, validate, run the subscription handler with its
 * retries and bound, dead-letter. Reached through `Runtime.handleEvent`.
 */
import { Cause, Effect, Metric, Result, Schema } from "effect"
import type { BridgeShape, IncomingEvent } from "../Bridge.ts"
import type { BridgeError } from "../BridgeError.ts"
import * as Codec from "../Codec.ts"
import * as Envelope from "../Envelope.ts"
import type { Address } from "../Envelope.ts"
import { MessageContext, type MessageContextShape } from "../MessageContext.ts"
import { DEFAULT_MAX_MESSAGE_BYTES, exceeds } from "../MessageSize.ts"
import * as Metrics from "../Metrics.ts"
import { retryAfterFailure, type Slots } from "./hotPath.ts"
import * as Telemetry from "./telemetry.ts"
import * as Subscription from "../Subscription.ts"
import { contextOf, issueOf, publishSized, rawText, reject } from "./messages.ts"

/** Metadata of a delivered event, passed to subscription handlers beside the payload. */
export interface EventInfo {
  readonly id: string
  readonly eventName: string
  readonly time: number
  readonly sender: Address
  readonly tenantId: string | undefined
  readonly principalId: string | undefined
  readonly correlationId: string
  /** 1 on first delivery, higher when the broker redelivered it. */
  readonly deliveryCount: number
  /** 1 on the first run of the handler for this delivery, higher on the subscription's retries. */
  readonly attempt: number
}

/** A subscription handler after type erasure. */
export type AnySubscriptionHandler = (payload: unknown, info: EventInfo) => Effect.Effect<unknown, unknown>

/**
 * Events of a non-durable subscription that may wait, per instance, for a free handler slot (beyond
 * the `concurrency` running). Further events are dropped and counted as rejected (`overflow`): a slow
 * non-durable subscriber keeps bounded memory. Durable subscriptions are bounded by their broker.
 */
export const NON_DURABLE_BUFFER = 256

/** One line naming the failure of a cause: `Tag: message` for errors, the value itself otherwise. */
const summary = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  if (error instanceof Error) return `${error.name}: ${error.message}`
  if (typeof error === "string") return error
  const json = JSON.stringify(error)
  return json === undefined ? String(error) : json
}

const base64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64")

/**
 * Handles one delivered event: decodes it, applies the exact filter, validates the payload, runs the
 * handler under the concurrency bound with the subscription's retry schedule, and dead-letters it
 * when every attempt failed. Interruption propagates, so durable bridges redeliver.
 *
 * An event over `maxBytes` is not decoded: it is counted (`too-large`) and, on a durable
 * subscription, dead-lettered with its size in place of its content, then acknowledged.
 */
export const handleEvent = (
  bridge: BridgeShape,
  self: Address,
  subscription: Subscription.Any,
  handler: AnySubscriptionHandler,
  slots: Slots,
  maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES
) => {
  const decodePayload = Schema.decodeUnknownResult(subscription.payloadCodec)
  const counted = Metric.withAttributes(Metrics.deadLetters, { service: self.service, subscription: subscription.name })
  const instruments = Telemetry.deliveryInstruments(self, subscription.name)
  const failedFinally = Metric.update(instruments.series.failed, 1)
  const deadLetter = (env: Envelope.Envelope | undefined, event: unknown, attempts: number, error: string, cause = error) => {
    const letter: Subscription.DeadLetter = {
      service: self.service,
      version: self.version,
      subscription: subscription.name,
      event: event as Schema.Json,
      attempts,
      error,
      cause
    }
    const ctx: MessageContextShape = env === undefined ? { self } : contextOf(env, self)
    const publish = (l: Subscription.DeadLetter) => publishSized(bridge, Subscription.DEAD_LETTER, l, maxBytes)
    return Effect.andThen(
      Metric.update(counted, 1),
      publish(letter).pipe(
        // a letter carrying a near-limit event is over the limit itself: send it without the event
        Effect.catchTag("MessageTooLarge", (e) =>
          publish({
            ...letter,
            event: { omitted: e.message, id: env?.id ?? null, type: env?.type ?? null },
            error: letter.error.slice(0, 1_000),
            cause: letter.error.slice(0, 1_000)
          })),
        Effect.catchTag("MessageTooLarge", (e) =>
          Effect.logError(`herald: ${self.service} subscription ${subscription.name}: dead letter dropped: ${e.message}`)),
        Effect.provideService(MessageContext, ctx)
      )
    )
  }
  const giveUp = (env: Envelope.Envelope, attempts: number, cause: Cause.Cause<unknown>): Effect.Effect<void, BridgeError> => {
    if (Cause.hasInterruptsOnly(cause)) return Effect.interrupt
    if (env.type === Subscription.DEAD_LETTER) {
      return Effect.andThen(failedFinally, Effect.logError(
        `herald: ${self.service} subscription ${subscription.name} failed on a dead letter; dropped to avoid a loop`,
        cause
      ))
    }
    return Effect.andThen(failedFinally, Effect.andThen(
      Telemetry.logBadMessage(
        `herald: ${self.service} subscription ${subscription.name} gave up on event ${env.id} after ${attempts} attempts`,
        () => env.data
      ),
      deadLetter(env, Envelope.encode(env), attempts, summary(cause), Cause.pretty(cause))
    ))
  }
  return (message: IncomingEvent): Effect.Effect<void, BridgeError> =>
    Effect.withFiber((fiber) => {
      const tooLarge = exceeds(`event for subscription ${subscription.name}`, message.bytes, maxBytes)
      if (tooLarge !== undefined) {
        const rejected = reject("too-large", self.service, tooLarge.message)
        return subscription.durable
          ? Effect.andThen(rejected, deadLetter(undefined, { omitted: tooLarge.message, bytes: tooLarge.bytes }, 0, tooLarge.message))
          : rejected
      }
      const decoded = Codec.json.decode(message.bytes)
      if (Result.isFailure(decoded)) {
        const rejected = reject("undecodable", self.service, decoded.failure.reason, rawText(message.bytes))
        return subscription.durable
          ? Effect.andThen(rejected, deadLetter(undefined, { base64: base64(message.bytes) }, 0, decoded.failure.message))
          : rejected
      }
      const env = decoded.success
      if (env.kind !== "event") {
        return reject("unexpected", self.service, `${env.kind} ${env.type} on subscription ${subscription.name}`)
      }
      const target = {
        eventName: env.type,
        sender: env.sender,
        receiver: env.receiver,
        principalId: env.principalId,
        tenantId: env.tenantId,
        data: env.data
      }
      if (!subscription.matcher.matches(target)) return Effect.void
      const payload = decodePayload(env.data)
      if (Result.isFailure(payload)) {
        const issue = `payload fails the subscription's schema: ${issueOf(payload.failure)}`
        const rejected = reject("invalid-payload", self.service, `event ${env.id} on subscription ${subscription.name}: ${issue}`)
        // a dead letter is never dead-lettered again: a catch-all subscription would loop
        return env.type === Subscription.DEAD_LETTER ? rejected : Effect.andThen(rejected, deadLetter(env, Envelope.encode(env), 0, issue))
      }
      const info: EventInfo = {
        id: env.id,
        eventName: env.type,
        time: env.time,
        sender: env.sender,
        tenantId: env.tenantId,
        principalId: env.principalId,
        correlationId: env.correlationId,
        deliveryCount: message.deliveryCount,
        attempt: 1
      }
      let attempts = 0
      const attempt = Effect.withFiber((fiber) => {
        attempts++
        if (attempts > 1) Telemetry.countRetry(instruments, fiber)
        return handler(payload.success, attempts === 1 ? info : { ...info, attempt: attempts })
      })
      const handled = Effect.provideService(retryAfterFailure(attempt, subscription.retry), MessageContext, contextOf(env, self))
      // the broker bounds what a durable subscription has in flight (prefetch, max ack pending, receive
      // maximum); a non-durable one keeps at most NON_DURABLE_BUFFER events waiting for a slot
      if (!subscription.durable && slots.waiting() >= NON_DURABLE_BUFFER) {
        return reject(
          "overflow",
          self.service,
          `event ${env.id} on subscription ${subscription.name}: ${NON_DURABLE_BUFFER} events already wait for a handler`
        )
      }
      const slotted = slots.withSlot(handled)
      return Telemetry.observeDelivery(
        instruments,
        env,
        fiber,
        Effect.matchCauseEffect(slotted, {
          onFailure: (cause) => giveUp(env, attempts, cause),
          // one parameter: Effect wraps continuations of any other arity in a closure of its own
          onSuccess: (_) => {
            instruments.series.delivered.updateUnsafe(1, fiber.context)
            return Effect.void
          }
        })
      )
    })
}

