/**
 * Runs the example shop behind the HTTP gateway (`npm start`).
 *
 * Starts the four services on the bridge chosen by `HERALD_BRIDGE` (`memory`, the default, `nats`,
 * `mqtt` or `amqp`; `HERALD_BROKER_URL` overrides the broker's local default address), places the
 * scenario's orders and prints what every service and subscription did, then serves the `orders`
 * and `inventory` commands over HTTP on `HOST`:`PORT` (default 127.0.0.1:3000; `PORT=0` picks a free
 * port) until SIGINT or SIGTERM, when it drains in-flight requests and exits 0.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Console, Effect, Exit, Layer, References, Runtime } from "effect"
import * as HttpGateway from "../src/http/HttpGateway.ts"
import { bridgeLayer, bridgeNameOf, curlLines, ShopGateway } from "./gateway.ts"
import { placeOrders } from "./scenario.ts"
import { ShopLive } from "./services.ts"
import { render, Trace } from "./trace.ts"

const bridge = bridgeNameOf(process.env.HERALD_BRIDGE)
const port = Number(process.env.PORT ?? 3000)
if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT=${process.env.PORT} is not a port number`)

const main = Effect.gen(function*() {
  yield* Console.log(`Herald example: orders → inventory + billing, over the ${bridge} bridge`)
  yield* Console.log("(#n = correlation id of the message being handled; -- = top-level caller)\n")
  const entries = yield* placeOrders
  for (const line of render(entries)) yield* Console.log(line)
  const orders = new Set(entries.map((e) => e.orderId))
  const ids = new Set(entries.flatMap((e) => (e.correlationId === undefined ? [] : [e.correlationId])))
  yield* Console.log(`\n${orders.size} orders, ${ids.size} correlation ids (one per order, across services)`)

  const { routes, url } = yield* HttpGateway.Gateway
  yield* Console.log(`\nHTTP gateway listening on ${url} (OpenAPI: ${url}/openapi.json)`)
  yield* Console.log(`Live view: ${url}/ (services, call rates, recent events); metrics: ${url}/metrics`)
  for (const r of routes) yield* Console.log(`  ${r.method.padEnd(6)} ${r.path}`)
  yield* Console.log(`\nTry (tokens: alice-token, bob-token):\n`)
  for (const line of curlLines(url)) yield* Console.log(`  ${line}`)
  yield* Console.log(`\nCtrl-C stops (in-flight requests are drained first).`)
  return yield* Effect.never
}).pipe(
  Effect.onInterrupt(() => Console.log("\nshutting down: draining in-flight requests…")),
  Effect.provide(
    ShopGateway({ port, host: process.env.HOST ?? "127.0.0.1" }).pipe(
      Layer.provideMerge(ShopLive),
      Layer.provideMerge(Trace.layer),
      Layer.provideMerge(bridgeLayer(bridge, process.env.HERALD_BROKER_URL))
    )
  ),
  Effect.onExit((exit) => Exit.hasInterrupts(exit) ? Console.log("stopped") : Effect.void),
  // The trace already shows timeouts and dead letters; keep the runtime's own warnings out of it.
  Effect.provideService(References.MinimumLogLevel, "Error")
)

// SIGINT/SIGTERM interrupt `main`; a graceful stop is a success (exit 0), not an interruption (130).
NodeRuntime.runMain(main, {
  teardown: (exit, onExit) =>
    Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
})
