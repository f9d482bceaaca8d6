/**
 * Commands as HTTP routes: the per-command options (`route`), and the plan the gateway builds from
 * its services once, when its Layer is made — paths, statuses, and the decoders of path, query and
 * body into the command's input.
 *
 * Every definition error (an unknown path parameter, two routes on one path, a status out of range)
 * is thrown as a `DefinitionError` when the plan is made, never at request time.
 */
import { Duration, Result, Schema } from "effect"
import type { CommandAddress } from "../Bridge.ts"
import { DefinitionError } from "../BridgeError.ts"
import type * as Command from "../Command.ts"
import type * as Service from "../Service.ts"

/** The HTTP methods a command route can use. `GET` and `DELETE` take their input from path and query. */
export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE"

/** The names of the `:param` segments of a path. */
export type PathParams<P extends string> = P extends `${string}:${infer Name}/${infer Rest}` ? Name | PathParams<`/${Rest}`>
  : P extends `${string}:${infer Name}` ? Name
  : never

/** Options of one command's route; every option has a default. */
export interface RouteOptions<P extends string = string> {
  /** Default `POST`. With `GET` and `DELETE` the input is read from path and query parameters, not a body. */
  readonly method?: Method | undefined
  /**
   * The path under the gateway's `basePath`, with `:name` segments for path parameters, each naming a
   * field of the command's input (e.g. `/orders/:orderId`). Default `/<service>/v<version>/<command>`.
   */
  readonly path?: P | undefined
  /** Reachable without credentials when the gateway has `auth`. Default `false`: every command is protected. */
  readonly public?: boolean | undefined
  /** The status of a successful call. Default 200. */
  readonly status?: number | undefined
  /** How long the gateway waits for the reply before answering 504. Default: the gateway's `timeout`. */
  readonly timeout?: Duration.Input | undefined
  /** A one-line summary for the OpenAPI document. */
  readonly summary?: string | undefined
  /** A description for the OpenAPI document. */
  readonly description?: string | undefined
}

/** The route options of one command, made by `route`. */
export interface Route {
  readonly _tag: "HttpGatewayRoute"
  readonly command: Command.Any
  readonly options: RouteOptions
}

type CheckPath<C extends Command.Any, P extends string> = [Exclude<PathParams<P>, keyof Command.Input<C>>] extends [never]
  ? unknown
  : { readonly "~path parameters that are not input fields": Exclude<PathParams<P>, keyof Command.Input<C>> }

/**
 * Declares how one command is exposed: method, path, success status, timeout, public access.
 * Path parameters must be fields of the command's input (checked by the compiler and at start).
 *
 * @example
 * HttpGateway.route(GetOrder, { method: "GET", path: "/orders/:orderId", public: true })
 */
export const route = <C extends Command.Any, const P extends string = never>(
  command: C,
  options: RouteOptions<P> & CheckPath<C, P>
): Route => ({ _tag: "HttpGatewayRoute", command, options: options as RouteOptions })

/** A command's route, resolved. */
export interface PlannedRoute {
  readonly service: Service.Any
  readonly command: Command.Any
  readonly address: CommandAddress
  readonly method: Method
  /** Router syntax: `/api/orders/:orderId`. */
  readonly path: string
  /** OpenAPI syntax: `/api/orders/{orderId}`. */
  readonly openApiPath: string
  readonly pathParams: ReadonlyArray<string>
  /** Whether the input is read from a JSON body (`POST`, `PUT`, `PATCH`). */
  readonly hasBody: boolean
  readonly isPublic: boolean
  readonly status: number
  readonly timeoutMs: number
  readonly summary: string | undefined
  readonly description: string | undefined
  /** The declared errors with the status each is answered with. */
  readonly errors: ReadonlyArray<{ readonly tag: string; readonly status: number; readonly schema: Command.AnyErrorSchema }>
  /** The body's schema for the OpenAPI document: the input without the path parameters. */
  readonly bodySchema: Schema.Top | undefined
  /** Decodes the request into the command's input. */
  readonly decode: (request: RawRequest) => Result.Result<unknown, Schema.SchemaError>
}

/** What a route reads from the request. */
export interface RawRequest {
  /** The parsed JSON body (`{}` when empty); ignored by routes without a body. */
  readonly body: unknown
  readonly params: Readonly<Record<string, string | undefined>>
  readonly query: Readonly<Record<string, string | ReadonlyArray<string>>>
}

/** Paths the gateway serves itself. */
export const RESERVED_PATHS: ReadonlyArray<string> = ["/healthz", "/readyz", "/openapi.json", "/metrics"]

