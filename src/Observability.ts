/**
 * Observability of a Herald process: OTLP export of traces, metrics and logs, and structured JSON
 * logs that carry the message context.
 *
 * Nothing here is needed for Herald to trace and count: every message already runs in a span and
 * updates the metrics of `Metrics`. This module decides where they go. Without it, spans stay in
 * process (and still propagate as W3C `traceparent`), metrics are read by `GET /metrics`, and logs
 * use Effect's default logger.
 *
 * @example
 * Layer.launch(AppLive).pipe(
 *   Effect.provide(Observability.layer({
 *     otlp: { url: "http://collector:4318", serviceName: "orders" },
 *     logs: { format: "json", level: "Info" }
 *   }))
 * )
 */
import { Config, ConfigProvider, Context, type Duration, Effect, Layer, Logger, type LogLevel, Option, References, Tracer } from "effect"
import type { HttpClient } from "effect/http"
import { FetchHttpClient } from "effect/http"
import { OtlpLogger, OtlpMetrics, OtlpSerialization, OtlpTracer } from "effect/observability"
import { LogPayloads, type SpanMode, Spans } from "./internal/telemetry.ts"
import { MessageContext } from "./MessageContext.ts"

export { LogPayloads, type SpanMode, Spans } from "./internal/telemetry.ts"

/** OTLP/HTTP (JSON) export to a collector. */
export interface OtlpOptions {
  /** Base URL of the collector, e.g. `http://127.0.0.1:4318`; signals go to `/v1/traces`, `/v1/metrics`, `/v1/logs`. */
  readonly url: string
  /** `service.name` of the resource. Default `herald`. */
  readonly serviceName?: string | undefined
  /** `service.version` of the resource. */
  readonly serviceVersion?: string | undefined
  /** Extra resource attributes. */
  readonly attributes?: Record<string, unknown> | undefined
  /** HTTP headers of every export request (e.g. an API key). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Export spans. Default `true`. */
  readonly traces?: boolean | undefined
  /** Export metrics. Default `true`. */
  readonly metrics?: boolean | undefined
  /** Export logs. Default `false` (logs go to the console; see `LogOptions`). */
  readonly logs?: boolean | undefined
  /** How often batches are sent. Default 5 s (Effect's default); closing the layer flushes what is pending. */
  readonly exportInterval?: Duration.Input | undefined
}

/** Structured logs. */
export interface LogOptions {
  /** `json` (one object per line, the default), `logfmt`, `pretty` (for humans), or `none` to keep Effect's logger. */
  readonly format?: "json" | "logfmt" | "pretty" | "none" | undefined
  /** The minimum level logged. Default `Info`. */
  readonly level?: LogLevel.LogLevel | undefined
  /**
   * Include message payloads in Herald's own log lines about bad messages (undecodable, rejected,
   * dead-lettered). Default `false`: payloads may hold personal data, so they are never logged
   * unless you opt in.
   */
  readonly payloads?: boolean | undefined
}

/** Options of `Observability.layer`. Every part is optional; an empty object changes nothing. */
export interface ObservabilityOptions {
  readonly otlp?: OtlpOptions | undefined
  readonly logs?: LogOptions | undefined
  /**
   * When Herald opens its spans (`SpanMode`). Default `auto`: when a tracer collects them (`otlp`
   * traces, or any tracer you install) or structured logs (`json`, `logfmt`) need their ids.
   */
  readonly spans?: SpanMode | undefined
}

// ---------------------------------------------------------------------------------------------
// the message context of a log line
// ---------------------------------------------------------------------------------------------

/** The Herald fields of a log line: who logs, about which message, in which trace. */
export interface LogContext {
  readonly service?: string
  readonly command?: string
  readonly subscription?: string
  readonly messageId?: string
  readonly correlationId?: string
  readonly tenantId?: string
  readonly traceId?: string
  readonly spanId?: string
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined)

/**
 * The Herald fields of the fiber that logs: read from the nearest Herald span (`herald.handle`,
 * `herald.deliver`, …) and the message context at the moment of logging, so no per-message work
 * is needed to annotate logs.
 */
export const logContextOf = (context: Context.Context<never>): LogContext => {
  const out: Record<string, string> = {}
  const set = (key: keyof LogContext, value: unknown) => {
    const s = str(value)
    if (s !== undefined && out[key] === undefined) out[key] = s
  }
  let span = Context.getOrUndefined(context, Tracer.ParentSpan)
  if (span !== undefined && span.traceId.length === 32) {
    set("traceId", span.traceId)
    set("spanId", span.spanId)
  }
  while (span !== undefined && span._tag === "Span") {
    const attributes = span.attributes
    if (attributes.has("herald.service")) {
      set("service", attributes.get("herald.service"))
      set("command", attributes.get("herald.command"))
      set("subscription", attributes.get("herald.subscription"))
      set("messageId", attributes.get("herald.message_id"))
      set("correlationId", attributes.get("herald.correlation_id"))
      set("tenantId", attributes.get("herald.tenant_id"))
      break
    }
    span = Option.getOrUndefined(span.parent)
  }
  const ctx = Context.get(context, MessageContext)
  set("service", ctx.self?.service)
  set("messageId", ctx.messageId)
  set("correlationId", ctx.correlationId)
  set("tenantId", ctx.tenantId)
  if (out.traceId === undefined && ctx.traceparent !== undefined) set("traceId", ctx.traceparent.split("-")[1])
  return out
}

