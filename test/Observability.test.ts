/** Observability: OTLP export to a loopback collector, structured JSON logs, configuration from the environment. */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Schedule, Schema, Tracer } from "effect"
import { TestConsole } from "effect/testing"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Client, Command, MemoryBridge, MessageContext, Observability, Service, withContext } from "../src/index.ts"
import { Calculator, CalculatorLive, subscriptionOf } from "./fixtures.ts"

/** A tiny OTLP/HTTP collector: every POST body, parsed, by path. */
const collector = Effect.acquireRelease(
  Effect.callback<{ readonly url: string; readonly received: Map<string, Array<any>>; readonly close: () => void }>((resume) => {
    const received = new Map<string, Array<any>>()
    const server = createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const list = received.get(req.url ?? "") ?? []
        list.push(JSON.parse(Buffer.concat(chunks).toString("utf8")))
        received.set(req.url ?? "", list)
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, received, close: () => server.close() }))
    })
  }),
  (c) => Effect.sync(c.close)
)

const spansOf = (bodies: ReadonlyArray<any>) =>
  bodies.flatMap((b) => b.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans))) as Array<{
    readonly name: string
    readonly traceId: string
    readonly spanId: string
    readonly parentSpanId?: string
    readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: { readonly stringValue?: string } }>
  }>

const metricNamesOf = (bodies: ReadonlyArray<any>) =>
  new Set(bodies.flatMap((b) =>
    b.resourceMetrics.flatMap((r: any) => r.scopeMetrics.flatMap((s: any) => s.metrics.map((m: any) => m.name)))
  ))

describe("Observability.layer: OTLP", () => {
  it.live("exports Herald's spans (one trace, parent links) and metrics to the collector", () =>
    Effect.gen(function*() {
      const { received, url } = yield* collector
      yield* Effect.scoped(Effect.gen(function*() {
        const calc = yield* Client.make(Calculator)
        assert.deepStrictEqual(yield* calc.add({ a: 1, b: 2 }), { sum: 3 })
      }).pipe(
        Effect.provide(CalculatorLive().pipe(Layer.provideMerge(MemoryBridge.layer))),
        Effect.provide(Observability.layer({
          otlp: { url, serviceName: "obs-test", exportInterval: "50 millis" }
        }))
      ))
      // closing the layer flushed what was pending
      const spans = spansOf(received.get("/v1/traces") ?? [])
      const invoke = spans.find((s) => s.name === "herald.invoke calculator/add")
      const handle = spans.find((s) => s.name === "herald.handle calculator/add")
      const publish = spans.find((s) => s.name === "herald.publish added")
      assert.isDefined(invoke, `spans: ${spans.map((s) => s.name).join(", ")}`)
      assert.isDefined(handle)
      assert.isDefined(publish)
      assert.strictEqual(handle!.traceId, invoke!.traceId)
      assert.strictEqual(handle!.parentSpanId, invoke!.spanId)
      assert.strictEqual(publish!.parentSpanId, handle!.spanId)
      const attr = (key: string) => handle!.attributes.find((a) => a.key === key)?.value.stringValue
      assert.strictEqual(attr("herald.service"), "calculator")
      assert.strictEqual(attr("herald.command"), "add")
      assert.isString(attr("herald.message_id"))
      const metrics = metricNamesOf(received.get("/v1/metrics") ?? [])
      for (const name of ["herald_client_calls_total", "herald_command_handled_total", "herald_command_duration_seconds"]) {
        assert.isTrue(metrics.has(name), `${name} in ${[...metrics].join(", ")}`)
      }
      assert.isUndefined(received.get("/v1/logs"), "logs are not exported unless asked for")
    }))

  it.effect("an empty configuration changes nothing (no export, Effect's logger)", () =>
    Effect.gen(function*() {
      const options = yield* Observability.optionsFromConfig.pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: {} })))
      )
      assert.isUndefined(options.otlp)
      assert.deepStrictEqual(options.logs, { format: "json", level: "Info", payloads: false })
    }))
})

