/**
 * The runtime: runs contracts against a bridge. Decode → validate → handler → encode → reply/ack,
 * deadlines, retries, dead letters and context propagation, written once for every bridge.
 *
 * Users reach it through `Service.toLayer`, `Client.make` and `Event.publish`; it is exported for
 * tools (test kits, gateways) built on the same machinery.
 */
import { Cause, Clock, Effect, type Fiber, Metric, Option, Result, Schema, Semaphore } from "effect"
import { type BridgeShape, type CommandAddress, addressKey, type IncomingCommand, type IncomingEvent } from "./Bridge.ts"
import {
  BridgeError,
  type CallError,
  InvalidInput,
  InvalidOutput,
  type MessageTooLarge,
  RemoteDefect,
  Timeout
} from "./BridgeError.ts"
import * as Codec from "./Codec.ts"
import type * as Command from "./Command.ts"
import * as Envelope from "./Envelope.ts"
import type { Address } from "./Envelope.ts"
import { MessageContext, type MessageContextShape } from "./MessageContext.ts"
import { DEFAULT_MAX_MESSAGE_BYTES, exceeds, MaxMessageBytes } from "./MessageSize.ts"
import * as Metrics from "./Metrics.ts"
import * as Telemetry from "./internal/telemetry.ts"
import * as Subscription from "./Subscription.ts"

/** A new random message or instance id. */
export const newId = (): string => crypto.randomUUID()

/** Messages a consumer received but could not use (re-exported from `Metrics`). */
export const rejectedMessages = Metrics.rejectedMessages

/** Events sent to the dead-letter stream (re-exported from `Metrics`). */
export const deadLetters = Metrics.deadLetters

/** Counts and logs a dropped message; its payload joins the log line only when `LogPayloads` is on. */
const reject = (reason: string, service: string, detail: string, payload?: () => unknown) =>
  Effect.andThen(
    Metric.update(Metric.withAttributes(rejectedMessages, { reason, service }), 1),
    Telemetry.logBadMessage(`herald: ${service} dropped a message (${reason}): ${detail}`, payload)
  )

