/**
 * The one message model for commands, replies and events, and its CloudEvents 1.0 wire form.
 *
 * `Envelope` is the decoded form the runtime works with; `EnvelopeEncoded` is its wire twin, a
 * CloudEvents 1.0 structured-mode JSON object whose Herald fields are CloudEvents extension
 * attributes (lower-case alphanumeric names). A foreign CloudEvents consumer reads `id`, `source`,
 * `type`, `time` and `data` as usual and may ignore the extensions.
 */
import { Schema } from "effect"
import type { Address } from "./Filter.ts"

export type { Address } from "./Filter.ts"

/** What a message is: a command (request), the reply to one, or an event. */
export type Kind = "command" | "reply" | "event"

/**
 * How a command ended, carried by its reply.
 *
 * - `ok`: `data` is the encoded output.
 * - `error`: `data` is an encoded declared error (with its `_tag`).
 * - `defect`: the handler died; `data` is `{ errorId }`, nothing else.
 * - `invalid-input`: the receiver rejected the input; `data` is `{ issue }`.
 */
export type ReplyStatus = "ok" | "error" | "defect" | "invalid-input"

/** A decoded message. Times are epoch milliseconds. */
export interface Envelope {
  /** Unique message id. For a command, the invocation id, reused by retries so receivers can de-duplicate. */
  readonly id: string
  readonly kind: Kind
  /** Event name, command name, or for replies the command name. */
  readonly type: string
  /** CloudEvents source: `herald:<service>/<version>/<instance>` of the sender. */
  readonly source: string
  /** When the message was created. */
  readonly time: number
  /** Id shared by every message caused, directly or not, by one original call or event. */
  readonly correlationId: string
  /** Id of the message whose handling produced this one. */
  readonly causationId?: string | undefined
  /** W3C trace context. */
  readonly traceparent?: string | undefined
  readonly tracestate?: string | undefined
  readonly principalId?: string | undefined
  readonly tenantId?: string | undefined
  readonly sender: Address
  /** For commands and replies: who the message is for. */
  readonly receiver?: Address | undefined
  /** Deadline of a command: a receiver drops it after this instant. */
  readonly expiresAt?: number | undefined
  /** Set on replies only. */
  readonly status?: ReplyStatus | undefined
  /** The payload in its JSON-encoded form. */
  readonly data: unknown
}

const OptionalString = Schema.optionalKey(Schema.String)

/** The wire form of an envelope: a CloudEvents 1.0 JSON object (structured content mode). */
export const EnvelopeEncoded = Schema.Struct({
  specversion: Schema.Literal("1.0"),
  id: Schema.String.check(Schema.isNonEmpty()),
  source: Schema.String,
  type: Schema.String.check(Schema.isNonEmpty()),
  time: Schema.String,
  datacontenttype: Schema.optionalKey(Schema.Literal("application/json")),
  heraldkind: Schema.Literals(["command", "reply", "event"]),
  correlationid: Schema.String,
  causationid: OptionalString,
  traceparent: OptionalString,
  tracestate: OptionalString,
  principalid: OptionalString,
  tenantid: OptionalString,
  senderservice: Schema.String,
  senderversion: Schema.String,
  sendertarget: OptionalString,
  senderinstance: OptionalString,
  receiverservice: OptionalString,
  receiverversion: OptionalString,
  receivertarget: OptionalString,
  receiverinstance: OptionalString,
  expirytime: OptionalString,
  heraldstatus: Schema.optionalKey(Schema.Literals(["ok", "error", "defect", "invalid-input"])),
  data: Schema.optionalKey(Schema.Json)
})

/** The wire form of an envelope, as a type. */
export type EnvelopeEncoded = typeof EnvelopeEncoded.Type

/** Remembers the last argument and result: messages made or read in one millisecond share timestamps. */
const lastOne = <A, B>(f: (a: A) => B): (a: A) => B => {
  let key: A | undefined
  let value: B
  return (a) => (a === key ? value : (value = f(a), key = a, value))
}

/** Renders an epoch-millisecond instant as an RFC 3339 timestamp. */
const toTimestamp = (ms: number): string => new Date(ms).toISOString()

/** Parses an RFC 3339 timestamp, or `undefined` when it is not one. */
const fromTimestamp = (s: string): number | undefined => {
  const ms = Date.parse(s)
  return Number.isFinite(ms) ? ms : undefined
}

const timeToWire = lastOne(toTimestamp)
const expiryToWire = lastOne(toTimestamp)
const timeFromWire = lastOne(fromTimestamp)
const expiryFromWire = lastOne(fromTimestamp)

const setIf = (target: Record<string, unknown>, key: string, value: unknown) => {
  if (value !== undefined) target[key] = value
}