/**
 * A logger adding the Herald fields (`logContextOf`) to Effect's structured log record: `message`,
 * `level`, `timestamp`, `service`, `command` or `subscription`, `messageId`, `correlationId`,
 * `tenantId`, `traceId`, `spanId`, then `annotations`, `spans` and `cause`.
 */
export const structuredLogger: Logger.Logger<unknown, Record<string, unknown>> = Logger.make((options) => {
  const base = Logger.formatStructured.log(options)
  const { annotations, cause, fiberId, level, message, spans, timestamp } = base
  return {
    timestamp,
    level,
    message,
    ...logContextOf(options.fiber.context),
    ...(Object.keys(annotations).length === 0 ? {} : { annotations }),
    ...(Object.keys(spans).length === 0 ? {} : { spans }),
    ...(cause === undefined ? {} : { cause }),
    fiberId
  }
})

const logfmtValue = (v: unknown): string => {
  const s = typeof v === "string" ? v : JSON.stringify(v) ?? String(v)
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s)
}

/** The JSON logger: one object per line on the console (`Console.log`). */
export const jsonLogger: Logger.Logger<unknown, void> = Logger.withConsoleLog(
  Logger.map(structuredLogger, (record) => JSON.stringify(record))
)

/** The logfmt logger: `key=value` pairs, one line per entry, on the console. */
export const logfmtLogger: Logger.Logger<unknown, void> = Logger.withConsoleLog(
  Logger.map(structuredLogger, (record) =>
    Object.entries(record).map(([k, v]) => `${k}=${logfmtValue(v)}`).join(" "))
)

// ---------------------------------------------------------------------------------------------
// layers
// ---------------------------------------------------------------------------------------------

const structured = (options: LogOptions | undefined): boolean =>
  options !== undefined && (options.format === undefined || options.format === "json" || options.format === "logfmt")

/**
 * The logging part of `layer`: logger, minimum level and payload opt-in. Structured formats (`json`,
 * `logfmt`) also turn Herald's spans on (`Spans` = `always`): their ids and attributes are what
 * the log lines carry.
 */
export const logsLayer = (options: LogOptions): Layer.Layer<never> =>
  Layer.merge(logsOnly(options), structured(options) ? Layer.succeed(Spans, "always") : Layer.empty)

const logsOnly = (options: LogOptions): Layer.Layer<never> => {
  const format = options.format ?? "json"
  const logger = format === "json"
    ? Logger.layer([jsonLogger])
    : format === "logfmt"
    ? Logger.layer([logfmtLogger])
    : format === "pretty"
    ? Logger.layer([Logger.consolePretty()])
    : Layer.empty
  return Layer.mergeAll(
    logger,
    Layer.succeed(References.MinimumLogLevel, options.level ?? "Info"),
    Layer.succeed(LogPayloads, options.payloads ?? false)
  )
}

/** The OTLP part of `layer`: one exporter per enabled signal, over `fetch`, JSON-encoded. */
export const otlpLayer = (options: OtlpOptions): Layer.Layer<never> => {
  const base = options.url.replace(/\/+$/, "")
  const resource = {
    serviceName: options.serviceName ?? "herald",
    ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion }),
    ...(options.attributes === undefined ? {} : { attributes: options.attributes })
  }
  const common = {
    resource,
    ...(options.headers === undefined ? {} : { headers: options.headers }),
    ...(options.exportInterval === undefined ? {} : { exportInterval: options.exportInterval })
  }
  const layers: Array<Layer.Layer<never>> = []
  // The exporters install references (the tracer, a logger) and a metrics reader; their only
  // service output is the exporters' `Flusher`, an implementation detail left out of the type.
  const provided = <A>(l: Layer.Layer<A, never, OtlpSerialization.OtlpSerialization | HttpClient.HttpClient>) =>
    l.pipe(Layer.provide([OtlpSerialization.layerJson, FetchHttpClient.layer])) as unknown as Layer.Layer<never>
  if (options.traces !== false) layers.push(provided(OtlpTracer.layer({ ...common, url: `${base}/v1/traces` })))
  if (options.metrics !== false) layers.push(provided(OtlpMetrics.layer({ ...common, url: `${base}/v1/metrics` })))
  if (options.logs === true) {
    layers.push(provided(OtlpLogger.layer({ ...common, url: `${base}/v1/logs`, mergeWithExisting: true })))
  }
  return layers.length === 0 ? Layer.empty : Layer.mergeAll(...(layers as [Layer.Layer<never>]))
}

