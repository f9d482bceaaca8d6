/**
 * The errors Herald itself raises: transport errors a caller can always receive, validation errors
 * at either end of a call, and definition errors for malformed contracts.
 *
 * Every wire-visible error is a `Schema.TaggedError`, so it can be matched with `Effect.catchTag`
 * and serialised. Transport errors carry the bridge name so that new bridges fit without new classes.
 */
import { Schema } from "effect"

/** The call's deadline passed before a reply arrived. */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  /** `service/version/command` of the call. */
  address: Schema.String,
  /** The timeout that applied, in milliseconds. */
  timeoutMs: Schema.Number
}) {
  override get message() {
    return `no reply from ${this.address} within ${this.timeoutMs} ms`
  }
}

/** No live instance serves the command; raised at once, not after the timeout. */
export class NoResponder extends Schema.TaggedError<NoResponder>()("NoResponder", {
  address: Schema.String
}) {
  override get message() {
    return `no instance serves ${this.address}`
  }
}

/** The broker or its client failed: connection lost, publish refused, topology not declared, … */
export class BridgeError extends Schema.TaggedError<BridgeError>()("BridgeError", {
  /** The bridge that failed, e.g. `memory` or `nats`. */
  bridge: Schema.String,
  /** What the bridge was doing and what went wrong. */
  reason: Schema.String
}) {
  override get message() {
    return `${this.bridge} bridge: ${this.reason}`
  }
}

/** The input of a command failed its schema (checked by the caller before sending, and again by the receiver). */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  address: Schema.String,
  /** The schema issue, without the offending values. */
  issue: Schema.String
}) {
  override get message() {
    return `invalid input for ${this.address}: ${this.issue}`
  }
}

/** A reply (output or declared error) failed its schema on receipt. */
export class InvalidOutput extends Schema.TaggedError<InvalidOutput>()("InvalidOutput", {
  address: Schema.String,
  issue: Schema.String
}) {
  override get message() {
    return `invalid reply from ${this.address}: ${this.issue}`
  }
}

/**
 * The handler died (a thrown exception, `Effect.die`, an undeclared failure).
 *
 * The remote stack trace and error message are not sent; `errorId` lets an operator find the
 * full cause in the serving instance's logs.
 */
export class RemoteDefect extends Schema.TaggedError<RemoteDefect>()("RemoteDefect", {
  address: Schema.String,
  /** Id under which the serving instance logged the defect. */
  errorId: Schema.String
}) {
  override get message() {
    return `${this.address} failed with an internal error (error id ${this.errorId})`
  }
}

/**
 * A message is larger than the maximum message size (`MessageSize.MaxMessageBytes`, 1 MiB by default).
 *
 * A sender fails with it before anything reaches the broker; a receiver that gets a larger message
 * rejects it without decoding it (a caller receiving an oversized reply gets `InvalidOutput`).
 */
export class MessageTooLarge extends Schema.TaggedError<MessageTooLarge>()("MessageTooLarge", {
  /** What was too large, e.g. `command calculator/1/add` or `event order.placed`. */
  what: Schema.String,
  /** The encoded size in bytes. */
  bytes: Schema.Number,
  /** The limit that applied, in bytes. */
  limit: Schema.Number
}) {
  override get message() {
    return `${this.what} is ${this.bytes} bytes encoded, over the maximum message size of ${this.limit} bytes`
  }
}

/** Bytes received from a broker are not a Herald envelope. Logged and counted by the runtime; never thrown. */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  reason: Schema.String
}) {
  override get message() {
    return `undecodable message: ${this.reason}`
  }
}

/** The errors any command call can fail with besides the command's declared errors. */
export type CallError =
  | Timeout
  | NoResponder
  | BridgeError
  | InvalidInput
  | InvalidOutput
  | RemoteDefect
  | MessageTooLarge

const callErrorTags: ReadonlySet<string> = new Set<CallError["_tag"]>([
  "Timeout",
  "NoResponder",
  "BridgeError",
  "InvalidInput",
  "InvalidOutput",
  "RemoteDefect",
  "MessageTooLarge"
])

/**
 * Whether an error is one of Herald's `CallError`s rather than a declared command error.
 *
 * @example
 * // a handler calling another service: transport failures become this handler's defect
 * billing.charge(input).pipe(Effect.catchIf(isCallError, Effect.die))
 */
export const isCallError = <E>(error: E): error is Extract<E, CallError> =>
  typeof error === "object" && error !== null && "_tag" in error && callErrorTags.has(String(error._tag))

/**
 * A contract (service, command, subscription, filter) is malformed.
 *
 * Thrown synchronously by the `make` constructors, so a bad contract fails at module load,
 * never at run time.
 */
export class DefinitionError extends Error {
  override readonly name = "DefinitionError"
}
