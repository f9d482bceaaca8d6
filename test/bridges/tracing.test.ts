/**
 * One trace across the NATS bridge: caller → command handling → a nested call → its emitted event →
 * subscription handling, with every hop's `traceparent` on the wire (real nats-server on 127.0.0.1:4222).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Deferred, Effect, Layer, Option, Schema, Tracer } from "effect"
import * as NatsBridge from "../../src/bridges/Nats.ts"
import { Client, Command, Service } from "../../src/index.ts"
import { Calculator, CalculatorLive, subscriptionOf } from "../fixtures.ts"

const prefix = `tr${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`

afterAll(async () => {
  const nc = await connect({ servers: "127.0.0.1:4222" })
  const jsm = await jetstreamManager(nc)
  await jsm.streams.delete(`${prefix.toUpperCase()}_EVENTS`).catch(() => false)
  await nc.close()
})

/** An in-memory span collector: Effect's native tracer, remembering every span it starts. */
const collecting = () => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = Tracer.nativeTracer.span(options)
      spans.push(span)
      return span
    }
  })
  return { spans, layer: Layer.succeed(Tracer.Tracer, tracer) }
}

const Front = Service.make("front", "1", {
  commands: [Command.make("go", { input: Schema.Struct({}), output: Schema.Struct({ sum: Schema.Finite }) })]
})
const Watch = Service.make("watch", "1", { subscriptions: [subscriptionOf("audit")] })

/** Each service on its own NATS connection, so every hop crosses the broker. */
const own = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
  layer.pipe(Layer.provide(Layer.fresh(NatsBridge.layer({ subjectPrefix: prefix }))))

describe("tracing across the NATS bridge", () => {
  it.live("caller → handle → nested invoke → handle → publish → deliver: one trace, each span the child of the previous", () => {
    const { layer: tracerLayer, spans } = collecting()
    return Effect.gen(function*() {
      const delivered = yield* Deferred.make<void>()
      const FrontLive = Service.toLayer(Front, {
        go: () =>
          Effect.gen(function*() {
            const calc = yield* Client.make(Calculator)
            return yield* Effect.orDie(calc.add({ a: 20, b: 22 }))
          })
      })
      const WatchLive = Service.toLayer(Watch, { audit: () => Deferred.succeed(delivered, undefined) })
      yield* Effect.gen(function*() {
        const front = yield* Client.make(Front)
        const out = yield* front.go({}).pipe(Effect.withSpan("caller", { kind: "client" }))
        assert.deepStrictEqual(out, { sum: 42 })
        yield* Deferred.await(delivered).pipe(Effect.timeout("5 seconds"))
      }).pipe(
        Effect.provide(Layer.mergeAll(own(FrontLive), own(CalculatorLive()), own(WatchLive))),
        Effect.provide(Layer.fresh(NatsBridge.layer({ subjectPrefix: prefix })))
      )

      const chain = [
        "caller",
        "herald.invoke front/go",
        "herald.handle front/go",
        "herald.invoke calculator/add",
        "herald.handle calculator/add",
        "herald.publish added",
        "herald.deliver watch/audit"
      ]
      const byName = (name: string) => {
        const found = spans.filter((s) => s.name === name)
        assert.strictEqual(found.length, 1, `one ${name} span; all: ${spans.map((s) => s.name).join(", ")}`)
        return found[0]!
      }
      const traced = chain.map(byName)
      const traceId = traced[0]!.traceId
      assert.match(traceId, /^[0-9a-f]{32}$/)
      for (let i = 1; i < traced.length; i++) {
        const span = traced[i]!
        const parent = Option.getOrUndefined(span.parent)
        assert.isDefined(parent, `${span.name} has a parent`)
        assert.strictEqual(span.traceId, traceId, `${span.name} is in the caller's trace`)
        assert.strictEqual(parent!.spanId, traced[i - 1]!.spanId, `${span.name} is a child of ${traced[i - 1]!.name}`)
      }
      // a span on the serving side hangs under the remote span named by the envelope's traceparent
      for (const name of ["herald.handle front/go", "herald.handle calculator/add", "herald.deliver watch/audit"]) {
        assert.strictEqual(Option.getOrUndefined(byName(name).parent)?._tag, "ExternalSpan", name)
      }
      assert.deepStrictEqual(
        chain.slice(1).map((name) => byName(name).kind),
        ["client", "server", "client", "server", "producer", "consumer"]
      )
      const handle = byName("herald.handle calculator/add")
      assert.strictEqual(handle.attributes.get("herald.service"), "calculator")
      assert.strictEqual(handle.attributes.get("herald.command"), "add")
      assert.strictEqual(
        handle.attributes.get("herald.correlation_id"),
        byName("herald.invoke front/go").attributes.get("herald.message_id"),
        "the first message's id correlates the chain"
      )
    }).pipe(Effect.provide(tracerLayer))
  }, 30_000)
})
