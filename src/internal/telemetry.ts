/**
 * W3C trace context ↔ Effect spans, and the small helpers the runtime uses to open one span per
 * message without capturing stack traces.
 */
import { Cause, Clock, Context, Effect, Exit, type Fiber, Metric, Option, References, Tracer } from "effect"
import type { CommandAddress } from "../Bridge.ts"
import type { Address, Envelope, ReplyStatus } from "../Envelope.ts"
import { MessageContext } from "../MessageContext.ts"
import * as Metrics from "../Metrics.ts"
import { nativeClock } from "./hotPath.ts"

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/
const ZERO_TRACE = "00000000000000000000000000000000"
const ZERO_SPAN = "0000000000000000"

/**
 * Parses a W3C `traceparent` header into an external span usable as a parent, or `undefined` when
 * it is absent or malformed (version `ff`, all-zero ids, wrong lengths are rejected as the spec says).
 */
export const parseTraceparent = (traceparent: string | undefined): Tracer.ExternalSpan | undefined => {
  if (traceparent === undefined || traceparent.length < 55) return undefined
  const m = TRACEPARENT.exec(traceparent.toLowerCase())
  if (m === null) return undefined
  const [, version, traceId, spanId, flags] = m as unknown as [string, string, string, string, string]
  if (version === "ff" || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined
  if (version === "00" && traceparent.length !== 55) return undefined
  return Tracer.externalSpan({ traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 })
}

/**
 * The W3C `traceparent` of a span, or `undefined` when the span carries no W3C-sized ids (the
 * no-op span of a disabled tracer, or a custom tracer with other id formats). Effect's native and
 * OpenTelemetry spans have 32/16 lower-case hex ids, so only the lengths are checked.
 */
export const formatTraceparent = (span: Tracer.AnySpan): string | undefined => {
  const traceId = span.traceId
  const spanId = span.spanId
  if (traceId.length !== 32 || spanId.length !== 16) return undefined
  return `00-${traceId}-${spanId}-${span.sampled ? "01" : "00"}`
}

/** Runs an effect with a span as its parent (no stack-frame bookkeeping: one context update). */
const inSpan = <A, E, R>(effect: Effect.Effect<A, E, R>, span: Tracer.Span): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, Tracer.ParentSpan, span)

/**
 * When Herald opens its spans: `auto` (the default) when someone collects them — a tracer other
 * than Effect's built-in one is installed (OTLP, OpenTelemetry, a custom tracer) or Herald's
 * structured logs are on — and tracing is enabled (`References.TracerEnabled`); `always`; `never`.
 * Without spans an incoming `traceparent` is passed on unchanged, so a trace still runs through.
 */
export type SpanMode = "auto" | "always" | "never"

/** The current `SpanMode` (default `auto`). */
export const Spans: Context.Reference<SpanMode> = Context.Reference<SpanMode>("herald/Spans", {
  defaultValue: () => "auto"
})

/** Whether the fiber should open Herald spans (see `SpanMode`). */
export const tracing = (fiber: Fiber.Fiber<unknown, unknown>): boolean => {
  const mode = fiber.getRef(Spans)
  if (mode === "never") return false
  if (mode === "auto" && fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer) return false
  return fiber.getRef(References.TracerEnabled)
}

/** The span the fiber currently runs in, if any. */
export const currentSpanOf = (fiber: Fiber.Fiber<unknown, unknown>): Tracer.AnySpan | undefined =>
  Context.getOrUndefined(fiber.context, Tracer.ParentSpan)

/**
 * Span options with the parent taken from a `traceparent` when the fiber runs in no span yet (a
 * top-level caller that set a `traceparent` in its message context). Returns `base` unchanged
 * otherwise, so the common case allocates nothing.
 */
export const withRemoteParent = (
  fiber: Fiber.Fiber<unknown, unknown>,
  base: Tracer.SpanOptionsNoTrace,
  traceparent: string | undefined
): Tracer.SpanOptionsNoTrace => {
  if (traceparent === undefined || currentSpanOf(fiber) !== undefined) return base
  const parent = parseTraceparent(traceparent)
  return parent === undefined ? base : { ...base, parent }
}

