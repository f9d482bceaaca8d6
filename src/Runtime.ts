/**
 * The runtime: runs contracts against a bridge. Decode → validate → handler → encode → reply/ack,
 * deadlines, retries, dead letters and context propagation, written once for every bridge.
 *
 * Users reach it through `Service.toLayer`, `Client.make` and `Event.publish`; it is exported for
 * tools (test kits, gateways) built on the same machinery. This module is the caller side
 * (`invoke`); the serving side (`handleCommand`, `handleEvent`) and what both share (ids, outgoing
 * envelopes, publishing) live in `internal/` and are re-exported here.
 */
import { Clock, Effect, Exit, type Fiber, Result } from "effect"
import { type BridgeShape, type CommandAddress, addressKey } from "./Bridge.ts"
import { type CallError, InvalidInput, InvalidOutput, RemoteDefect, Timeout } from "./BridgeError.ts"
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

type CallExit<C extends Command.Any> = Exit.Exit<Command.Output<C>, Command.Errors<C> | CallError>

/** Reads a reply: the output, the declared error, or the failure it stands for. Decided at once. */
const readReply = <C extends Command.Any>(
  command: C,
  key: string,
  bytes: Uint8Array,
  caller: string,
  maxBytes: number,
  fiber: Fiber.Fiber<unknown, unknown>
): CallExit<C> => {
  /** A reply the caller cannot read: counted as a rejected message of the calling service, then `InvalidOutput`. */
  const reject = (reason: string, issue: string) => {
    Metrics.series(rejectedMessages, { reason, service: caller }).updateUnsafe(1, fiber.context)
    return Exit.fail(new InvalidOutput({ address: key, issue }))
  }
  const tooLarge = exceeds(`reply from ${key}`, bytes, maxBytes)
  if (tooLarge !== undefined) return reject("too-large", tooLarge.message)
  const decoded = Codec.json.decode(bytes)
  if (Result.isFailure(decoded)) return reject("undecodable", decoded.failure.reason)
  const reply = decoded.success
  switch (reply.status) {
    case "ok": {
      const output = command.wire.decodeOutput(reply.data)
      return Result.isSuccess(output)
        ? Exit.succeed(output.success)
        : Exit.fail(new InvalidOutput({ address: key, issue: issueOf(output.failure) }))
    }
    case "error": {
      const error = command.wire.decodeError?.(reply.data)
      if (error === undefined) {
        return Exit.fail(new InvalidOutput({ address: key, issue: "error reply for a command that declares none" }))
      }
      return Result.isSuccess(error)
        ? Exit.fail(error.success)
        : Exit.fail(new InvalidOutput({ address: key, issue: issueOf(error.failure) }))
    }
    case "defect": {
      const errorId = (reply.data as { readonly errorId?: unknown } | undefined)?.errorId
      return Exit.fail(new RemoteDefect({ address: key, errorId: typeof errorId === "string" ? errorId : "unknown" }))
    }
    case "invalid-input": {
      const issue = (reply.data as { readonly issue?: unknown } | undefined)?.issue
      return Exit.fail(new InvalidInput({ address: key, issue: typeof issue === "string" ? issue : "rejected" }))
    }
    default:
      return Exit.fail(new InvalidOutput({ address: key, issue: "reply without a status" }))
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
  const timeoutMs = options.timeoutMs
  const timeout = () => new Timeout({ address: key, timeoutMs })
  const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
  /** The input in its wire form, or `InvalidInput` when it fails the command's schema. */
  const wireInput = () =>
    Result.mapError(command.wire.encodeInput(input), (e) => new InvalidInput({ address: key, issue: issueOf(e) }))
  /** The encoded command, or why it cannot be sent; with its deadline. */
  const encode = (base: ReturnType<typeof outgoing>, data: unknown, now: number) => {
    const expiresAt = now + timeoutMs
    const envelope: Envelope.Envelope = {
      ...base,
      kind: "command",
      type: command.name,
      time: now,
      receiver,
      expiresAt,
      data
    }
    const bytes = Codec.json.encode(envelope)
    return { bytes, expiresAt, tooLarge: exceeds(`command ${key}`, bytes, maxBytes) }
  }
  const start = bridge.startRequest
  return Effect.withFiber((fiber) => {
    const instruments = Telemetry.callInstruments(address)
    if (
      start === undefined || options.retry !== undefined || fiber.getRef(Clock.Clock) !== nativeClock ||
      !(timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS) || Telemetry.tracing(fiber)
    ) {
      return general(fiber, instruments)
    }
    // the common case, decided in plain code: one suspension for the reply, the outcome recorded
    // where it becomes known (what `general` does with `observeCall`, a deadline fiber and `request`)
    const began = Telemetry.instantOf(fiber)
    const end = (exit: CallExit<C>): CallExit<C> => (Telemetry.recordCall(instruments, fiber, began, exit), exit)
    const data = wireInput()
    if (Result.isFailure(data)) return end(Exit.fail(data.failure))
    const base = outgoing(fiber.getRef(MessageContext), newId(), undefined)
    const { bytes, expiresAt, tooLarge } = encode(base, data.success, nowOf(fiber))
    if (tooLarge !== undefined) return end(Exit.fail(tooLarge))
    return Effect.callback<Command.Output<C>, Command.Errors<C> | CallError>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      let ended = false
      const cancel = start(address, bytes, expiresAt, (result) => {
        ended = true
        if (timer !== undefined) clearTimeout(timer)
        resume(end(Exit.isSuccess(result) ? readReply(command, key, result.value, base.sender.service, maxBytes, fiber) : result))
      })
      if (cancel === undefined) return resume(general(fiber, instruments))
      if (ended) return
      timer = setTimeout(() => {
        ended = true
        cancel()
        resume(end(Exit.fail(timeout())))
      }, timeoutMs)
      return Effect.sync(() => {
        if (ended) return
        clearTimeout(timer)
        cancel()
        end(Exit.interrupt(fiber.id))
      })
    })
  })

  /** Any call: in its span when tracing, with retries, under any clock, over `request`. */
  function general(fiber: Fiber.Fiber<unknown, unknown>, instruments: Telemetry.CallInstruments) {
    return Telemetry.observeCall(instruments, fiber, (span) => {
      const data = wireInput()
      if (Result.isFailure(data)) return Effect.fail(data.failure)
      const base = outgoing(fiber.getRef(MessageContext), newId(), span)
      const attempt = Effect.withFiber((fiber) => {
        const { bytes, expiresAt, tooLarge } = encode(base, data.success, nowOf(fiber))
        if (tooLarge !== undefined) return Effect.fail(tooLarge)
        return Effect.flatMap(
          deadline(bridge.request(address, bytes, expiresAt), timeoutMs, () => Effect.fail(timeout())),
          (reply) => readReply(command, key, reply, base.sender.service, maxBytes, fiber)
        )
      })
      return options.retry === undefined
        ? attempt
        : Effect.retry(attempt, { schedule: options.retry, while: isTransportError })
    })
  }
}
