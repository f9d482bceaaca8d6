/**
 * The Herald contracts of the benchmark (BENCHMARK.md): service `calculator` v1 with command `add`
 * `{a, b}` → `{sum}`, the event `added` `{sum}`, and 4 independent subscribing services
 * (`subscriber-1` … `subscriber-4`), each with one subscription to `added`.
 */
import { Schema } from "effect"
import { Command, Event, Service, Subscription } from "../../src/index.ts"

export const Add = Command.make("add", {
  input: Schema.Struct({ a: Schema.Finite, b: Schema.Finite }),
  output: Schema.Struct({ sum: Schema.Finite })
})

export const Calculator = Service.make("calculator", "1", { commands: [Add] })

export const AddedPayload = Schema.Struct({ sum: Schema.Finite })

export const Added = Event.make("added", AddedPayload)

export const OnAdded = Subscription.make("on-added", {
  filter: { eventName: "added" },
  payload: AddedPayload,
  delivery: "shared"
})

/** Subscriber service k (0-based): a service of its own, so each one receives every event. */
export const subscriberService = (k: number) => Service.make(`subscriber-${k + 1}`, "1", { subscriptions: [OnAdded] })
