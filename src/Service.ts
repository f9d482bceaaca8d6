/**
 * Service contracts and their implementations.
 *
 * `Service.make` names a versioned unit and its commands and subscriptions (pure data).
 * `Service.toLayer` implements one: each build of the Layer is one running instance.
 */
import { Duration, Effect, Layer } from "effect"
import { Bridge } from "./Bridge.ts"
import { BridgeError, DefinitionError } from "./BridgeError.ts"
import type * as Command from "./Command.ts"
import type { Address } from "./Envelope.ts"
import * as Discovery from "./Discovery.ts"
import { makeInflight, makeSlots } from "./internal/hotPath.ts"
import { checkName, checkUnique, checkVersion, RESERVED_SUBSCRIPTION } from "./internal/names.ts"
import { checkLimit, MaxMessageBytes } from "./MessageSize.ts"
import * as Runtime from "./Runtime.ts"
import type * as Subscription from "./Subscription.ts"

/** A service contract. */
export interface Service<
  Name extends string = string,
  Cmds extends ReadonlyArray<Command.Any> = ReadonlyArray<Command.Any>,
  Subs extends ReadonlyArray<Subscription.Any> = ReadonlyArray<Subscription.Any>
> {
  readonly _tag: "Service"
  readonly name: Name
  /** The major version, e.g. `"1"`. Callers of v1 never reach an instance of v2. */
  readonly version: string
  readonly commands: Cmds
  readonly subscriptions: Subs
}

/** Any service, for constraints. */
export type Any = Service<string, ReadonlyArray<Command.Any>, ReadonlyArray<Subscription.Any>>

/**
 * Defines a service. Throws a `DefinitionError` for a bad name or version, for two commands or
 * subscriptions with one name (commands and subscriptions share one namespace: the handler keys), or
 * for a subscription named `herald-discovery` (reserved).
 */
export const make = <
  const Name extends string,
  const Cmds extends ReadonlyArray<Command.Any> = readonly [],
  const Subs extends ReadonlyArray<Subscription.Any> = readonly []
>(
  name: Name,
  version: string,
  parts: { readonly commands?: Cmds | undefined; readonly subscriptions?: Subs | undefined }
): Service<Name, Cmds, Subs> => {
  checkName("service", name)
  checkVersion(name, version)
  const commands = (parts.commands ?? []) as Cmds
  const subscriptions = (parts.subscriptions ?? []) as Subs
  for (const c of commands) {
    if (c?._tag !== "Command") throw new DefinitionError(`service ${name}: commands must be made by Command.make`)
  }
  for (const s of subscriptions) {
    if (s?._tag !== "Subscription") {
      throw new DefinitionError(`service ${name}: subscriptions must be made by Subscription.make`)
    }
    if (s.name === RESERVED_SUBSCRIPTION) {
      throw new DefinitionError(`service ${name}: the subscription name ${JSON.stringify(s.name)} is reserved for discovery`)
    }
  }
  checkUnique(`service ${name}`, [...commands.map((c) => c.name), ...subscriptions.map((s) => s.name)])
  return { _tag: "Service", name, version, commands, subscriptions }
}

/** The handler of each command and subscription of a service, keyed by name. */
export type Handlers<S extends Any> =
  & {
    readonly [C in S["commands"][number] as C["name"]]: (
      input: Command.Input<C>
    ) => Effect.Effect<Command.Output<C>, Command.Errors<C>, any>
  }
  & {
    readonly [Sub in S["subscriptions"][number] as Sub["name"]]: (
      payload: Subscription.Payload<Sub>,
      event: Runtime.EventInfo
    ) => Effect.Effect<unknown, unknown, any>
  }

/** The services the handlers need, which surface in the Layer's requirements. */
export type Requirements<H> = {
  [K in keyof H]: H[K] extends (...args: any) => Effect.Effect<any, any, infer R> ? R : never
}[keyof H]

