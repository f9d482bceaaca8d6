/**
 * What every broker bridge needs around its client: errors that name the bridge, broker calls
 * turned into bounded Effects, cleanups that may fail, and duration options in milliseconds.
 */
import { Duration, Effect } from "effect"
import { BridgeError } from "../BridgeError.ts"
import * as HotPath from "./hotPath.ts"

/** Milliseconds of an optional duration option, or of its default. */
export const millis = (input: Duration.Input | undefined, fallback: Duration.Input): number =>
  Duration.toMillis(Duration.fromInputUnsafe(input ?? fallback))

/** The bytes as a Buffer, without copying: the same object when they are one already. */
export const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** Runs a cleanup promise, bounded and ignoring failures (the broker may already be gone). */
export const bestEffort = (ms: number, thunk: () => Promise<unknown>): Effect.Effect<void> =>
  Effect.ignore(Effect.timeoutOption(Effect.tryPromise(thunk), ms))

/** The error helpers of the bridge named `bridge` (the name its `BridgeError`s carry). */
export const kitOf = (bridge: string) => {
  const fail = (reason: string): BridgeError => new BridgeError({ bridge, reason })
  const bridgeError = (what: string, e: unknown): BridgeError => fail(`${what}: ${e instanceof Error ? e.message : String(e)}`)
  return {
    /** A `BridgeError` of this bridge. */
    fail,
    /** A `BridgeError` saying what was being done and the client's message. */
    bridgeError,
    /** Runs a promise-returning broker call as an Effect failing with a `BridgeError` that says what was being done. */
    attempt: <A>(what: string, thunk: () => Promise<A>): Effect.Effect<A, BridgeError> =>
      Effect.tryPromise({ try: thunk, catch: (e) => bridgeError(what, e) }),
    /** Bounds an effect by `ms`, failing with a `BridgeError` on timeout. */
    within: (what: string, ms: number) => HotPath.within(bridge, what, ms)
  }
}