/** Span options whose parent is the remote span of an incoming message (a new trace without one). */
export const remoteParent = (base: Tracer.SpanOptionsNoTrace, traceparent: string | undefined): Tracer.SpanOptionsNoTrace => {
  const parent = parseTraceparent(traceparent)
  return parent === undefined ? { ...base, root: true } : { ...base, parent }
}

/**
 * A start instant for durations, in milliseconds: `performance.now()` under the built-in clock (a
 * float read, where the clock's nanoseconds cost BigInt arithmetic), the clock's own time otherwise
 * (the `TestClock` under test).
 */
export const instantOf = (fiber: Fiber.Fiber<unknown, unknown>): number => {
  const clock = fiber.getRef(Clock.Clock)
  return clock === nativeClock ? performance.now() : Number(clock.currentTimeNanosUnsafe()) / 1e6
}

/** Seconds elapsed since `start` (an `instantOf` the same fiber). */
export const secondsSince = (fiber: Fiber.Fiber<unknown, unknown>, start: number): number =>
  (instantOf(fiber) - start) / 1000

/**
 * The outcome label of a caller-side exit: `ok`, the `_tag` of the failure, `Interrupted` or `Defect`.
 */
export const outcomeOf = (exit: Exit.Exit<unknown, unknown>): string => {
  if (Exit.isSuccess(exit)) return "ok"
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isSome(error)) {
    const tag = (error.value as { readonly _tag?: unknown } | null)?._tag
    return typeof tag === "string" ? tag : "Error"
  }
  return Cause.hasInterruptsOnly(exit.cause) ? "Interrupted" : "Defect"
}

// ---------------------------------------------------------------------------------------------
// span names and attributes (documented in the README, "Observability")
// ---------------------------------------------------------------------------------------------

/** Sets the per-message attributes (message id, correlation id, tenant) on a span. */
export const annotateSpan = (span: Tracer.Span, id: string, correlationId: string, tenantId: string | undefined): void => {
  span.attribute("herald.message_id", id)
  span.attribute("herald.correlation_id", correlationId)
  if (tenantId !== undefined) span.attribute("herald.tenant_id", tenantId)
}


// caller side ------------------------------------------------------------------------------------

/** The span name and series of one command, on the caller side. */
export interface CallInstruments {
  readonly spanName: string
  readonly spanOptions: Tracer.SpanOptionsNoTrace
  readonly series: Metrics.ClientSeries
}

const calls = new WeakMap<CommandAddress, CallInstruments>()

/**
 * The caller-side instruments of a command address, built on first use and kept for that address
 * object (clients and the gateway make one per command, so the lookup is by identity).
 */
export const callInstruments = (address: CommandAddress): CallInstruments => {
  let found = calls.get(address)
  if (found === undefined) {
    found = {
      spanName: `herald.invoke ${address.service}/${address.command}`,
      spanOptions: {
        kind: "client",
        attributes: {
          "herald.service": address.service,
          "herald.version": address.version,
          "herald.command": address.command
        }
      },
      series: Metrics.clientSeries(address.service, address.version, address.command)
    }
    calls.set(address, found)
  }
  return found
}

/**
 * Runs `effect` of a sending operation (an invocation, a publish), then `record` with its exit: in
 * the operation's span when `tracing` is on — a child of the current span, or of `traceparent` at
 * top level — passed to `effect` rather than provided as a parent.
 */
const spanned = <A, E, R>(
  fiber: Fiber.Fiber<unknown, unknown>,
  instruments: { readonly spanName: string; readonly spanOptions: Tracer.SpanOptionsNoTrace },
  traceparent: string | undefined,
  effect: (span: Tracer.Span | undefined, fiber: Fiber.Fiber<unknown, unknown>) => Effect.Effect<A, E, R>,
  record: (exit: Exit.Exit<A, E>) => Effect.Effect<void>
): Effect.Effect<A, E, R> => {
  if (!tracing(fiber)) return Effect.onExit(effect(undefined, fiber), record)
  const options = withRemoteParent(fiber, instruments.spanOptions, traceparent)
  return Effect.useSpan(instruments.spanName, options, (span) => Effect.onExit(effect(span, fiber), record))
}