/**
 * Exports and logs as configured. An empty object (or every part absent) changes nothing: OTLP
 * export is off unless `otlp` is given, Effect's logger stays unless `logs` is given.
 */
export const layer = (options: ObservabilityOptions): Layer.Layer<never> => {
  const spans = options.spans ?? (structured(options.logs) ? "always" : undefined)
  return Layer.mergeAll(
    options.logs === undefined ? Layer.empty : logsOnly(options.logs),
    options.otlp === undefined ? Layer.empty : otlpLayer(options.otlp),
    spans === undefined ? Layer.empty : Layer.succeed(Spans, spans)
  )
}

const invalid = (message: string) => Config.fail(new ConfigProvider.SourceError({ message }))

const LEVELS = ["All", "Fatal", "Error", "Warn", "Info", "Debug", "Trace", "None"] as const

/**
 * The options read from the environment:
 *
 * - `HERALD_OTLP_URL` — collector base URL; OTLP export is on only when it is set
 * - `HERALD_OTLP_SIGNALS` — comma-separated subset of `traces,metrics,logs` (default `traces,metrics`)
 * - `HERALD_OTLP_HEADERS` — `key=value` pairs separated by commas, sent with every export
 * - `HERALD_SERVICE_NAME` (or `OTEL_SERVICE_NAME`) — the resource's `service.name`
 * - `HERALD_LOG_FORMAT` — `json` (default), `logfmt`, `pretty`, `none`
 * - `HERALD_LOG_LEVEL` — `All`, `Fatal`, `Error`, `Warn`, `Info` (default), `Debug`, `Trace`, `None`
 *   (case-insensitive)
 * - `HERALD_LOG_PAYLOADS` — `true` to include payloads in Herald's log lines about bad messages
 */
export const optionsFromConfig: Config.Config<ObservabilityOptions> = Config.all({
  url: Config.option(Config.String("HERALD_OTLP_URL")),
  signals: Config.String("HERALD_OTLP_SIGNALS").pipe(Config.withDefault("traces,metrics")),
  headers: Config.String("HERALD_OTLP_HEADERS").pipe(Config.withDefault("")),
  serviceName: Config.option(Config.String("HERALD_SERVICE_NAME").pipe(Config.orElse(() => Config.String("OTEL_SERVICE_NAME")))),
  format: Config.Literals(["json", "logfmt", "pretty", "none"], "HERALD_LOG_FORMAT").pipe(Config.withDefault("json" as const)),
  level: Config.String("HERALD_LOG_LEVEL").pipe(Config.withDefault("Info")),
  payloads: Config.Boolean("HERALD_LOG_PAYLOADS").pipe(Config.withDefault(false))
}).pipe(Config.flatMap((c): Config.Config<ObservabilityOptions> => {
  const level = LEVELS.find((l) => l.toLowerCase() === c.level.trim().toLowerCase())
  if (level === undefined) {
    return invalid(`HERALD_LOG_LEVEL must be one of ${LEVELS.join(", ")}, got "${c.level}"`)
  }
  const signals = c.signals.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "")
  const unknown = signals.filter((s) => s !== "traces" && s !== "metrics" && s !== "logs")
  if (unknown.length > 0) {
    return invalid(`HERALD_OTLP_SIGNALS: unknown signal(s) ${unknown.join(", ")}`)
  }
  const headers: Record<string, string> = {}
  for (const pair of c.headers.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const eq = pair.indexOf("=")
    if (eq <= 0) return invalid(`HERALD_OTLP_HEADERS: "${pair}" is not key=value`)
    headers[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim()
  }
  const logs: LogOptions = { format: c.format, level, payloads: c.payloads }
  if (Option.isNone(c.url)) return Config.succeed({ logs })
  const otlp: OtlpOptions = {
    url: c.url.value,
    ...(Option.isSome(c.serviceName) ? { serviceName: c.serviceName.value } : {}),
    ...(Object.keys(headers).length === 0 ? {} : { headers }),
    traces: signals.includes("traces"),
    metrics: signals.includes("metrics"),
    logs: signals.includes("logs")
  }
  return Config.succeed({ logs, otlp })
}))

/**
 * `layer` with the options of the environment (`optionsFromConfig`): JSON logs at `Info` by
 * default, OTLP export only when `HERALD_OTLP_URL` is set. Fails with a `ConfigError` naming the
 * variable when one is malformed.
 */
export const layerFromEnv: Layer.Layer<never, Config.ConfigError> = Layer.unwrap(
  Effect.map(optionsFromConfig, layer)
)
