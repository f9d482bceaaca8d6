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

/**
 * The deepest nesting of arrays and objects a message may have. `JSON.parse` itself copes with any
 * depth, but everything after it that walks the value (schemas, re-encoding for dead letters)
 * recurses, so deeper messages are rejected before parsing.
 */
export const MAX_DEPTH = 512

/** Whether the JSON text in `bytes` nests arrays or objects deeper than `MAX_DEPTH` (strings skipped). */
const tooDeep = (bytes: Uint8Array): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    if (inString) {
      if (b === 0x5c) i++ // backslash: skip the escaped byte
      else if (b === 0x22) inString = false
    } else if (b === 0x22) inString = true
    else if (b === 0x7b || b === 0x5b) {
      if (++depth > MAX_DEPTH) return true
    } else if (b === 0x7d || b === 0x5d) depth--
  }
  return false
}

const parseJson = (bytes: Uint8Array): Result.Result<unknown, DecodeError> => {
  // nesting deeper than MAX_DEPTH needs at least two bytes per level: short messages skip the scan
  if (bytes.length > 2 * MAX_DEPTH && tooDeep(bytes)) {
    return Result.fail(new DecodeError({ reason: `nested deeper than ${MAX_DEPTH} levels` }))
  }
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