describe("Observability: configuration from the environment", () => {
  const read = (env: Record<string, string>) =>
    Observability.optionsFromConfig.pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))

  it.effect("HERALD_OTLP_URL turns export on; level, format, signals, headers and service name are read", () =>
    Effect.gen(function*() {
      const options = yield* read({
        HERALD_OTLP_URL: "http://collector:4318",
        HERALD_OTLP_SIGNALS: "traces, logs",
        HERALD_OTLP_HEADERS: "x-api-key=k1, x-team = blue",
        OTEL_SERVICE_NAME: "orders",
        HERALD_LOG_LEVEL: "debug",
        HERALD_LOG_FORMAT: "logfmt",
        HERALD_LOG_PAYLOADS: "true"
      })
      assert.deepStrictEqual(options, {
        logs: { format: "logfmt", level: "Debug", payloads: true },
        otlp: {
          url: "http://collector:4318",
          serviceName: "orders",
          headers: { "x-api-key": "k1", "x-team": "blue" },
          traces: true,
          metrics: false,
          logs: true
        }
      })
    }))

  it.effect("a malformed variable is a ConfigError naming it", () =>
    Effect.gen(function*() {
      for (
        const [env, name] of [
          [{ HERALD_LOG_LEVEL: "loud" }, "HERALD_LOG_LEVEL"],
          [{ HERALD_OTLP_URL: "http://c", HERALD_OTLP_SIGNALS: "traces,profiles" }, "HERALD_OTLP_SIGNALS"],
          [{ HERALD_OTLP_URL: "http://c", HERALD_OTLP_HEADERS: "novalue" }, "HERALD_OTLP_HEADERS"],
          [{ HERALD_LOG_FORMAT: "xml" }, "HERALD_LOG_FORMAT"]
        ] as const
      ) {
        const error = yield* Effect.flip(read(env))
        assert.strictEqual(error._tag, "ConfigError")
        assert.include(error.message, name)
      }
    }))
})

// ---------------------------------------------------------------------------------------------
// logs
// ---------------------------------------------------------------------------------------------

const jsonLines = Effect.map(TestConsole.logLines, (lines) =>
  lines.flatMap((l) => (typeof l === "string" && l.startsWith("{") ? [JSON.parse(l) as Record<string, any>] : [])))

/** Polls the console until a line matches (handlers run on other fibers). */
const lineWhere = (predicate: (line: Record<string, any>) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      const hit = (yield* jsonLines).find(predicate)
      if (hit !== undefined) return hit
      yield* Effect.yieldNow
    }
    return assert.fail(`no log line matched; got ${JSON.stringify(yield* jsonLines)}`)
  })

/** Calls `add` (whose emitted event the failing subscription gives up on) and waits for that line. */
const gaveUpOn = (input: { readonly a: number; readonly b: number }) =>
  Effect.gen(function*() {
    const calc = yield* Client.make(Calculator)
    yield* calc.add(input)
    return yield* lineWhere((l) => JSON.stringify(l.message).includes("gave up on event"))
  })

const Logging = Service.make("logging", "1", { subscriptions: [subscriptionOf("fragile", { retry: Schedule.recurs(1) })] })
const LoggingLive = Service.toLayer(Logging, {
  fragile: ({ sum }) => Effect.andThen(Effect.logInfo(`handling ${sum}`), Effect.fail("always fails"))
})

const withLogs = (options: Observability.LogOptions) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(
    Effect.provide(Layer.mergeAll(CalculatorLive(), LoggingLive).pipe(Layer.provideMerge(MemoryBridge.layer))),
    Effect.provide(Observability.logsLayer(options))
  )

