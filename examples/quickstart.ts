import { Effect, Layer, Schema } from "effect"
import { Client, Command, MemoryBridge, Service, Subscription, withContext } from "../src/index.ts"

class Overflow extends Schema.TaggedError<Overflow>()("Overflow", { limit: Schema.Finite }) {}

// contracts: schemas only, importable by callers without the implementation
const Add = Command.make("add", {
  input: Schema.Struct({ a: Schema.Finite, b: Schema.Finite }),
  output: Schema.Struct({ sum: Schema.Finite }),
  errors: [Overflow],
  emits: "added" // every success is also published as the event "added"
})
const Calculator = Service.make("calculator", "1", { commands: [Add] })
const BigSums = Subscription.make("big-sums", {
  filter: { eventName: "added", tenantId: "t1", data: { sum: [{ numeric: [">", 10] }] } },
  payload: Schema.Struct({ sum: Schema.Finite }),
  delivery: "shared"
})
const Auditor = Service.make("auditor", "1", { subscriptions: [BigSums] })

// implementations: one Layer per service
const CalculatorLive = Service.toLayer(Calculator, {
  add: ({ a, b }) => (a + b > 1e6 ? Effect.fail(new Overflow({ limit: 1e6 })) : Effect.succeed({ sum: a + b }))
})
const AuditorLive = Service.toLayer(Auditor, {
  "big-sums": ({ sum }, event) => Effect.log(`big sum ${sum} for tenant ${event.tenantId}`)
})

// a caller: a typed client derived from the contract
export const program = Effect.gen(function*() {
  const calc = yield* Client.make(Calculator)
  const { sum } = yield* calc.add({ a: 20, b: 22 }, { timeout: "2 seconds" })
  return sum
}).pipe(
  withContext({ tenantId: "t1" }),
  Effect.provide(Layer.mergeAll(CalculatorLive, AuditorLive).pipe(Layer.provideMerge(MemoryBridge.layer)))
)
