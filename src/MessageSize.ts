/**
 * The maximum size of a message on the wire, enforced by the runtime on every bridge.
 *
 * The limit applies to the encoded envelope (the bytes handed to the broker). A sender checks it
 * before anything reaches the broker and fails with `MessageTooLarge`; a receiver checks it before
 * decoding and rejects larger messages (counted as `herald_messages_rejected_total{reason="too-large"}`).
 * Services read it once when they start and clients once when they are made.
 *
 * @example
 * // 256 KiB for every service and client built inside this program
 * program.pipe(Effect.provideService(MessageSize.MaxMessageBytes, 256 * 1024))
 */
import { Context } from "effect"
import { DefinitionError, MessageTooLarge } from "./BridgeError.ts"

/** The default maximum message size: 1 MiB (the default `max_payload` of a NATS server). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

/**
 * The largest encoded message, in bytes, that this program sends or accepts. Default 1 MiB.
 *
 * Provide it around `Service.toLayer` and `Client.make` (or the whole program) to change it; it must
 * be a positive integer.
 */
export const MaxMessageBytes = Context.Reference<number>("herald/MaxMessageBytes", {
  defaultValue: () => DEFAULT_MAX_MESSAGE_BYTES
})

/** Checks a configured limit: a positive integer, else a `DefinitionError`. */
export const checkLimit = (limit: number): number => {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new DefinitionError(`MaxMessageBytes must be a positive integer, got ${limit}`)
  }
  return limit
}

/** `undefined` when `bytes` fits within `limit`, else the error naming what was too large. */
export const exceeds = (what: string, bytes: Uint8Array, limit: number): MessageTooLarge | undefined =>
  bytes.byteLength > limit ? new MessageTooLarge({ what, bytes: bytes.byteLength, limit }) : undefined