describe("Observability: structured JSON logs", () => {
  it.effect("a handler's log line carries service, subscription, correlation id, trace id and tenant", () =>
    Effect.gen(function*() {
      const calc = yield* Client.make(Calculator)
      yield* calc.add({ a: 2, b: 3 }).pipe(withContext({ tenantId: "t-42" }))
      const line = yield* lineWhere((l) => l.message === "handling 5")
      assert.strictEqual(line.level, "INFO")
      assert.strictEqual(line.service, "logging")
      assert.strictEqual(line.subscription, "fragile")
      assert.strictEqual(line.tenantId, "t-42")
      assert.isString(line.correlationId)
      assert.isString(line.messageId)
      assert.match(line.traceId, /^[0-9a-f]{32}$/)
      assert.match(line.spanId, /^[0-9a-f]{16}$/)
      assert.isString(line.timestamp)
    }).pipe(withLogs({ level: "Info" })))

  it.effect("payloads stay out of Herald's log lines unless opted in", () =>
    Effect.gen(function*() {
      const line = yield* gaveUpOn({ a: 400, b: 11 })
      assert.strictEqual(line.level, "WARN")
      // the payload {"sum":411} nowhere, not even escaped inside a string (ids and timestamps may hold "411")
      assert.notMatch(JSON.stringify(line), /sum\\*":\s*411/)
    }).pipe(withLogs({ level: "Info" })))

  it.effect("with payloads: true, the bad message's payload joins the line", () =>
    Effect.gen(function*() {
      const line = yield* gaveUpOn({ a: 400, b: 11 })
      assert.deepStrictEqual(line.message[1], { payload: { sum: 411 } })
    }).pipe(withLogs({ level: "Info", payloads: true })))

  it.effect("the level filters: at Warn, Info lines are dropped", () =>
    Effect.gen(function*() {
      yield* gaveUpOn({ a: 1, b: 1 })
      assert.isUndefined((yield* jsonLines).find((l) => l.message === "handling 2"))
    }).pipe(withLogs({ level: "Warn" })))
})

const WhoAmI = Command.make("whoami", { input: Schema.Struct({}), output: Schema.Struct({ traceparent: Schema.String }) })

describe("Observability.Spans", () => {
  /** The names of the spans a custom tracer saw while one add call ran, with the given span mode. */
  const spanNames = (mode: Observability.SpanMode | undefined) =>
    Effect.gen(function*() {
      const names: Array<string> = []
      const tracer = Tracer.make({
        span: (options) => {
          names.push(options.name)
          return Tracer.nativeTracer.span(options)
        }
      })
      yield* Effect.gen(function*() {
        const calc = yield* Client.make(Calculator)
        yield* calc.add({ a: 1, b: 1 })
      }).pipe(
        Effect.provide(CalculatorLive().pipe(Layer.provideMerge(MemoryBridge.layer))),
        mode === undefined ? (e) => e : Effect.provideService(Observability.Spans, mode),
        Effect.provideService(Tracer.Tracer, tracer)
      )
      return names.filter((n) => n.startsWith("herald."))
    })

  it.effect("auto opens spans when a tracer collects them, never opens none", () =>
    Effect.gen(function*() {
      assert.includeMembers(yield* spanNames(undefined), ["herald.invoke calculator/add", "herald.handle calculator/add"])
      assert.deepStrictEqual(yield* spanNames("never"), [])
    }))

  it.effect("auto with Effect's built-in tracer opens none; always does, and each hop gets its own span id", () =>
    Effect.gen(function*() {
      const seen = (mode: Observability.SpanMode | undefined) =>
        Effect.gen(function*() {
          const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
          const Probe = Service.make("probe", "1", { commands: [WhoAmI] })
          const ProbeLive = Service.toLayer(Probe, { whoami: () => Effect.map(MessageContext, (c) => ({ traceparent: c.traceparent ?? "" })) })
          return yield* Effect.gen(function*() {
            const probe = yield* Client.make(Probe)
            return (yield* probe.whoami({})).traceparent
          }).pipe(withContext({ traceparent: parent }), Effect.provide(ProbeLive))
        }).pipe(
          Effect.provide(MemoryBridge.layer),
          mode === undefined ? (e) => e : Effect.provideService(Observability.Spans, mode)
        )
      assert.strictEqual(yield* seen(undefined), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
      const always = yield* seen("always")
      assert.match(always, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/)
      assert.notStrictEqual(always, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    }))
})
