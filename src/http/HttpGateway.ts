/**
 * The HTTP gateway: every command of the given services becomes an HTTP route, served on Node by
 * Effect's own HTTP server (`effect/http` + `@effect/platform-node`), with an OpenAPI 3.1 document
 * generated from the same schemas.
 *
 * The gateway invokes commands through the bridge like any other client, so it works on every
 * bridge and can run in its own process. It answers each outcome with a status: the output (200),
 * a declared error (its declared status, default 422, with its encoded payload), or an RFC 9457
 * problem document (400 invalid input, 401, 404, 413, 500, 502, 503 no responder, 504 timeout).
 */
import { NodeHttpServer } from "@effect/platform-node"
import { ByteSize, Cause, Context, Data, Duration, Effect, Layer, Metric, Option, Ref, Result } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import type { HttpServerError } from "effect/http"
import type { OpenApi } from "effect/http-api"
import { createServer, type ServerResponse } from "node:http"
import { Bridge, type BridgeShape } from "../Bridge.ts"
import { DefinitionError, isCallError } from "../BridgeError.ts"
import { withContext } from "../MessageContext.ts"
import * as Runtime from "../Runtime.ts"
import type * as Service from "../Service.ts"
import { type AuthOptions, challengeOf, type Principal } from "./auth.ts"
import { LIVE_PAGE } from "./livePage.ts"
import * as LiveView from "./liveView.ts"
import * as Prometheus from "./prometheus.ts"
import type { LiveViewOptions } from "./liveView.ts"
import { document, type OpenApiInfo } from "./openapi.ts"
import { type EdgeInfo, edgeHeaders, issuesOf, problemResponse, callErrorResponse } from "./problem.ts"
import { type PlannedRoute, plan, type RawRequest, type Route } from "./routes.ts"

// The gateway's whole API is reachable from this module: authentication, route options, problem schemas.
export { type AuthOptions, bearer, type Principal, Unauthorized } from "./auth.ts"
export { type CommandFigures, type LiveDocument, type LiveViewOptions, type TailEvent } from "./liveView.ts"
export { type OpenApiInfo } from "./openapi.ts"
export { Problem, ProblemIssue } from "./problem.ts"
export { type Method, type Route, route, type RouteOptions } from "./routes.ts"

/** CORS for browsers on other origins (Effect's `HttpMiddleware.cors` options). */
export interface CorsOptions {
  /** Default: any origin. */
  readonly allowedOrigins?: ReadonlyArray<string> | undefined
  readonly allowedHeaders?: ReadonlyArray<string> | undefined
  readonly maxAge?: number | undefined
  readonly credentials?: boolean | undefined
}

