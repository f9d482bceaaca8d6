/**
 * What a broker system does with each message's content, apart from moving it: the raw baselines
 * send plain JSON (`plainJson`); the floor systems do exactly the per-message work Herald's design
 * requires and nothing else (`heraldEnvelopes`): a CloudEvents envelope with fresh ids and
 * timestamps around every command, reply and event, encoded and decoded by Herald's own codec, and
 * the contract's schemas applied at both ends. No Effect runtime, no metrics, no fibers: what is
 * left is the cost no implementation of the design can avoid.
 */
import { Result, Schema } from "effect"
import { toBuffer } from "../../src/internal/bridgeKit.ts"
import { Codec, Envelope } from "../../src/index.ts"
import { Add, Added, OnAdded } from "./contracts.ts"

export interface Payloads {
  /** The caller's command for `add(a, b)`, expiring `timeoutMs` from now. */
  readonly call: (a: number, b: number, timeoutMs: number) => Buffer
  /** The service's reply to a command, or `undefined` for a message that is not one. */
  readonly serve: (bytes: Uint8Array) => Buffer | undefined
  /** The sum in a reply. Throws on a bad reply. */
  readonly result: (bytes: Uint8Array) => { readonly sum: number }
  /** The event `added` `{sum}`. */
  readonly event: (sum: number) => Buffer
  /** The sum in a delivered event. Throws on a bad event. */
  readonly delivered: (bytes: Uint8Array) => number
}

const text = (bytes: Uint8Array) => toBuffer(bytes).toString()

/** What the raw baselines send: `{a, b}`, `{sum}` as JSON. */
export const plainJson: Payloads = {
  call: (a, b) => Buffer.from(JSON.stringify({ a, b })),
  serve: (bytes) => {
    const { a, b } = JSON.parse(text(bytes)) as { a: number; b: number }
    return Buffer.from(JSON.stringify({ sum: a + b }))
  },
  result: (bytes) => JSON.parse(text(bytes)) as { sum: number },
  event: (sum) => Buffer.from(JSON.stringify({ sum })),
  delivered: (bytes) => (JSON.parse(text(bytes)) as { sum: number }).sum
}

const CLIENT: Envelope.Address = { service: "client", version: "0" }
const CALCULATOR: Envelope.Address = { service: "calculator", version: "1", instance: crypto.randomUUID() }
const PUBLISHER: Envelope.Address = { service: "publisher", version: "1", instance: crypto.randomUUID() }

/** The envelope in `bytes`, decoded by `Codec.json`. Throws when they are not one. */
export const envelopeOf = (bytes: Uint8Array): Envelope.Envelope => {
  const decoded = Codec.json.decode(bytes)
  if (Result.isFailure(decoded)) throw new Error(`not an envelope: ${decoded.failure.reason}`)
  return decoded.success
}
const valid = <A>(result: Result.Result<A, Schema.SchemaError>): A => {
  if (Result.isFailure(result)) throw new Error(result.failure.message)
  return result.success
}
/** The subscription's compiled payload decoder, as the runtime applies it to every delivered `added`. */
export const decodeEvent = Schema.decodeUnknownResult(OnAdded.payloadCodec)

/**
 * Herald's messages as the runtime makes them (the same fields as `Client`, the service runtime and
 * `Event.publish` fill in with no message context): the input/output/payload validated by the
 * contracts' compiled schemas, the envelope encoded/decoded by `Codec.json`.
 */
export const heraldEnvelopes: Payloads = {
  call: (a, b, timeoutMs) => {
    const id = crypto.randomUUID()
    const time = Date.now()
    return toBuffer(Codec.json.encode({
      id,
      kind: "command",
      type: Add.name,
      source: Envelope.sourceOf(CLIENT),
      time,
      correlationId: id,
      sender: CLIENT,
      receiver: { service: CALCULATOR.service, version: CALCULATOR.version },
      expiresAt: time + timeoutMs,
      data: valid(Add.wire.encodeInput({ a, b }))
    }))
  },
  serve: (bytes) => {
    const env = envelopeOf(bytes)
    if (env.kind !== "command" || env.type !== Add.name) return undefined
    const { a, b } = valid(Add.wire.decodeInput(env.data))
    return toBuffer(Codec.json.encode({
      id: crypto.randomUUID(),
      kind: "reply",
      type: Add.name,
      source: Envelope.sourceOf(CALCULATOR),
      time: Date.now(),
      correlationId: env.correlationId,
      causationId: env.id,
      sender: CALCULATOR,
      receiver: env.sender,
      status: "ok",
      data: valid(Add.wire.encodeOutput({ sum: a + b }))
    }))
  },
  result: (bytes) => {
    const env = envelopeOf(bytes)
    if (env.kind !== "reply" || env.status !== "ok") throw new Error(`unexpected ${env.kind} ${env.status}`)
    return valid(Add.wire.decodeOutput(env.data))
  },
  event: (sum) => {
    const id = crypto.randomUUID()
    return toBuffer(Codec.json.encode({
      id,
      kind: "event",
      type: Added.name,
      source: Envelope.sourceOf(PUBLISHER),
      time: Date.now(),
      correlationId: id,
      sender: PUBLISHER,
      data: valid(Added.encode({ sum }))
    }))
  },
  delivered: (bytes) => valid(decodeEvent(envelopeOf(bytes).data)).sum
}
