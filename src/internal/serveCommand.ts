/**
 * The serving side of a command: decode, validate, run the handler under the deadline, reply.
 * Reached through `Runtime.handleCommand`.
 */
import { Cause, Effect, Option, Result } from "effect"
import { type BridgeShape, addressKey, type IncomingCommand } from "../Bridge.ts"
import { BridgeError, type MessageTooLarge } from "../BridgeError.ts"
import * as Codec from "../Codec.ts"
import type * as Command from "../Command.ts"
import * as Envelope from "../Envelope.ts"
import type { Address } from "../Envelope.ts"
import { MessageContext } from "../MessageContext.ts"
import { DEFAULT_MAX_MESSAGE_BYTES, exceeds } from "../MessageSize.ts"
import { deadline } from "./hotPath.ts"
import * as Telemetry from "./telemetry.ts"
import { contextOf, issueOf, newId, nowOf, publishSized, rawText, reject } from "./messages.ts"

/** What a handler interrupted at its command's deadline gives instead of an output. */
const TIMED_OUT: unique symbol = Symbol("herald/timed-out")
const timedOut = () => Effect.succeed(TIMED_OUT)

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
        return Telemetry.observeHandling(instruments, env, fiber, reply("invalid-input", { issue: issueOf(input.failure) }))
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
        return Telemetry.observeHandling(instruments, env, fiber, Effect.matchCauseEffect(run, { onFailure: fail, onSuccess: succeed }))
      }
      return Telemetry.observeHandling(
        instruments,
        env,
        fiber,
        deadline(run, env.expiresAt - received, timedOut).pipe(
          Effect.matchCauseEffect({
            onFailure: fail,
            onSuccess: (output) =>
              output === TIMED_OUT
                ? Effect.withFiber((fiber) => {
                  Telemetry.countHandled(instruments, "timeout", fiber)
                  return Effect.logWarning(`herald: command ${key} ${env.id} interrupted at its deadline`)
                })
                : succeed(output)
          })
        )
      )
    }).pipe(Effect.catch((e: BridgeError) => Effect.logWarning(`herald: reply not sent: ${e.message}`)))
}