/**
 * Runs one invocation in its `herald.invoke` span (a child of the current span, or of the
 * context's `traceparent` at top level; none when `tracing` is off) and records its outcome and
 * duration. The span is passed to `effect` (for the outgoing `traceparent`) rather than provided as
 * a parent: nothing inside an invocation opens spans, and skipping the context update keeps the hot
 * path short. `fiber` is the fiber that runs the returned effect next.
 */
export const observeCall = <A, E, R>(
  instruments: CallInstruments,
  fiber: Fiber.Fiber<unknown, unknown>,
  effect: (span: Tracer.Span | undefined) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const start = instantOf(fiber)
  const record = (exit: Exit.Exit<A, E>) => {
    recordCall(instruments, fiber, start, exit)
    return Effect.void
  }
  return spanned(fiber, instruments, fiber.getRef(MessageContext).traceparent, effect, record)
}

/** Records the outcome and duration of one invocation that began at `start` (an `instantOf` the fiber). */
export const recordCall = (
  instruments: CallInstruments,
  fiber: Fiber.Fiber<unknown, unknown>,
  start: number,
  exit: Exit.Exit<unknown, unknown>
): void => {
  instruments.series.calls(outcomeOf(exit)).updateUnsafe(1, fiber.context)
  instruments.series.duration.updateUnsafe(secondsSince(fiber, start), fiber.context)
}

// publishing -------------------------------------------------------------------------------------

interface PublishInstruments {
  readonly spanName: string
  readonly spanOptions: Tracer.SpanOptionsNoTrace
  readonly bySender: Map<string, Metric.Counter<number>>
}

const publishes = new Map<string, PublishInstruments>()

const publishInstruments = (eventName: string): PublishInstruments => {
  let found = publishes.get(eventName)
  if (found === undefined) {
    found = {
      spanName: `herald.publish ${eventName}`,
      spanOptions: { kind: "producer", attributes: { "herald.event": eventName } },
      bySender: new Map()
    }
    publishes.set(eventName, found)
  }
  return found
}

const publishedCounter = (instruments: PublishInstruments, service: string, event: string): Metric.Counter<number> => {
  let counter = instruments.bySender.get(service)
  if (counter === undefined) {
    counter = Metrics.series(Metrics.eventsPublished, { service, event })
    instruments.bySender.set(service, counter)
  }
  return counter
}

/**
 * Runs one publish in its `herald.publish <event>` span (passed to `effect`, like `observeCall`)
 * and counts it when it succeeds.
 */
export const observePublish = <A, E, R>(
  eventName: string,
  effect: (span: Tracer.Span | undefined, fiber: Fiber.Fiber<unknown, unknown>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    const instruments = publishInstruments(eventName)
    const ctx = fiber.getRef(MessageContext)
    const record = (exit: Exit.Exit<A, E>) => {
      if (Exit.isSuccess(exit)) {
        publishedCounter(instruments, ctx.self?.service ?? "client", eventName).updateUnsafe(1, fiber.context)
      }
      return Effect.void
    }
    return spanned(fiber, instruments, ctx.traceparent, effect, record)
  })

// serving side -----------------------------------------------------------------------------------

/** The span name and series of one command, on the serving side. */
export interface CommandInstruments {
  readonly spanName: string
  readonly spanOptions: Tracer.SpanOptionsNoTrace
  readonly series: Metrics.CommandSeries
}

/** Builds the serving-side instruments of a command (once, when its handler is made). */
export const commandInstruments = (self: Address, command: string): CommandInstruments => ({
  spanName: `herald.handle ${self.service}/${command}`,
  spanOptions: {
    kind: "server",
    attributes: { "herald.service": self.service, "herald.version": self.version, "herald.command": command }
  },
  series: Metrics.commandSeries(self.service, self.version, command)
})

