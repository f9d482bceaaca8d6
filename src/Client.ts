/**
 * Typed clients derived from service contracts: one method per command.
 */
import { Duration, Effect, type Schedule } from "effect"
import { Bridge } from "./Bridge.ts"
import { type CallError, DefinitionError } from "./BridgeError.ts"
import type * as Command from "./Command.ts"
import { checkLimit, MaxMessageBytes } from "./MessageSize.ts"
import * as Runtime from "./Runtime.ts"
import type * as Service from "./Service.ts"

/** Options of one call. */
export type CallOptions<C extends Command.Any> =
  & {
    /** How long to wait for the reply; also the deadline the handler runs under. Default: the client's. */
    readonly timeout?: Duration.Input | undefined
  }
  & (C["idempotent"] extends true ? {
      /**
       * Retries on `Timeout`, `NoResponder` and `BridgeError` (never on declared errors or invalid
       * input), each attempt with a fresh timeout and the same invocation id. Idempotent commands only.
       */
      readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
    }
    : {})

/** One typed method per command of the service. */
export type Client<S extends Service.Any> = {
  readonly [C in S["commands"][number] as C["name"]]: (
    input: Command.Input<C>,
    options?: CallOptions<C>
  ) => Effect.Effect<Command.Output<C>, Command.Errors<C> | CallError>
}

/** Options of `Client.make`. */
export interface ClientOptions {
  /** Default timeout of every call. Default 30 seconds. */
  readonly timeout?: Duration.Input | undefined
}

const toMillis = (what: string, input: Duration.Input): number => {
  const ms = Duration.toMillis(Duration.fromInputUnsafe(input))
  if (!(ms > 0) || !Number.isFinite(ms)) throw new DefinitionError(`${what} must be a positive, finite duration`)
  return ms
}

/**
 * Makes a typed client for a service over the provided bridge.
 *
 * @example
 * const calc = yield* Client.make(Calculator, { timeout: "5 seconds" })
 * const { sum } = yield* calc.add({ a: 1, b: 2 })
 */
export const make = <S extends Service.Any>(
  service: S,
  options?: ClientOptions
): Effect.Effect<Client<S>, never, Bridge> =>
  Effect.gen(function*() {
    const defaultTimeout = toMillis("client timeout", options?.timeout ?? "30 seconds")
    const bridge = yield* Bridge
    const maxMessageBytes = checkLimit(yield* MaxMessageBytes)
    const methods: Record<string, unknown> = {}
    for (const command of service.commands) {
      const address = { service: service.name, version: service.version, command: command.name }
      methods[command.name] = (
        input: unknown,
        call?: { readonly timeout?: Duration.Input; readonly retry?: Schedule.Schedule<unknown, unknown> }
      ) =>
        Effect.suspend(() => {
          if (call?.retry !== undefined && !command.idempotent) {
            return Effect.die(
              new DefinitionError(`${service.name}.${command.name}: retry is only allowed on idempotent commands`)
            )
          }
          const timeoutMs = call?.timeout === undefined ? defaultTimeout : toMillis("call timeout", call.timeout)
          return Runtime.invoke(bridge, address, command, input, { timeoutMs, retry: call?.retry, maxMessageBytes })
        })
    }
    return methods as Client<S>
  })
