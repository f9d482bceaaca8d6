/**
 * Bytes ⇄ envelope. Every bridge, the memory bridge included, moves only the bytes this codec makes.
 *
 * Decoding never throws: anything that is not a Herald envelope becomes a `DecodeError`.
 */
import { Result } from "effect"
import { DecodeError } from "./BridgeError.ts"
import * as Envelope from "./Envelope.ts"

/** A wire codec for envelopes. */
export interface Codec {
  /** The MIME type of the bytes, e.g. `application/cloudevents+json`. */
  readonly contentType: string
  readonly encode: (envelope: Envelope.Envelope) => Uint8Array
  readonly decode: (bytes: Uint8Array) => Result.Result<Envelope.Envelope, DecodeError>
}

const textDecoder = new TextDecoder("utf-8", { fatal: true })

const parseJson = (bytes: Uint8Array): Result.Result<unknown, DecodeError> => {
  let text: string
  try {
    text = textDecoder.decode(bytes)
  } catch {
    return Result.fail(new DecodeError({ reason: "not UTF-8" }))
  }
  try {
    return Result.succeed(JSON.parse(text))
  } catch {
    return Result.fail(new DecodeError({ reason: "not JSON" }))
  }
}

/** CloudEvents 1.0 structured JSON: one UTF-8 JSON object per message. The default codec. */
export const json: Codec = {
  contentType: "application/cloudevents+json",
  // Buffer.from is a Uint8Array and, for messages of this size, several times faster than TextEncoder
  encode: (envelope) => Buffer.from(JSON.stringify(Envelope.encode(envelope)), "utf8"),
  decode: (bytes) => {
    const parsed = parseJson(bytes)
    if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
    const envelope = Envelope.decode(parsed.success)
    return typeof envelope === "string"
      ? Result.fail(new DecodeError({ reason: `not a Herald envelope: ${envelope}` }))
      : Result.succeed(envelope)
  }
}