/** Options of `HttpGateway.layer`. `services` and `port` are required; everything else has a default. */
export interface GatewayOptions<R = never> {
  /** The services whose commands become routes (contracts only: the gateway calls them over the bridge). */
  readonly services: ReadonlyArray<Service.Any>
  /** The TCP port; `0` picks a free one (read it from `Gateway.url`). */
  readonly port: number
  /** The interface to listen on. Default: every interface. */
  readonly host?: string | undefined
  /** Prefix of every command route, e.g. `/api`. Default none. Health, readiness and OpenAPI stay at the root. */
  readonly basePath?: string | undefined
  /** Authentication; when set, every command is protected unless its route is `public`. */
  readonly auth?: AuthOptions<R> | undefined
  /** Per-command method, path, status, timeout and public access (`HttpGateway.route`). */
  readonly routes?: ReadonlyArray<Route> | undefined
  /**
   * Status of declared errors by tag, e.g. `{ OutOfStock: 409 }`. Otherwise the error schema's
   * `httpApiStatus` annotation (Effect's HttpApi convention), otherwise 422.
   */
  readonly errorStatus?: Readonly<Record<string, number>> | undefined
  /** How long to wait for a reply before answering 504 (the call's deadline). Default 30 s. */
  readonly timeout?: Duration.Input | undefined
  /** Largest accepted request body, in bytes; larger ones get 413. Default 1 MiB. */
  readonly maxBodySize?: number | undefined
  /**
   * On shutdown, how long `/readyz` answers 503 while requests are still served, so that load
   * balancers stop sending new ones. Default 0.
   */
  readonly drainDelay?: Duration.Input | undefined
  /** On shutdown, how long in-flight requests may take to finish before they are interrupted. Default 10 s. */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** CORS headers and preflight answers. Default off. */
  readonly cors?: boolean | CorsOptions | undefined
  /** Log one line per request (Effect's `HttpMiddleware.logger`). Default `false`. */
  readonly accessLog?: boolean | undefined
  /**
   * Serve `GET /metrics`: every Effect metric of this process (Herald's and the application's) in the
   * Prometheus text exposition format, unauthenticated like `/healthz`. Default `true`.
   */
  readonly metrics?: boolean | undefined
  /** Title, version and description of the OpenAPI document. */
  readonly openapi?: OpenApiInfo | undefined
  /**
   * The live view: `GET /` serves a self-contained page of the live services and instances (from
   * `Discovery`), per-command figures from this process's metrics and a tail of recent events;
   * `GET /live.json` serves its data. `true` for the defaults (see `LiveViewOptions`). Default off:
   * like `/healthz` and `/metrics` it is served without authentication, so it shows every service on
   * the bridge to anyone who can reach the gateway.
   */
  readonly liveView?: boolean | LiveViewOptions | undefined
}

/** One route of the gateway, for display (e.g. printing example requests). */
export interface RouteInfo {
  readonly service: string
  readonly version: string
  readonly command: string
  readonly method: string
  /** Router syntax, with `:name` path parameters. */
  readonly path: string
  readonly isPublic: boolean
}

/** The running gateway. */
export class Gateway extends Context.Service<Gateway, {
  /** Base URL of the server, e.g. `http://127.0.0.1:8080` (`localhost` when bound to every interface). */
  readonly url: string
  readonly routes: ReadonlyArray<RouteInfo>
  /** The OpenAPI 3.1 document served at `/openapi.json`. */
  readonly openapi: OpenApi.OpenAPISpec
}>()("herald/http/Gateway") {}

/** The OpenAPI document of a gateway with these options, without running it. */
export const openApi = <R>(
  options: Omit<GatewayOptions<R>, "port"> & { readonly port?: number | undefined }
): OpenApi.OpenAPISpec =>
  document({ routes: plan(options), auth: options.auth, info: options.openapi, metrics: options.metrics })

type Phase = "starting" | "ready" | "draining"

/** Ends a request early with a ready response (a problem document). */
class Respond extends Data.TaggedError("Respond")<{ readonly response: HttpServerResponse.HttpServerResponse }> {}
const respond = (response: HttpServerResponse.HttpServerResponse) => Effect.fail(new Respond({ response }))

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/
const CORRELATION_ID = /^[\x21-\x7e]{1,200}$/
const hex = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex")

/**
 * The correlation id and trace context of a request: `x-correlation-id` (or `correlation-id`) when it
 * is 1–200 visible ASCII characters, otherwise a new id; `traceparent` of the server span that
 * Effect's HTTP tracer opened as a child of the request's `traceparent`.
 */
const edgeOf = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<EdgeInfo> =>
  Effect.map(Effect.option(Effect.currentSpan), (span): EdgeInfo => {
    const headers = request.headers
    const sent = headers["x-correlation-id"] ?? headers["correlation-id"]
    const correlationId = sent !== undefined && CORRELATION_ID.test(sent) ? sent : Runtime.newId()
    const incoming = headers["traceparent"]
    const valid = incoming !== undefined && TRACEPARENT.test(incoming)
    const tracestate = valid ? headers["tracestate"] : undefined
    if (Option.isSome(span)) {
      const traceId = span.value.traceId.padStart(32, "0")
      const traceparent = `00-${traceId}-${span.value.spanId.padStart(16, "0")}-${span.value.sampled ? "01" : "00"}`
      return { correlationId, traceparent, tracestate, traceId }
    }
    const traceId = valid ? TRACEPARENT.exec(incoming)![1]! : hex(16)
    return { correlationId, traceparent: `00-${traceId}-${hex(8)}-01`, tracestate, traceId }
  })

