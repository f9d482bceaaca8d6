/**
 * The example scenario: two tenants place five orders against the shop on the memory bridge.
 *
 * - o-1, o-3 (acme): placed; the tenant-filtered `acme-priority-pick` fires for both.
 * - o-2 (globex): placed for 240, so the payload-filtered `fraud-review` fires; its receipt bounces,
 *   is retried twice and ends in the dead-letter stream, which `ops` prints.
 * - o-4 (globex): the card issuer is slow, `orders` times out calling `billing` and releases the stock.
 * - o-5 (acme): out of stock, a declared error of `inventory` passed on by `orders`.
 *
 * `scenario` runs it all on a fresh memory bridge and returns the trace once every expected event has
 * been handled; `placeOrders` does the same against a shop already running on the provided bridge.
 */
import { Effect, Layer } from "effect"
import { Client, MemoryBridge, withContext } from "../src/index.ts"
import { Orders } from "./contracts.ts"
import { ShopLive, SLOW_CARD } from "./services.ts"
import { type Entry, Trace } from "./trace.ts"

const count = (entries: ReadonlyArray<Entry>, actor: string, text = "") =>
  entries.filter((e) => e.actor === actor && e.text.includes(text)).length

/** Everything the scenario waits for: subscriptions run concurrently, the dead letter comes last. */
const settled = (entries: ReadonlyArray<Entry>) =>
  count(entries, "inventory.acme-priority-pick") >= 2 &&
  count(entries, "billing.fraud-review") >= 1 &&
  count(entries, "billing.send-receipt", "mailed") >= 2 &&
  count(entries, "ops.dead-letters") >= 1

/** The scenario against a running shop: needs its `Trace` and the bridge it runs on. */
export const placeOrders = Effect.gen(function*() {
  const trace = yield* Trace
  const orders = yield* Client.make(Orders, { timeout: "5 seconds" })

  const place = (
    who: { readonly tenantId: string; readonly principalId: string },
    order: { readonly orderId: string; readonly sku: string; readonly quantity: number; readonly card?: string }
  ) =>
    orders.place({
      card: order.card ?? "4242-4242-4242-4242",
      email: `${who.principalId}@${who.tenantId}.${who.tenantId === "globex" ? "invalid" : "test"}`,
      orderId: order.orderId,
      quantity: order.quantity,
      sku: order.sku
    }).pipe(
      Effect.map((placed) => `placed, total ${placed.total}`),
      Effect.catchTags({
        OutOfStock: (e) => Effect.succeed(`rejected: OutOfStock (${e.available} ${e.sku} left)`),
        PaymentDeclined: (e) => Effect.succeed(`rejected: PaymentDeclined (${e.reason})`),
        PaymentUnavailable: () => Effect.succeed("rejected: PaymentUnavailable (billing timed out)")
      }),
      Effect.flatMap((outcome) =>
        trace.record({
          orderId: order.orderId,
          actor: "client",
          kind: "outcome",
          text: `${order.quantity} × ${order.sku} → ${outcome}`
        })
      ),
      // Top-level calls carry the caller's tenant and principal; everything downstream inherits them.
      withContext(who)
    )

  const alice = { tenantId: "acme", principalId: "alice" }
  const bob = { tenantId: "globex", principalId: "bob" }
  yield* place(alice, { orderId: "o-1", sku: "widget", quantity: 2 })
  yield* place(bob, { orderId: "o-2", sku: "gadget", quantity: 3 })
  yield* place(alice, { orderId: "o-3", sku: "widget", quantity: 5 })
  yield* place(bob, { orderId: "o-4", sku: "gizmo", quantity: 1, card: SLOW_CARD })
  yield* place(alice, { orderId: "o-5", sku: "gizmo", quantity: 50 })

  return yield* trace.awaitUntil(settled).pipe(Effect.timeout("2 seconds"))
})

/** The scenario with the shop on a fresh memory bridge; fails if the expected events never arrive. */
export const scenario = placeOrders.pipe(
  Effect.provide(ShopLive.pipe(Layer.provideMerge(MemoryBridge.layer), Layer.provideMerge(Trace.layer)))
)
