/** Contracts, handlers and a running gateway shared by the HTTP gateway tests. */
import { Effect, Layer, References, Schema } from "effect"
import { Command, MemoryBridge, MessageContext, Service } from "../../src/index.ts"
import * as HttpGateway from "../../src/http/HttpGateway.ts"
import { Calculator, CalculatorLive, Sleep } from "../fixtures.ts"

/** A declared error whose status comes from Effect's `httpApiStatus` annotation. */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", { id: Schema.Int }, { httpApiStatus: 409 }) {}
/** A declared error whose status comes from the gateway's `errorStatus` map. */
export class Gone extends Schema.TaggedError<Gone>()("Gone", { id: Schema.Int }) {}

/** Echoes the message context the handler runs with; the input tries to smuggle a principal in. */
export const WhoAmI = Command.make("whoami", {
  input: Schema.Struct({ principalId: Schema.optionalKey(Schema.String), tenantId: Schema.optionalKey(Schema.String) }),
  output: Schema.Struct({
    principalId: Schema.NullOr(Schema.String),
    tenantId: Schema.NullOr(Schema.String),
    correlationId: Schema.NullOr(Schema.String),
    traceparent: Schema.NullOr(Schema.String),
    tracestate: Schema.NullOr(Schema.String)
  })
})

export const Item = Schema.Struct({ id: Schema.Int, name: Schema.String, verbose: Schema.Boolean })

/** `GET /items/:id?verbose=…`: input from path and query. Fails `Conflict` for id 409, `Gone` for id 410. */
export const GetItem = Command.make("get-item", {
  input: Schema.Struct({ id: Schema.Int.check(Schema.isGreaterThan(0)), verbose: Schema.optionalKey(Schema.Boolean) }),
  output: Item,
  errors: [Conflict, Gone]
})

/** `PUT /items/:id` with a JSON body: input from path and body. */
export const RenameItem = Command.make("rename-item", {
  input: Schema.Struct({ id: Schema.Int, name: Schema.String.check(Schema.isMinLength(1)) }),
  output: Item
})

/** A public command. */
export const Ping = Command.make("ping", { input: Schema.Struct({}), output: Schema.Struct({ pong: Schema.Boolean }) })

export const Items = Service.make("items", "2", { commands: [WhoAmI, GetItem, RenameItem, Ping] })

export const ItemsLive = Service.toLayer(Items, {
  whoami: () =>
    Effect.gen(function*() {
      const ctx = yield* MessageContext
      return {
        principalId: ctx.principalId ?? null,
        tenantId: ctx.tenantId ?? null,
        correlationId: ctx.correlationId ?? null,
        traceparent: ctx.traceparent ?? null,
        tracestate: ctx.tracestate ?? null
      }
    }),
  "get-item": ({ id, verbose }) =>
    id === 409
      ? Effect.fail(new Conflict({ id }))
      : id === 410
      ? Effect.fail(new Gone({ id }))
      : Effect.succeed({ id, name: `item ${id}`, verbose: verbose ?? false }),
  "rename-item": ({ id, name }) => Effect.succeed({ id, name, verbose: false }),
  ping: () => Effect.succeed({ pong: true })
})

/** A service nobody runs: its commands answer 503. */
export const Ghost = Service.make("ghost", "1", {
  commands: [Command.make("boo", { input: Schema.Struct({}), output: Schema.Struct({}) })]
})

/** Bearer tokens of the tests: `<principal>@<tenant>`. */
export const tokens: Record<string, HttpGateway.Principal> = {
  "alice-token": { principalId: "alice", tenantId: "acme" },
  "bob-token": { principalId: "bob", tenantId: "globex" }
}

export const auth = HttpGateway.bearer((token) => {
  const principal = tokens[token]
  if (token === "crash-token") return Effect.die(new Error("secret detail of a crashing authenticator"))
  return principal === undefined
    ? Effect.fail(new HttpGateway.Unauthorized({ reason: "unknown token" }))
    : Effect.succeed(principal)
})

/** The options of the gateway under test. */
export const gatewayOptions: HttpGateway.GatewayOptions = {
  services: [Calculator, Items, Ghost],
  port: 0,
  host: "127.0.0.1",
  basePath: "/api",
  auth,
  timeout: "2 seconds",
  maxBodySize: 1024,
  errorStatus: { Gone: 410 },
  routes: [
    HttpGateway.route(GetItem, { method: "GET", path: "/items/:id" }),
    HttpGateway.route(RenameItem, { method: "PUT", path: "/items/:id" }),
    HttpGateway.route(Ping, { public: true, path: "/ping" }),
    HttpGateway.route(Sleep, { timeout: "150 millis" }) // sleep: a short deadline for the 504 test
  ]
}

/**
 * The gateway with the calculator and items services on a memory bridge; the ghost service has no
 * instance. Logs are off: the defects the tests provoke would be logged at error level.
 */
export const GatewayLive = HttpGateway.layer(gatewayOptions).pipe(
  Layer.provideMerge(Layer.mergeAll(CalculatorLive(), ItemsLive)),
  Layer.provideMerge(MemoryBridge.layer),
  Layer.provide(Layer.succeed(References.MinimumLogLevel, "None"))
)