const jsonResponse = (body: unknown, status: number, edge: EdgeInfo) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers: edgeHeaders(edge) })

/** Logs a defect under a new error id and answers 500 with that id and nothing else. */
const internalError = (cause: Cause.Cause<unknown>, edge: EdgeInfo, what: string) => {
  const errorId = Runtime.newId()
  return Effect.as(
    Effect.logError(`herald gateway: ${what} failed (error id ${errorId}, correlation id ${edge.correlationId})`, cause),
    problemResponse("internal-error", edge, { errorId })
  )
}

/** Runs a handler with the request's edge info; a defect becomes a 500, a `Respond` its response. */
const edged = <R>(
  what: string,
  handler: (edge: EdgeInfo, request: HttpServerRequest.HttpServerRequest) => Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    Respond,
    R
  >
) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.flatMap(edgeOf(request), (edge) =>
      handler(edge, request).pipe(
        Effect.catchTag("Respond", (e) => Effect.succeed(e.response)),
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : internalError(cause, edge, what)
        )
      )))

const isBodyTooLarge = (error: HttpServerError.HttpServerError): boolean =>
  error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"

/** Reads what the route needs from the request: JSON body (bounded), path and query parameters. */
const readRequest = (
  route: PlannedRoute,
  request: HttpServerRequest.HttpServerRequest,
  edge: EdgeInfo,
  maxBodySize: number
): Effect.Effect<RawRequest, Respond, HttpServerRequest.ParsedSearchParams | HttpRouter.RouteContext> =>
  Effect.gen(function*() {
    const params = yield* HttpRouter.params
    const query = yield* HttpServerRequest.ParsedSearchParams
    if (!route.hasBody) return { body: undefined, params, query }
    const length = Number(request.headers["content-length"])
    if (Number.isFinite(length) && length > maxBodySize) {
      return yield* respond(problemResponse("body-too-large", edge, { detail: `at most ${maxBodySize} bytes` }))
    }
    const text = yield* request.text.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodySize)),
      Effect.catch((error) =>
        respond(
          isBodyTooLarge(error)
            ? problemResponse("body-too-large", edge, { detail: `at most ${maxBodySize} bytes` })
            : problemResponse("invalid-json", edge, { detail: "the body could not be read" })
        )
      )
    )
    if (text.trim() === "") return { body: {}, params, query }
    const body = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: () => new Respond({ response: problemResponse("invalid-json", edge) })
    })
    return { body, params, query }
  })

