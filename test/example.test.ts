/** Runs the example shop scenario (examples/) and checks its trace. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, References } from "effect"
import { program as quickstart } from "../examples/quickstart.ts"
import { scenario } from "../examples/scenario.ts"
import type { Entry } from "../examples/trace.ts"

const by = (entries: ReadonlyArray<Entry>, actor: string) => entries.filter((e) => e.actor === actor)
const ordersOf = (entries: ReadonlyArray<Entry>) => [...new Set(entries.map((e) => e.orderId))].sort()

describe("example shop", () => {
  it.live("places orders, filters events, dead-letters, times out and propagates context", () =>
    Effect.gen(function*() {
      const entries = yield* scenario

      // outcomes seen by the top-level caller
      const outcome = (orderId: string) => by(entries, "client").find((e) => e.orderId === orderId)?.text ?? ""
      assert.include(outcome("o-1"), "placed, total 25")
      assert.include(outcome("o-2"), "placed, total 240")
      assert.include(outcome("o-3"), "placed, total 62.5")
      assert.include(outcome("o-4"), "PaymentUnavailable")
      assert.include(outcome("o-5"), "OutOfStock")
      assert.deepStrictEqual(ordersOf(by(entries, "orders.place")), ["o-1", "o-2", "o-3", "o-4", "o-5"])

      // orders.place called the other services' commands
      assert.deepStrictEqual(ordersOf(by(entries, "inventory.reserve")), ["o-1", "o-2", "o-3", "o-4", "o-5"])
      assert.deepStrictEqual(ordersOf(by(entries, "billing.charge")), ["o-1", "o-2", "o-3", "o-4"])

      // payload filter: only the order over 100
      const fraud = by(entries, "billing.fraud-review")
      assert.deepStrictEqual(fraud.map((e) => e.orderId), ["o-2"])

      // tenant filter: only acme's orders, each once
      const acme = by(entries, "inventory.acme-priority-pick")
      assert.deepStrictEqual(ordersOf(acme), ["o-1", "o-3"])
      assert.strictEqual(acme.length, 2)
      assert.isTrue(acme.every((e) => e.tenantId === "acme"))

      // the bouncing receipt was retried, then dead-lettered with the original tenant and correlation
      const letters = by(entries, "ops.dead-letters")
      assert.strictEqual(letters.length, 1)
      const letter = letters[0]!
      assert.strictEqual(letter.orderId, "o-2")
      assert.isAbove(letter.attempts ?? 0, 1)
      assert.strictEqual(letter.tenantId, "globex")
      assert.include(letter.text, "billing/send-receipt")
      assert.strictEqual(by(entries, "billing.send-receipt").filter((e) => e.orderId === "o-2").length, letter.attempts)

      // the slow charge timed out at the caller and the stock was released
      const timeouts = entries.filter((e) => e.kind === "timeout")
      assert.deepStrictEqual(timeouts.map((e) => e.orderId), ["o-4"])
      assert.include(timeouts[0]!.text, "Timeout")
      assert.deepStrictEqual(ordersOf(by(entries, "inventory.release")), ["o-4"])

      // context propagation: inside services, one correlation id per order, and the caller's tenant
      const services = entries.filter((e) => e.actor !== "client")
      for (const orderId of ordersOf(services)) {
        const group = services.filter((e) => e.orderId === orderId)
        assert.strictEqual(new Set(group.map((e) => e.correlationId)).size, 1, `one correlation id for ${orderId}`)
        assert.isDefined(group[0]!.correlationId)
        const tenant = orderId === "o-2" || orderId === "o-4" ? "globex" : "acme"
        assert.isTrue(group.every((e) => e.tenantId === tenant), `tenant ${tenant} for ${orderId}`)
      }
      assert.strictEqual(new Set(services.map((e) => e.correlationId)).size, 5)
    }).pipe(Effect.provideService(References.MinimumLogLevel, "Error")))

  it.effect("the README's quick start runs", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* quickstart, 42)
    }))
})