/** The first 4 KiB of undecodable bytes as text, for a log line that opted in to payloads. */
const rawText = (bytes: Uint8Array) => () => new TextDecoder().decode(bytes.subarray(0, 4096))

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
const outgoing = (ctx: MessageContextShape, id: string, span: Telemetry.Span | undefined) => {
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

const issueOf = (e: Schema.SchemaError): string => e.message

// ---------------------------------------------------------------------------------------------
// caller side
// ---------------------------------------------------------------------------------------------

/** Options of one invocation. */
export interface InvokeOptions {
  readonly timeoutMs: number
  /** Retries on transport errors (`Timeout`, `NoResponder`, `BridgeError`), reusing the invocation id. */
  readonly retry?: Subscription.RetryPolicy | undefined
  /** The largest command sent and reply accepted, in bytes (`MessageSize.MaxMessageBytes`). Default 1 MiB. */
  readonly maxMessageBytes?: number | undefined
}

const isTransportError = (e: { readonly _tag: string }): boolean =>
  e._tag === "Timeout" || e._tag === "NoResponder" || e._tag === "BridgeError"

/** A reply the caller cannot read: counted as a rejected message of the calling service, then `InvalidOutput`. */
const rejectReply = (reason: string, caller: string, key: string, issue: string) =>
  Effect.andThen(
    Metric.update(Metric.withAttributes(rejectedMessages, { reason, service: caller }), 1),
    Effect.fail(new InvalidOutput({ address: key, issue }))
  )

const readReply = <C extends Command.Any>(
  command: C,
  key: string,
  bytes: Uint8Array,
  caller: string,
  maxBytes: number
): Effect.Effect<Command.Output<C>, Command.Errors<C> | CallError> => {
  const tooLarge = exceeds(`reply from ${key}`, bytes, maxBytes)
  if (tooLarge !== undefined) return rejectReply("too-large", caller, key, tooLarge.message)
  const decoded = Codec.json.decode(bytes)
  if (Result.isFailure(decoded)) return rejectReply("undecodable", caller, key, decoded.failure.reason)
  const reply = decoded.success
  switch (reply.status) {
    case "ok": {
      const output = command.wire.decodeOutput(reply.data)
      return Result.isSuccess(output)
        ? Effect.succeed(output.success)
        : Effect.fail(new InvalidOutput({ address: key, issue: issueOf(output.failure) }))
    }
    case "error": {
      const error = command.wire.decodeError?.(reply.data)
      if (error === undefined) {
        return Effect.fail(new InvalidOutput({ address: key, issue: "error reply for a command that declares none" }))
      }
      return Result.isSuccess(error)
        ? Effect.fail(error.success)
        : Effect.fail(new InvalidOutput({ address: key, issue: issueOf(error.failure) }))
    }
    case "defect": {
      const errorId = (reply.data as { readonly errorId?: unknown } | undefined)?.errorId
      return Effect.fail(new RemoteDefect({ address: key, errorId: typeof errorId === "string" ? errorId : "unknown" }))
    }
    case "invalid-input": {
      const issue = (reply.data as { readonly issue?: unknown } | undefined)?.issue
      return Effect.fail(new InvalidInput({ address: key, issue: typeof issue === "string" ? issue : "rejected" }))
    }
    default:
      return Effect.fail(new InvalidOutput({ address: key, issue: "reply without a status" }))
  }
}

/** The current time of the fiber's clock (the TestClock under test), read without an Effect step. */
const nowOf = (fiber: Fiber.Fiber<unknown, unknown>): number => fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()

/**
 * Invokes a command: validates and encodes the input, sends it with its deadline, waits for the
 * reply within the timeout, and decodes the output or the declared error.
 */
export const invoke = <C extends Command.Any>(
  bridge: BridgeShape,
  address: CommandAddress,
  command: C,
  input: Command.Input<C>,
  options: InvokeOptions
): Effect.Effect<Command.Output<C>, Command.Errors<C> | CallError> => {
  const key = addressKey(address)
  const receiver: Address = { service: address.service, version: address.version }
  const timeout = () => Effect.fail(new Timeout({ address: key, timeoutMs: options.timeoutMs }))
  const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
  const what = `command ${key}`
  return Telemetry.observeCall(Telemetry.callInstruments(address), (span, fiber) => {
    const data = command.wire.encodeInput(input)
    if (Result.isFailure(data)) return Effect.fail(new InvalidInput({ address: key, issue: issueOf(data.failure) }))
    const base = outgoing(fiber.getRef(MessageContext), newId(), span)
    const attempt = Effect.withFiber((fiber) => {
      const now = nowOf(fiber)
      const expiresAt = now + options.timeoutMs
      const envelope: Envelope.Envelope = {
        ...base,
        kind: "command",
        type: command.name,
        time: now,
        receiver,
        expiresAt,
        data: data.success
      }
      const bytes = Codec.json.encode(envelope)
      const tooLarge = exceeds(what, bytes, maxBytes)
      if (tooLarge !== undefined) return Effect.fail(tooLarge)
      return bridge.request(address, bytes, expiresAt).pipe(
        Effect.timeoutOrElse({ duration: options.timeoutMs, orElse: timeout }),
        Effect.flatMap((reply) => readReply(command, key, reply, base.sender.service, maxBytes))
      )
    })
    return options.retry === undefined
      ? attempt
      : Effect.retry(attempt, { schedule: options.retry, while: isTransportError })
  })
}

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

// ---------------------------------------------------------------------------------------------
// serving side
// ---------------------------------------------------------------------------------------------

/** A command handler after type erasure. */
export type AnyCommandHandler = (input: unknown) => Effect.Effect<unknown, unknown>

/**
 * Handles one delivered command: drops it when expired, validates the input, runs the handler
 * bounded by the deadline, publishes the emitted event, and replies.
 *
 * A command over `maxBytes` is not decoded: it is counted (`too-large`) and answered with an
 * `invalid-input` reply. A reply that would exceed `maxBytes` is logged and replaced by a `defect` reply.
 */
export const handleCommand = (
  bridge: BridgeShape,
  self: Address,
  command: Command.Any,
  handler: AnyCommandHandler,
  maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES
) => {
  const key = addressKey({ ...self, command: command.name })
  const source = Envelope.sourceOf(self)
  const instruments = Telemetry.commandInstruments(self, command.name)
  /** The answer to a command too large to decode: an `invalid-input` reply carrying nothing of the command. */
  const refuseTooLarge = (message: IncomingCommand, tooLarge: MessageTooLarge) =>
    Effect.withFiber((fiber) =>
      Effect.andThen(
        reject("too-large", self.service, tooLarge.message),
        message.reply(Codec.json.encode({
          id: newId(),
          kind: "reply",
          type: command.name,
          source,
          time: nowOf(fiber),
          correlationId: "",
          sender: self,
          status: "invalid-input",
          data: { issue: `the command is ${tooLarge.bytes} bytes, over the receiver's maximum of ${tooLarge.limit}` }
        }))
      )
    )
  return (message: IncomingCommand): Effect.Effect<void> =>
    Effect.withFiber((fiber) => {
      const tooLarge = exceeds(`command ${key}`, message.bytes, maxBytes)
      if (tooLarge !== undefined) return refuseTooLarge(message, tooLarge)
      const decoded = Codec.json.decode(message.bytes)
      if (Result.isFailure(decoded)) return reject("undecodable", self.service, decoded.failure.reason, rawText(message.bytes))
      const env = decoded.success
      if (env.kind !== "command" || env.type !== command.name) {
        return reject("unexpected", self.service, `${env.kind} ${env.type} on command ${command.name}`)
      }
      const received = nowOf(fiber)
      if (env.expiresAt !== undefined && received >= env.expiresAt) {
        return reject("expired", self.service, `command ${command.name} ${env.id} arrived after its deadline`)
      }
      const encodeReply = (status: Envelope.ReplyStatus, data: unknown, time: number) =>
        Codec.json.encode({
          id: newId(),
          kind: "reply",
          type: command.name,
          source,
          time,
          correlationId: env.correlationId,
          causationId: env.id,
          principalId: env.principalId,
          tenantId: env.tenantId,
          traceparent: env.traceparent,
          tracestate: env.tracestate,
          sender: self,
          receiver: env.sender,
          status,
          data
        })
      const reply = (status: Envelope.ReplyStatus, data: unknown) =>
        Effect.withFiber((fiber) => {
          Telemetry.countHandled(instruments, status, fiber)
          const time = nowOf(fiber)
          const bytes = encodeReply(status, data, time)
          const tooLarge = exceeds(`reply of ${key}`, bytes, maxBytes)
          if (tooLarge === undefined) return message.reply(bytes)
          const errorId = newId()
          return Effect.andThen(
            Effect.logError(`herald: ${key} ${tooLarge.message} (error id ${errorId})`),
            message.reply(encodeReply("defect", { errorId }, time))
          )
        })
      const defect = (cause: Cause.Cause<unknown>, what: string) => {
        const errorId = newId()
        return Effect.andThen(
          Effect.logError(`herald: ${key} ${what} (error id ${errorId})`, cause),
          reply("defect", { errorId })
        )
      }
      const input = command.wire.decodeInput(env.data)
      if (Result.isFailure(input)) {
        return Telemetry.observeHandling(instruments, env, reply("invalid-input", { issue: issueOf(input.failure) }))
      }

      const context = contextOf(env, self)
      const succeed = (output: unknown) => {
        const encoded = command.wire.encodeOutput(output)
        if (Result.isFailure(encoded)) {
          return defect(Cause.fail(encoded.failure), "returned an output that fails its schema")
        }
        if (command.emits === undefined) return reply("ok", encoded.success)
        return publishSized(bridge, command.emits, encoded.success, maxBytes).pipe(
          Effect.provideService(MessageContext, context),
          Effect.matchCauseEffect({
            onFailure: (cause) => defect(cause, `succeeded but could not publish ${command.emits}`),
            onSuccess: () => reply("ok", encoded.success)
          })
        )
      }
      const fail = (cause: Cause.Cause<unknown>): Effect.Effect<void, BridgeError> => {
        if (Cause.hasInterruptsOnly(cause)) return Effect.interrupt
        const error = Cause.findErrorOption(cause)
        if (Option.isSome(error) && command.wire.isError(error.value)) {
          const encoded = command.wire.encodeError!(error.value)
          if (Result.isSuccess(encoded)) return reply("error", encoded.success)
        }
        return defect(cause, "failed")
      }
      const run = Effect.provideService(handler(input.success), MessageContext, context)
      if (env.expiresAt === undefined) {
        return Telemetry.observeHandling(instruments, env, Effect.matchCauseEffect(run, { onFailure: fail, onSuccess: succeed }))
      }
      return Telemetry.observeHandling(
        instruments,
        env,
        Effect.timeoutOption(run, env.expiresAt - received).pipe(
          Effect.matchCauseEffect({
            onFailure: fail,
            onSuccess: Option.match({
              onNone: () =>
                Effect.withFiber((fiber) => {
                  Telemetry.countHandled(instruments, "timeout", fiber)
                  return Effect.logWarning(`herald: command ${key} ${env.id} interrupted at its deadline`)
                }),
              onSome: succeed
            })
          })
        )
      )
    }).pipe(Effect.catch((e: BridgeError) => Effect.logWarning(`herald: reply not sent: ${e.message}`)))
}

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
  permits: Semaphore.Semaphore,
  maxBytes: number = DEFAULT_MAX_MESSAGE_BYTES
) => {
  const decodePayload = Schema.decodeUnknownResult(subscription.payloadCodec)
  /** Non-durable events received and waiting for a handler slot (bounded by `NON_DURABLE_BUFFER`). */
  let waiting = 0
  const counted = Metric.withAttributes(deadLetters, { service: self.service, subscription: subscription.name })
  const instruments = Telemetry.deliveryInstruments(self, subscription.name)
  const delivered = Metric.update(instruments.series.delivered, 1)
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
    Effect.suspend(() => {
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
      const handled = attempt.pipe(Effect.retry(subscription.retry), Effect.provideService(MessageContext, contextOf(env, self)))
      let slotted: Effect.Effect<unknown, unknown>
      if (subscription.durable) {
        // the broker bounds what a durable subscription has in flight (prefetch, max ack pending, receive maximum)
        slotted = permits.withPermits(1)(handled)
      } else {
        if (waiting >= NON_DURABLE_BUFFER) {
          return reject(
            "overflow",
            self.service,
            `event ${env.id} on subscription ${subscription.name}: ${NON_DURABLE_BUFFER} events already wait for a handler`
          )
        }
        waiting++
        let held = false
        slotted = permits.withPermits(1)(Effect.suspend(() => {
          held = true
          waiting--
          return handled
        })).pipe(Effect.ensuring(Effect.sync(() => (held ? undefined : void waiting--))))
      }
      return Telemetry.observeDelivery(
        instruments,
        env,
        Effect.matchCauseEffect(slotted, {
          onFailure: (cause) => giveUp(env, attempts, cause),
          onSuccess: () => delivered
        })
      )
    })
}
