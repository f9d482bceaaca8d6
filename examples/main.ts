/**
 * Runs the example shop (`npm start`): places the scenario's orders over the in-memory bridge and
 * prints what every service and subscription did, grouped by order. Exits 0, or 1 on failure.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, References } from "effect"
import { scenario } from "./scenario.ts"
import { render } from "./trace.ts"

const main = Effect.gen(function*() {
  yield* Console.log("Herald example: orders → inventory + billing, over the memory bridge")
  yield* Console.log("(#n = correlation id of the message being handled; -- = top-level caller)\n")
  const entries = yield* scenario
  for (const line of render(entries)) yield* Console.log(line)

  const orders = new Set(entries.map((e) => e.orderId))
  const ids = new Set(entries.flatMap((e) => (e.correlationId === undefined ? [] : [e.correlationId])))
  yield* Console.log(`\n${orders.size} orders, ${ids.size} correlation ids (one per order, across services)`)
}).pipe(
  // The trace already shows timeouts and dead letters; keep the runtime's own warnings out of it.
  Effect.provideService(References.MinimumLogLevel, "Error")
)

NodeRuntime.runMain(main)