const commandHandler = <R>(
  route: PlannedRoute,
  bridge: BridgeShape,
  auth: AuthOptions<R> | undefined,
  maxBodySize: number
) => {
  const key = `${route.service.name}.${route.command.name}`
  const challenge = auth === undefined ? undefined : challengeOf(auth as AuthOptions<unknown>)
  const statusOf = new Map(route.errors.map((e) => [e.tag, e.status]))
  return edged(key, (edge, request) =>
    Effect.gen(function*() {
      let principal: Principal | undefined
      if (auth !== undefined && !route.isPublic) {
        principal = yield* auth.authenticate.pipe(
          Effect.catchTag("Unauthorized", (e) =>
            respond(problemResponse("unauthorized", edge, {
              detail: e.reason,
              ...(challenge === undefined ? {} : { headers: { "www-authenticate": challenge } })
            })))
        )
      }
      const raw = yield* readRequest(route, request, edge, maxBodySize)
      const input = route.decode(raw)
      if (Result.isFailure(input)) {
        return problemResponse("invalid-input", edge, { issues: issuesOf(input.failure) })
      }
      const outcome = yield* Runtime.invoke(bridge, route.address, route.command, input.success, {
        timeoutMs: route.timeoutMs
      }).pipe(
        // principal and tenant come from `auth` only: nothing else the client sends can set them
        withContext({
          correlationId: edge.correlationId,
          traceparent: edge.traceparent,
          tracestate: edge.tracestate,
          principalId: principal?.principalId,
          tenantId: principal?.tenantId
        }),
        Effect.result
      )
      if (Result.isSuccess(outcome)) {
        const encoded = route.command.wire.encodeOutput(outcome.success)
        if (Result.isFailure(encoded)) return yield* Effect.die(encoded.failure)
        return jsonResponse(encoded.success, route.status, edge)
      }
      const error = outcome.failure
      if (isCallError(error)) return callErrorResponse(error, edge)
      const encoded = route.command.wire.encodeError?.(error)
      if (encoded === undefined || Result.isFailure(encoded)) return yield* Effect.die(error)
      return jsonResponse(encoded.success, statusOf.get(error._tag) ?? 422, edge)
    }))
}

/**
 * A Node server whose connections, once `drain` is called, close after their current response: so
 * that closing the server waits for in-flight requests, not for idle keep-alive connections.
 */
const makeNodeServer = () => {
  const server = createServer()
  const active = new Set<ServerResponse>()
  let draining = false
  server.on("request", (_request, response: ServerResponse) => {
    if (draining) {
      response.shouldKeepAlive = false
      return
    }
    active.add(response)
    response.once("close", () => active.delete(response))
  })
  const drain = () => {
    draining = true
    for (const response of active) if (!response.headersSent) response.shouldKeepAlive = false
  }
  return { server, drain }
}

/**
 * Serves every command of `services` over HTTP, with `/healthz`, `/readyz` and `/openapi.json`.
 *
 * Throws a `DefinitionError` at once for a bad route (see `HttpGateway.route`). Building the Layer
 * starts listening (failing with a `ServeError` when the port is taken); closing it drains: `/readyz`
 * answers 503 for `drainDelay`, the server stops accepting connections, in-flight requests finish
 * within `shutdownTimeout`, and what is left is interrupted.
 *
 * @example
 * HttpGateway.layer({ services: [Orders, Inventory], port: 8080, basePath: "/api" }).pipe(
 *   Layer.provide(ShopLive),
 *   Layer.provide(MemoryBridge.layer),
 *   Layer.launch
 * )
 */