/** Paths the gateway serves itself when its live view is on. */
export const LIVE_VIEW_PATHS: ReadonlyArray<string> = ["/", "/live.json"]

const PARAM = /^:([A-Za-z_][A-Za-z0-9_]*)$/
const LITERAL = /^[A-Za-z0-9._~-]+$/

/** Normalises a base path: `""` or `/a/b` without a trailing slash. */
export const normalizeBasePath = (basePath: string | undefined): string => {
  const trimmed = (basePath ?? "").replace(/\/+$/, "")
  if (trimmed === "") return ""
  const path = trimmed.startsWith("/") ? trimmed : `/${trimmed}`
  for (const segment of path.slice(1).split("/")) {
    if (!LITERAL.test(segment)) throw new DefinitionError(`gateway basePath ${JSON.stringify(basePath)} is invalid`)
  }
  return path
}

const parsePath = (what: string, path: string): { readonly openApi: string; readonly params: ReadonlyArray<string> } => {
  if (!path.startsWith("/")) throw new DefinitionError(`${what}: path ${JSON.stringify(path)} must start with "/"`)
  const params: Array<string> = []
  const segments = path.slice(1).split("/").map((segment) => {
    const param = PARAM.exec(segment)
    if (param !== null) {
      params.push(param[1]!)
      return `{${param[1]}}`
    }
    if (!LITERAL.test(segment)) {
      throw new DefinitionError(`${what}: path segment ${JSON.stringify(segment)} must be a literal or :name`)
    }
    return segment
  })
  if (new Set(params).size !== params.length) throw new DefinitionError(`${what}: a path parameter appears twice`)
  return { openApi: `/${segments.join("/")}`, params }
}

const fieldsOf = (schema: Schema.Top): Readonly<Record<string, Command.AnySchema>> | undefined => {
  const fields = (schema as { readonly fields?: unknown }).fields
  return typeof fields === "object" && fields !== null ? fields as Record<string, Command.AnySchema> : undefined
}

const tagOf = (schema: Command.AnyErrorSchema): string | undefined => {
  const literal = (fieldsOf(schema)?._tag?.ast as { readonly literal?: unknown } | undefined)?.literal
  return typeof literal === "string" ? literal : undefined
}

/** The `httpApiStatus` annotation of a schema (Effect's HttpApi convention), if any. */
const annotatedStatus = (schema: Schema.Top): number | undefined => {
  const status = schema.ast.annotations?.httpApiStatus ?? schema.ast.context?.annotations?.httpApiStatus
  return typeof status === "number" ? status : undefined
}

const checkStatus = (what: string, status: number, min: number, max: number): number => {
  if (!Number.isInteger(status) || status < min || status > max) {
    throw new DefinitionError(`${what}: status ${status} must be an integer from ${min} to ${max}`)
  }
  return status
}

const toMillis = (what: string, input: Duration.Input): number => {
  const ms = Duration.toMillis(Duration.fromInputUnsafe(input))
  if (!(ms > 0) || !Number.isFinite(ms)) throw new DefinitionError(`${what} must be a positive, finite duration`)
  return ms
}

const ALL_ERRORS = { errors: "all" } as const

const makeDecoder = (
  what: string,
  command: Command.Any,
  hasBody: boolean,
  pathParams: ReadonlyArray<string>
): Pick<PlannedRoute, "decode" | "bodySchema"> => {
  const fields = fieldsOf(command.input)
  if (pathParams.length > 0) {
    const missing = pathParams.filter((name) => fields?.[name] === undefined)
    if (missing.length > 0) {
      throw new DefinitionError(`${what}: path parameters ${missing.join(", ")} are not fields of the command's input`)
    }
  }
  if (!hasBody) {
    // path and query parameters are strings (or repeated strings): decoded through the StringTree codec
    const decode = Schema.decodeUnknownResult(Schema.toCodecArrayFromSingle(Schema.toCodecStringTree(command.input)))
    return {
      bodySchema: undefined,
      decode: ({ params, query }) => decode({ ...query, ...definedOf(params) }, ALL_ERRORS)
    }
  }
  const decodeBody = Schema.decodeUnknownResult(command.codecs.input)
  if (pathParams.length === 0) {
    return { bodySchema: command.input, decode: ({ body }) => decodeBody(body, ALL_ERRORS) }
  }
  // path parameters of a body route: string → value → JSON, then merged into the body (the path wins)
  const picked = Schema.Struct(Object.fromEntries(pathParams.map((name) => [name, fields![name]!])))
  const decodeParams = Schema.decodeUnknownResult(Schema.toCodecStringTree(picked))
  const encodeParams = Schema.encodeUnknownResult(Schema.toCodecJson(picked))
  const rest = Object.fromEntries(Object.entries(fields!).filter(([name]) => !pathParams.includes(name)))
  return {
    bodySchema: Schema.Struct(rest),
    decode: ({ body, params }) => {
      const decoded = decodeParams(definedOf(params), ALL_ERRORS)
      if (Result.isFailure(decoded)) return decoded
      const encoded = encodeParams(decoded.success)
      if (Result.isFailure(encoded)) return encoded
      const merged = typeof body === "object" && body !== null && !Array.isArray(body)
        ? { ...body, ...(encoded.success as object) }
        : body
      return decodeBody(merged, ALL_ERRORS)
    }
  }
}

