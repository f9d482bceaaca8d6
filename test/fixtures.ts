/** Contracts shared by the tests. */
import { Effect, Schema } from "effect"
import { Command, Service, Subscription } from "../src/index.ts"

export class Overflow extends Schema.TaggedError<Overflow>()("Overflow", { limit: Schema.Finite }) {}

export const Add = Command.make("add", {
  input: Schema.Struct({ a: Schema.Finite, b: Schema.Finite }),
  output: Schema.Struct({ sum: Schema.Finite }),
  errors: [Overflow],
  emits: "added"
})

export const Sleep = Command.make("sleep", {
  input: Schema.Struct({ ms: Schema.Int }),
  output: Schema.Struct({ slept: Schema.Int })
})

export const Crash = Command.make("crash", {
  input: Schema.Struct({ how: Schema.Literals(["throw", "die"]) }),
  output: Schema.Struct({})
})

export const Lookup = Command.make("lookup", {
  input: Schema.Struct({ key: Schema.String }),
  output: Schema.Struct({ value: Schema.String }),
  idempotent: true
})

export const Calculator = Service.make("calculator", "1", { commands: [Add, Sleep, Crash, Lookup] })

export const calculatorHandlers = {
  add: ({ a, b }: { a: number; b: number }) =>
    a + b > 1000 ? Effect.fail(new Overflow({ limit: 1000 })) : Effect.succeed({ sum: a + b }),
  sleep: ({ ms }: { ms: number }) => Effect.as(Effect.sleep(ms), { slept: ms }),
  crash: ({ how }: { how: "throw" | "die" }) =>
    how === "throw"
      ? Effect.sync(() => {
        throw new Error("secret internal detail")
      })
      : Effect.die(new Error("secret internal detail")),
  lookup: ({ key }: { key: string }) => Effect.succeed({ value: key.toUpperCase() })
}

export const CalculatorLive = () => Service.toLayer(Calculator, calculatorHandlers)

export const Added = Schema.Struct({ sum: Schema.Finite })

export const subscriptionOf = (name: string, options: Partial<Subscription.SubscriptionOptions<typeof Added>> = {}) =>
  Subscription.make(name, { filter: { eventName: "added" }, payload: Added, delivery: "shared", ...options })
