/**
 * The runtime: runs contracts against a bridge. Decode → validate → handler → encode → reply/ack,
 * deadlines, retries, dead letters and context propagation, written once for every bridge.
 *
 * Users reach it through `Service.toLayer`, `Client.make` and `Event.publish`; it is exported for
 * tools (test kits, gateways) built on the same machinery. This module is the caller side
 * (`invoke`); the serving side (`handleCommand`, `handleEvent`) and what both share (ids, outgoing
 * envelopes, publishing) live in `internal/` and are re-exported here.
 */
import { Clock, Effect, type Fiber, Metric, Result } from "effect"
import { type BridgeShape, type CommandAddress, addressKey } from "./Bridge.ts"
import {
  type BridgeError,
  type CallError,
  InvalidInput,
  InvalidOutput,
  type NoResponder,
  RemoteDefect,
  Timeout
} from "./BridgeError.ts"
import * as Codec from "./Codec.ts"
import type * as Command from "./Command.ts"
import * as Envelope from "./Envelope.ts"
import type { Address } from "./Envelope.ts"
import { MessageContext } from "./MessageContext.ts"
import { DEFAULT_MAX_MESSAGE_BYTES, exceeds } from "./MessageSize.ts"
import * as Metrics from "./Metrics.ts"
import * as Telemetry from "./internal/telemetry.ts"
import * as Subscription from "./Subscription.ts"
import { deadline, MAX_TIMER_MS, nativeClock } from "./internal/hotPath.ts"
import { issueOf, newId, nowOf, outgoing } from "./internal/messages.ts"

export { ANONYMOUS, contextOf, newId, publishEncoded, publishSized } from "./internal/messages.ts"
export { type AnyCommandHandler, handleCommand } from "./internal/serveCommand.ts"
export { type AnySubscriptionHandler, type EventInfo, handleEvent, NON_DURABLE_BUFFER } from "./internal/serveEvent.ts"
export { makeSlots, type Slots } from "./internal/hotPath.ts"

/** Messages a consumer received but could not use (re-exported from `Metrics`). */
export const rejectedMessages = Metrics.rejectedMessages

/** Events sent to the dead-letter stream (re-exported from `Metrics`). */
export const deadLetters = Metrics.deadLetters

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
  const bounded = (bytes: Uint8Array, expiresAt: number) =>
    deadline(bridge.request(address, bytes, expiresAt), options.timeoutMs, timeout)
  /** Sends the command and waits for its reply until the timeout (through `startRequest` when it can). */
  const send = (fiber: Fiber.Fiber<unknown, unknown>, bytes: Uint8Array, expiresAt: number) => {
    const start = bridge.startRequest
    if (start === undefined || fiber.getRef(Clock.Clock) !== nativeClock || !(options.timeoutMs > 0 && options.timeoutMs <= MAX_TIMER_MS)) {
      return bounded(bytes, expiresAt)
    }
    return Effect.callback<Uint8Array, NoResponder | BridgeError | Timeout>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      let ended = false
      const cancel = start(address, bytes, expiresAt, (result) => {
        ended = true
        if (timer !== undefined) clearTimeout(timer)
        resume(result)
      })
      if (cancel === undefined) return resume(bounded(bytes, expiresAt))
      if (ended) return
      timer = setTimeout(() => {
        cancel()
        resume(timeout())
      }, options.timeoutMs)
      return Effect.sync(() => {
        clearTimeout(timer)
        cancel()
      })
    })
  }
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
      return Effect.flatMap(
        send(fiber, bytes, expiresAt),
        (reply) => readReply(command, key, reply, base.sender.service, maxBytes)
      )
    })
    return options.retry === undefined
      ? attempt
      : Effect.retry(attempt, { schedule: options.retry, while: isTransportError })
  })
}