/** Maps a decoded envelope to its CloudEvents wire object. */
export const encode = (e: Envelope): EnvelopeEncoded => {
  const out: Record<string, unknown> = {
    specversion: "1.0",
    id: e.id,
    source: e.source,
    type: e.type,
    time: timeToWire(e.time),
    datacontenttype: "application/json",
    heraldkind: e.kind,
    correlationid: e.correlationId,
    senderservice: e.sender.service,
    senderversion: e.sender.version
  }
  setIf(out, "causationid", e.causationId)
  setIf(out, "traceparent", e.traceparent)
  setIf(out, "tracestate", e.tracestate)
  setIf(out, "principalid", e.principalId)
  setIf(out, "tenantid", e.tenantId)
  setIf(out, "sendertarget", e.sender.target)
  setIf(out, "senderinstance", e.sender.instance)
  if (e.receiver !== undefined) {
    out.receiverservice = e.receiver.service
    out.receiverversion = e.receiver.version
    setIf(out, "receivertarget", e.receiver.target)
    setIf(out, "receiverinstance", e.receiver.instance)
  }
  if (e.expiresAt !== undefined) out.expirytime = expiryToWire(e.expiresAt)
  setIf(out, "heraldstatus", e.status)
  setIf(out, "data", e.data)
  return out as EnvelopeEncoded
}

const KINDS: ReadonlySet<unknown> = new Set(["command", "reply", "event"])
const STATUSES: ReadonlySet<unknown> = new Set(["ok", "error", "defect", "invalid-input"])
const OPTIONAL_STRINGS = [
  "causationid",
  "traceparent",
  "tracestate",
  "principalid",
  "tenantid",
  "sendertarget",
  "senderinstance",
  "receiverservice",
  "receiverversion",
  "receivertarget",
  "receiverinstance",
  "expirytime"
] as const

/**
 * Checks an untrusted value (parsed JSON) against `EnvelopeEncoded` and maps it to a decoded
 * envelope, or returns the reason it is not one.
 *
 * This is the hot path of every message, so it is written by hand; a property test holds it equal
 * to decoding with the `EnvelopeEncoded` schema. Unknown attributes (other CloudEvents extensions)
 * are ignored, as the schema ignores them.
 */
export const decode = (u: unknown): Envelope | string => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return "not a JSON object"
  const w = u as Record<string, unknown>
  if (w.specversion !== "1.0") return "specversion is not \"1.0\""
  if (typeof w.id !== "string" || w.id === "") return "id is missing"
  if (typeof w.source !== "string") return "source is missing"
  if (typeof w.type !== "string" || w.type === "") return "type is missing"
  if (typeof w.time !== "string") return "time is missing"
  if (w.datacontenttype !== undefined && w.datacontenttype !== "application/json") {
    return "datacontenttype is not application/json"
  }
  if (!KINDS.has(w.heraldkind)) return "heraldkind is not command, reply or event"
  if (typeof w.correlationid !== "string") return "correlationid is missing"
  if (typeof w.senderservice !== "string" || typeof w.senderversion !== "string") return "sender is missing"
  for (const key of OPTIONAL_STRINGS) {
    if (w[key] !== undefined && typeof w[key] !== "string") return `${key} is not a string`
  }
  if (w.heraldstatus !== undefined && !STATUSES.has(w.heraldstatus)) return "heraldstatus is unknown"
  return fromWire(w as EnvelopeEncoded)
}

/**
 * Maps a wire object that has the shape of `EnvelopeEncoded` to a decoded envelope, or returns the
 * reason it is inconsistent (a bad timestamp, a receiver without service or version).
 */
export const fromWire = (w: EnvelopeEncoded): Envelope | string => {
  const time = timeFromWire(w.time)
  if (time === undefined) return "time is not an RFC 3339 timestamp"
  let expiresAt: number | undefined
  if (w.expirytime !== undefined) {
    expiresAt = expiryFromWire(w.expirytime)
    if (expiresAt === undefined) return "expirytime is not an RFC 3339 timestamp"
  }
  let receiver: Address | undefined
  if (w.receiverservice !== undefined || w.receiverversion !== undefined) {
    if (w.receiverservice === undefined || w.receiverversion === undefined) {
      return "receiverservice and receiverversion must be given together"
    }
    receiver = {
      service: w.receiverservice,
      version: w.receiverversion,
      target: w.receivertarget,
      instance: w.receiverinstance
    }
  }
  return {
    id: w.id,
    kind: w.heraldkind,
    type: w.type,
    source: w.source,
    time,
    correlationId: w.correlationid,
    causationId: w.causationid,
    traceparent: w.traceparent,
    tracestate: w.tracestate,
    principalId: w.principalid,
    tenantId: w.tenantid,
    sender: {
      service: w.senderservice,
      version: w.senderversion,
      target: w.sendertarget,
      instance: w.senderinstance
    },
    receiver,
    expiresAt,
    status: w.heraldstatus,
    data: w.data
  }
}

/** The CloudEvents `source` of a sender address. */
export const sourceOf = (a: Address): string =>
  `herald:${a.service}/${a.version}${a.instance === undefined ? "" : `/${a.instance}`}`
