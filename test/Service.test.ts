import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Schema } from "effect"
import { Bridge, type BridgeError, Client, Command, DefinitionError, MemoryBridge, Service } from "../src/index.ts"
import { Add, Calculator, calculatorHandlers, subscriptionOf } from "./fixtures.ts"

const throwsDefinition = (f: () => unknown, message: RegExp) => {
  assert.throws(f, DefinitionError)
  assert.throws(f, message)
}

describe("Command.make", () => {
  const io = { input: Schema.Struct({}), output: Schema.Struct({}) }

  it("validates names and emitted event names", () => {
    throwsDefinition(() => Command.make("Add", io), /command name "Add" is invalid/)
    throwsDefinition(() => Command.make("a.b", io), /command name "a.b" is invalid/)
    throwsDefinition(() => Command.make("a/b", io), /invalid/)
    throwsDefinition(() => Command.make("x".repeat(64), io), /invalid/)
    throwsDefinition(() => Command.make("ok", { ...io, emits: "Bad Event" }), /emitted event name "Bad Event" is invalid/)
    throwsDefinition(() => Command.make("ok", { ...io, emits: "a..b" }), /invalid/)
    assert.strictEqual(Command.make("ok", { ...io, emits: "order.placed" }).emits, "order.placed")
  })

  it("rejects non-schemas and duplicate error tags", () => {
    class E1 extends Schema.TaggedError<E1>()("Same", {}) {}
    class E2 extends Schema.TaggedError<E2>()("Same", { x: Schema.String }) {}
    throwsDefinition(() => Command.make("ok", { ...io, errors: [E1, E2] }), /the name "Same" is used twice/)
    throwsDefinition(() => Command.make("ok", { input: {} as never, output: io.output }), /must be Effect schemas/)
  })
})

describe("Service.make", () => {
  it("validates the name and version", () => {
    throwsDefinition(() => Service.make("My Service", "1", {}), /service name "My Service" is invalid/)
    throwsDefinition(() => Service.make("svc", "v1", {}), /version "v1" is invalid/)
    throwsDefinition(() => Service.make("svc", "1.2", {}), /version "1.2" is invalid/)
    throwsDefinition(() => Service.make("svc", "01", {}), /invalid/)
    assert.strictEqual(Service.make("svc", "0", {}).version, "0")
  })

  it("rejects duplicate command and subscription names", () => {
    throwsDefinition(() => Service.make("svc", "1", { commands: [Add, Add] }), /the name "add" is used twice/)
    const sub = subscriptionOf("add")
    throwsDefinition(() => Service.make("svc", "1", { commands: [Add], subscriptions: [sub] }), /"add" is used twice/)
  })

  it("rejects things that are not contracts", () => {
    throwsDefinition(() => Service.make("svc", "1", { commands: [{} as never] }), /Command.make/)
    throwsDefinition(() => Service.make("svc", "1", { subscriptions: [Add as never] }), /Subscription.make/)
  })
})

describe("Service.toLayer", () => {
  it("rejects a missing handler when the layer is made", () => {
    const { add: _, ...rest } = calculatorHandlers
    throwsDefinition(() => Service.toLayer(Calculator, rest as never), /no handler for "add"/)
  })

  it.effect("fails fast at start when the bridge cannot honour a durable subscription", () =>
    Effect.gen(function*() {
      const S = Service.make("svc", "1", { subscriptions: [subscriptionOf("keep", { durable: true })] })
      const Volatile = Layer.effect(
        Bridge.Bridge,
        Effect.map(MemoryBridge.make, (b) => ({ ...b, name: "volatile", capabilities: { durable: false, persistent: false } }))
      )
      const exit = yield* Effect.exit(Layer.build(Service.toLayer(S, { keep: () => Effect.void })).pipe(Effect.provide(Volatile)))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.match(String(error && "error" in error ? (error.error as Error).message : ""), /durable subscriptions \(keep\) are not supported/)
    }))

  it.effect("handler requirements surface in the layer's type and are provided to handlers", () =>
    Effect.gen(function*() {
      class Limit extends Context.Service<Limit, { readonly max: number }>()("test/Limit") {}
      const Capped = Service.make("capped", "1", {
        commands: [Command.make("cap", { input: Schema.Struct({ n: Schema.Finite }), output: Schema.Struct({ n: Schema.Finite }) })]
      })
      const CappedLive = Service.toLayer(Capped, {
        cap: ({ n }) => Limit.use((limit) => Effect.succeed({ n: Math.min(n, limit.max) }))
      })
      const typed: Layer.Layer<never, BridgeError, Bridge.Bridge | Limit> = CappedLive
      // @ts-expect-error the handler's requirement cannot be dropped from the layer's type
      const _untyped: Layer.Layer<never, BridgeError, Bridge.Bridge> = CappedLive
      void _untyped
      const result = yield* Effect.flatMap(Client.make(Capped), (capped) => capped.cap({ n: 42 })).pipe(
        Effect.provide(typed.pipe(Layer.provide(Layer.succeed(Limit, { max: 10 })), Layer.provideMerge(MemoryBridge.layer)))
      )
      assert.deepStrictEqual(result, { n: 10 })
    }))
})