const definedOf = (params: Readonly<Record<string, string | undefined>>): Record<string, string> =>
  Object.fromEntries(Object.entries(params).filter((entry): entry is [string, string] => entry[1] !== undefined))

/** What `plan` needs from the gateway's options. */
export interface PlanOptions {
  readonly services: ReadonlyArray<Service.Any>
  readonly basePath?: string | undefined
  readonly routes?: ReadonlyArray<Route> | undefined
  readonly errorStatus?: Readonly<Record<string, number>> | undefined
  readonly timeout?: Duration.Input | undefined
  /** When on, `GET /` and `GET /live.json` belong to the gateway. */
  readonly liveView?: boolean | object | undefined
}

/** Resolves every command of the services into a route. Throws a `DefinitionError` on any conflict. */
export const plan = (options: PlanOptions): ReadonlyArray<PlannedRoute> => {
  const basePath = normalizeBasePath(options.basePath)
  const defaultTimeoutMs = toMillis("gateway timeout", options.timeout ?? "30 seconds")
  const byCommand = new Map<Command.Any, RouteOptions>()
  for (const r of options.routes ?? []) {
    if (byCommand.has(r.command)) throw new DefinitionError(`gateway: two routes for command ${r.command.name}`)
    byCommand.set(r.command, r.options)
  }
  for (const [tag, status] of Object.entries(options.errorStatus ?? {})) checkStatus(`gateway errorStatus.${tag}`, status, 400, 599)

  const reserved = options.liveView === undefined || options.liveView === false ? RESERVED_PATHS : [...RESERVED_PATHS, ...LIVE_VIEW_PATHS]
  const seen = new Map<string, string>(reserved.map((path) => [`GET ${path}`, "the gateway itself"]))
  const used = new Set<Command.Any>()
  const planned = options.services.flatMap((service) =>
    service.commands.map((command): PlannedRoute => {
      const what = `gateway route of ${service.name}.${command.name}`
      const custom = byCommand.get(command) ?? {}
      used.add(command)
      const method = custom.method ?? "POST"
      if (!["GET", "POST", "PUT", "PATCH", "DELETE"].includes(method)) {
        throw new DefinitionError(`${what}: method ${JSON.stringify(method)} is not supported`)
      }
      const relative = custom.path ?? `/${service.name}/v${service.version}/${command.name}`
      const parsed = parsePath(what, relative)
      const path = `${basePath}${relative === "/" && basePath !== "" ? "" : relative}`
      const openApiPath = `${basePath}${parsed.openApi === "/" && basePath !== "" ? "" : parsed.openApi}`
      const key = `${method} ${openApiPath.replace(/\{[^}]+\}/g, "{}")}`
      const other = seen.get(key)
      if (other !== undefined) throw new DefinitionError(`${what}: ${method} ${path} is already the route of ${other}`)
      seen.set(key, `${service.name}.${command.name}`)
      const hasBody = method === "POST" || method === "PUT" || method === "PATCH"
      const errors = command.errors.map((schema) => {
        const tag = tagOf(schema) ?? "?"
        const status = options.errorStatus?.[tag] ?? annotatedStatus(schema) ?? 422
        return { tag, status: checkStatus(`${what}: error ${tag}`, status, 400, 599), schema }
      })
      return {
        service,
        command,
        address: { service: service.name, version: service.version, command: command.name },
        method,
        path,
        openApiPath,
        pathParams: parsed.params,
        hasBody,
        isPublic: custom.public ?? false,
        status: checkStatus(what, custom.status ?? 200, 200, 299),
        timeoutMs: custom.timeout === undefined ? defaultTimeoutMs : toMillis(`${what}: timeout`, custom.timeout),
        summary: custom.summary,
        description: custom.description,
        errors,
        ...makeDecoder(what, command, hasBody, parsed.params)
      }
    })
  )
  for (const command of byCommand.keys()) {
    if (!used.has(command)) throw new DefinitionError(`gateway: route for ${command.name}, a command of none of the services`)
  }
  return planned
}
