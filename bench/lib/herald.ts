/**
 * Herald as a user runs it, over any bridge: `Service.toLayer` for the calculator and the 4
 * subscribing services, `Client.make` for the caller, `Event.publish` for the publisher, the
 * default codec, Schema validation at both ends. Each role is driven from plain async code through
 * a `ManagedRuntime` (as an HTTP handler or a script would), one `runPromise` per call or publish.
 *
 * A bridge module only says how a role gets its bridge: `shared` puts every role in one runtime on
 * one bridge (memory); otherwise each role builds its own bridge Layer, i.e. its own connection.
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { type Bridge, type BridgeError, Client, Event, Service } from "../../src/index.ts"
import { Added, Calculator, subscriberService } from "./contracts.ts"
import type { SystemModule } from "./types.ts"

type BridgeLayer = Layer.Layer<Bridge.Bridge, BridgeError>
type RoleLayer = Layer.Layer<never, BridgeError, Bridge.Bridge>
type Runtime = ManagedRuntime.ManagedRuntime<Bridge.Bridge, BridgeError>

export interface HeraldTopology {
  /** The bridge Layer of one role (`service`, `caller`, `publisher`, `subscriber-1`…); called once per role. */
  readonly bridge: (role: string) => BridgeLayer
  /** One runtime and one bridge for every role (the memory bridge), instead of one per role. */
  readonly shared: boolean
}

/** Builds one runtime per role (or one for all), connected and with every service started. */
const start = async (topology: HeraldTopology, roles: ReadonlyArray<readonly [string, RoleLayer]>) => {
  const byRole = new Map<string, Runtime>()
  if (topology.shared) {
    const all = Layer.mergeAll(...(roles.map(([, layer]) => layer) as [RoleLayer, ...Array<RoleLayer>]))
    const rt = ManagedRuntime.make(all.pipe(Layer.provideMerge(topology.bridge("all"))))
    for (const [role] of roles) byRole.set(role, rt)
  } else {
    for (const [role, layer] of roles) byRole.set(role, ManagedRuntime.make(layer.pipe(Layer.provideMerge(topology.bridge(role)))))
  }
  const runtimes = [...new Set(byRole.values())]
  const close = async () => {
    await Promise.allSettled(runtimes.map((rt) => rt.dispose()))
  }
  try {
    await Promise.all(runtimes.map((rt) => rt.context()))
  } catch (e) {
    await close()
    throw e
  }
  return { runtime: (role: string) => byRole.get(role)!, close }
}

export const heraldSystem = (topology: HeraldTopology): SystemModule => ({
  command: async ({ timeoutMs }) => {
    const CalculatorLive = Service.toLayer(Calculator, { add: ({ a, b }) => Effect.succeed({ sum: a + b }) })
    const { close, runtime } = await start(topology, [["service", CalculatorLive], ["caller", Layer.empty]])
    const caller = runtime("caller")
    const calc = await caller.runPromise(Client.make(Calculator, { timeout: timeoutMs }))
    return { add: (a, b) => caller.runPromise(calc.add({ a, b })), close }
  },

  fanout: async (deliver, subscribers) => {
    const roles: Array<readonly [string, RoleLayer]> = [["publisher", Layer.empty]]
    for (let k = 0; k < subscribers; k++) {
      const live = Service.toLayer(subscriberService(k), { "on-added": ({ sum }) => Effect.sync(() => deliver(k, sum)) })
      roles.push([`subscriber-${k + 1}`, live])
    }
    const { close, runtime } = await start(topology, roles)
    const publisher = runtime("publisher")
    return { publish: (sum) => publisher.runPromise(Event.publish(Added, { sum })), close }
  }
})