export const layer = <R = never>(
  options: GatewayOptions<R>
): Layer.Layer<Gateway, HttpServerError.ServeError, Bridge | Exclude<R, HttpServerRequest.HttpServerRequest>> => {
  const routes = plan(options)
  const openapi = document({
    routes,
    auth: options.auth as AuthOptions<unknown> | undefined,
    info: options.openapi,
    metrics: options.metrics
  })
  const maxBodySize = options.maxBodySize ?? 1024 * 1024
  if (!Number.isSafeInteger(maxBodySize) || maxBodySize <= 0) {
    throw new DefinitionError(`gateway maxBodySize ${maxBodySize} must be a positive integer (bytes)`)
  }
  const drainDelay = Duration.fromInputUnsafe(options.drainDelay ?? 0)
  const shutdownTimeout = Duration.fromInputUnsafe(options.shutdownTimeout ?? "10 seconds")
  const infos: ReadonlyArray<RouteInfo> = routes.map((r) => ({
    service: r.service.name,
    version: r.service.version,
    command: r.command.name,
    method: r.method,
    path: r.path,
    isPublic: options.auth === undefined || r.isPublic
  }))
  const services = options.services.map((s) => `${s.name}/${s.version}`)
  const liveView = options.liveView === undefined || options.liveView === false
    ? undefined
    : options.liveView === true ? {} : options.liveView

  const built = Effect.gen(function*() {
    const bridge = yield* Bridge
    const phase = yield* Ref.make<Phase>("starting")
    const node = yield* Effect.sync(makeNodeServer)

    const Routes = HttpRouter.use((router) =>
      Effect.gen(function*() {
        for (const route of routes) {
          yield* router.add(route.method, route.path as HttpRouter.PathInput, commandHandler(route, bridge, options.auth, maxBodySize))
        }
        yield* router.add("GET", "/healthz", edged("healthz", (edge) => Effect.succeed(jsonResponse({ status: "ok" }, 200, edge))))
        yield* router.add(
          "GET",
          "/readyz",
          edged("readyz", (edge) =>
            Effect.gen(function*() {
              const current = yield* Ref.get(phase)
              const health = yield* bridge.health
              if (current === "ready" && health === "connected") {
                return jsonResponse({ status: "ready", bridge: bridge.name, services }, 200, edge)
              }
              const detail = current === "ready" ? `the ${bridge.name} bridge is ${health}` : `the gateway is ${current}`
              return problemResponse("not-ready", edge, { detail })
            }))
        )
        yield* router.add("GET", "/openapi.json", edged("openapi", (edge) => Effect.succeed(jsonResponse(openapi, 200, edge))))
        if (options.metrics !== false) {
          yield* router.add("GET", "/metrics", edged("metrics", (edge) =>
            Effect.map(Metric.snapshot, (snapshots) =>
              HttpServerResponse.text(Prometheus.render(snapshots), {
                contentType: Prometheus.CONTENT_TYPE,
                headers: edgeHeaders(edge)
              }))))
        }
        if (liveView !== undefined) {
          const live = yield* LiveView.make(bridge, options.services, liveView)
          yield* router.add("GET", "/", HttpServerResponse.html(LIVE_PAGE))
          yield* router.add("GET", "/live.json", edged("live", (edge) =>
            live.pipe(
              Effect.map((doc) => jsonResponse(doc, 200, edge)),
              Effect.catchTag("BridgeError", (e) => Effect.succeed(problemResponse("not-ready", edge, { detail: e.message })))
            )))
        }
        yield* router.add("*", "*", edged("not-found", (edge) => Effect.succeed(problemResponse("not-found", edge))))
      })
    )
    const cors = options.cors === undefined || options.cors === false
      ? Layer.empty
      : HttpRouter.cors({
        ...(options.cors === true ? {} : options.cors),
        exposedHeaders: ["x-correlation-id", "traceparent", "tracestate"]
      })
    const Server = HttpRouter.serve(Layer.mergeAll(Routes, cors), {
      disableListenLog: true,
      disableLogger: options.accessLog !== true
    }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(() => node.server, {
        port: options.port,
        ...(options.host === undefined ? {} : { host: options.host }),
        gracefulShutdownTimeout: shutdownTimeout
      }))
    )
    // Built after the server, so its finalizer runs first: not ready, drain delay, connections marked to
    // close after their response; then the server stops accepting and waits for in-flight requests.
    const Lifecycle = Layer.effect(
      Gateway,
      Effect.gen(function*() {
        const url = yield* HttpServer.addressFormattedWith((url) =>
          Effect.succeed(url.replace("//0.0.0.0:", "//localhost:").replace("//[::]:", "//localhost:"))
        )
        yield* Ref.set(phase, "ready")
        yield* Effect.addFinalizer(() =>
          Ref.set(phase, "draining").pipe(Effect.andThen(Effect.sleep(drainDelay)), Effect.andThen(Effect.sync(node.drain)))
        )
        return Gateway.of({ url, routes: infos, openapi })
      })
    )
    return Layer.provide(Lifecycle, Server)
  })
  return Layer.unwrap(built) as unknown as Layer.Layer<
    Gateway,
    HttpServerError.ServeError,
    Bridge | Exclude<R, HttpServerRequest.HttpServerRequest>
  >
}