/**
 * Runs the handling of one command in its `herald.handle` span, a child of the span named by the
 * command's `traceparent`, counting it in flight (from this call) and timing it. `fiber` is the
 * fiber that runs the returned effect next.
 */
export const observeHandling = <A, E, R>(
  instruments: CommandInstruments,
  env: Envelope,
  fiber: Fiber.Fiber<unknown, unknown>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const { duration, inFlight } = instruments.series
  const context = fiber.context
  inFlight.modifyUnsafe(1, context)
  const start = instantOf(fiber)
  const record = () => {
    inFlight.modifyUnsafe(-1, context)
    duration.updateUnsafe(secondsSince(fiber, start), context)
    return Effect.void
  }
  if (!tracing(fiber)) return Effect.onExit(effect, record)
  return Effect.useSpan(instruments.spanName, remoteParent(instruments.spanOptions, env.traceparent), (span) => {
    annotateSpan(span, env.id, env.correlationId, env.tenantId)
    return Effect.onExit(inSpan(effect, span), record)
  })
}

/** Counts the outcome of a handled command (the status of its reply, or `timeout`). */
export const countHandled = (
  instruments: CommandInstruments,
  outcome: ReplyStatus | "timeout",
  fiber: Fiber.Fiber<unknown, unknown>
): void => instruments.series.handled[outcome].updateUnsafe(1, fiber.context)

// subscriptions ----------------------------------------------------------------------------------

/** The span name and series of one subscription. */
export interface DeliveryInstruments {
  readonly spanName: string
  readonly spanOptions: Tracer.SpanOptionsNoTrace
  readonly series: Metrics.SubscriptionSeries
}

/** Builds the instruments of a subscription (once, when its handler is made). */
export const deliveryInstruments = (self: Address, subscription: string): DeliveryInstruments => ({
  spanName: `herald.deliver ${self.service}/${subscription}`,
  spanOptions: {
    kind: "consumer",
    attributes: { "herald.service": self.service, "herald.version": self.version, "herald.subscription": subscription }
  },
  series: Metrics.subscriptionSeries(self.service, subscription)
})

/** Counts a retry of a subscription handler, and the failed attempt before it. */
export const countRetry = (instruments: DeliveryInstruments, fiber: Fiber.Fiber<unknown, unknown>): void => {
  instruments.series.retried.updateUnsafe(1, fiber.context)
  instruments.series.failed.updateUnsafe(1, fiber.context)
}

/**
 * Records the subscription's lag for one event and runs its handling in its `herald.deliver` span, a
 * child of the span that published it. `fiber` is the fiber that will run the returned effect.
 */
export const observeDelivery = <A, E, R>(
  instruments: DeliveryInstruments,
  env: Envelope,
  fiber: Fiber.Fiber<unknown, unknown>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
  instruments.series.lag.updateUnsafe(Math.max(0, now - env.time) / 1000, fiber.context)
  if (!tracing(fiber)) return effect
  return Effect.useSpan(instruments.spanName, remoteParent(instruments.spanOptions, env.traceparent), (span) => {
    annotateSpan(span, env.id, env.correlationId, env.tenantId)
    return inSpan(effect, span)
  })
}

/** A span as the runtime sees it. */
export type Span = Tracer.Span

/**
 * Whether Herald's log lines about bad messages may include their payload. Default `false`:
 * payloads are never logged unless the application opts in (`Observability.layer({ logs: { payloads: true } })`).
 */
export const LogPayloads: Context.Reference<boolean> = Context.Reference<boolean>("herald/LogPayloads", {
  defaultValue: () => false
})

/**
 * Logs a warning about a bad message (dropped, rejected, dead-lettered), with `{ payload }` appended
 * only when `LogPayloads` is on.
 */
export const logBadMessage = (message: string, payload?: () => unknown): Effect.Effect<void> =>
  payload === undefined
    ? Effect.logWarning(message)
    : Effect.withFiber((fiber) =>
      fiber.getRef(LogPayloads) ? Effect.logWarning(message, { payload: payload() }) : Effect.logWarning(message)
    )