/** Options of `Service.toLayer`. */
export interface LayerOptions {
  /**
   * How long closing the Layer waits for in-flight handlers once it has stopped taking new work;
   * handlers still running then are interrupted (their durable events are redelivered). Default 10 s.
   */
  readonly drainTimeout?: Duration.Input | undefined
  /**
   * Whether the instance takes part in discovery (`Discovery`): it announces itself and its
   * contracts on start, answers discovery requests through one broadcast, non-durable subscription
   * to `herald.discovery.requested`, and says when it stops. Default `true`.
   */
  readonly discovery?: boolean | undefined
}

/**
 * Implements a service: a Layer that, while built, is one instance serving every command and
 * subscription of the contract over the provided bridge.
 *
 * Closing the Layer's scope stops taking new work, lets in-flight handlers finish (bounded by
 * `drainTimeout`), then interrupts what is left. Build it several times (or several copies) for
 * several competing instances.
 */
export const toLayer = <S extends Any, H extends Handlers<S>>(
  service: S,
  handlers: H,
  options?: LayerOptions
): Layer.Layer<never, BridgeError, Bridge | Requirements<H>> => {
  const table = handlers as unknown as Record<string, unknown>
  for (const name of [...service.commands.map((c) => c.name), ...service.subscriptions.map((s) => s.name)]) {
    if (typeof table[name] !== "function") {
      throw new DefinitionError(`service ${service.name}: no handler for ${JSON.stringify(name)}`)
    }
  }
  const drainTimeout = Duration.fromInputUnsafe(options?.drainTimeout ?? "10 seconds")
  return Layer.effectDiscard(Effect.gen(function*() {
    const bridge = yield* Bridge
    const durable = service.subscriptions.filter((s) => s.durable).map((s) => s.name)
    if (durable.length > 0 && !bridge.capabilities.durable) {
      return yield* new BridgeError({
        bridge: bridge.name,
        reason: `service ${service.name}: durable subscriptions (${durable.join(", ")}) are not supported by this bridge`
      })
    }
    const maxBytes = checkLimit(yield* MaxMessageBytes)
    const self: Address = { service: service.name, version: service.version, instance: Runtime.newId() }

    // Finalizers run in reverse: deregister consumers, then drain, then interrupt what is left.
    const inflight = makeInflight()
    yield* Effect.addFinalizer(() => inflight.close)
    yield* Effect.addFinalizer(() => Effect.asVoid(Effect.timeoutOption(inflight.awaitEmpty, drainTimeout)))
    // bridges run handlers with the context of the fiber that called `serve`/`subscribe`: this one,
    // which holds `Requirements<H>`; no per-message `provideContext` (it copies the whole context)
    const track = <E>(effect: Effect.Effect<void, E, Requirements<H>>): Effect.Effect<void, E> =>
      Effect.withFiber((fiber) => {
        inflight.add(fiber)
        return effect as Effect.Effect<void, E>
      })

    for (const command of service.commands) {
      const handle = Runtime.handleCommand(
        bridge,
        self,
        command,
        table[command.name] as Runtime.AnyCommandHandler,
        maxBytes
      )
      yield* bridge.serve(
        { service: service.name, version: service.version, command: command.name },
        (message) => track(handle(message))
      )
    }
    for (const subscription of service.subscriptions) {
      const slots = makeSlots(subscription.concurrency)
      const handle = Runtime.handleEvent(
        bridge,
        self,
        subscription,
        table[subscription.name] as Runtime.AnySubscriptionHandler,
        slots,
        maxBytes
      )
      yield* bridge.subscribe({
        service: service.name,
        version: service.version,
        instance: self.instance!,
        subscription: subscription.name,
        delivery: subscription.delivery,
        durable: subscription.durable,
        eventNames: subscription.eventNames,
        tenantIds: subscription.tenantIds
      }, (message) => track(handle(message)))
    }
    // Last, so that it announces an instance that already serves everything, and says it stopped first.
    if (options?.discovery !== false) yield* Discovery.announce(bridge, { ...self, instance: self.instance! }, service)
    yield* Effect.logDebug(`herald: ${service.name} v${service.version} instance ${self.instance} started`)
  }))
}
