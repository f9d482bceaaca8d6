/**
 * Implementations of the example services, one Layer each (one running instance per build).
 *
 * `orders.place` is a small saga: it calls `inventory.reserve` and `billing.charge` through typed
 * clients, and releases the reservation when the charge fails or times out. Every handler writes
 * what it did to the `Trace`.
 */
import { Data, Effect, Layer, Option, Ref, Schedule, Schema } from "effect"
import { Client, isCallError, MessageContext, Service } from "../src/index.ts"
import { Billing, Inventory, Ops, Orders, OutOfStock, PaymentUnavailable } from "./contracts.ts"
import { Trace } from "./trace.ts"

/** A test card whose issuer takes a second to answer (a 3-D Secure challenge nobody completes). */
export const SLOW_CARD = "4000-0000-0000-3220"

/** A downstream call failing in transport is a defect of this handler: its caller sees `RemoteDefect`. */
const orDieOnCallError = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.catchIf(self, isCallError, Effect.die)

// ---------------------------------------------------------------------------------------------

const catalog: Record<string, { readonly price: number; readonly stock: number }> = {
  widget: { price: 12.5, stock: 100 },
  gadget: { price: 80, stock: 20 },
  gizmo: { price: 40, stock: 10 }
}

export const InventoryLive = Layer.unwrap(Effect.gen(function*() {
  const trace = yield* Trace
  const stock = yield* Ref.make(new Map(Object.entries(catalog).map(([sku, item]) => [sku, item.stock])))
  const reservations = new Map<string, { readonly orderId: string; readonly sku: string; readonly quantity: number }>()

  return Service.toLayer(Inventory, {
    reserve: ({ orderId, quantity, sku }) =>
      Effect.gen(function*() {
        const available = yield* Ref.modify(stock, (s) => {
          const n = s.get(sku) ?? 0
          return [n, n >= quantity ? new Map(s).set(sku, n - quantity) : s]
        })
        if (available < quantity) {
          yield* trace.record({
            orderId,
            actor: "inventory.reserve",
            kind: "command",
            text: `${quantity} × ${sku} wanted, ${available} in stock`
          })
          return yield* new OutOfStock({ sku, requested: quantity, available })
        }
        const reservationId = `res-${orderId}`
        reservations.set(reservationId, { orderId, sku, quantity })
        const unitPrice = catalog[sku]!.price
        yield* trace.record({
          orderId,
          actor: "inventory.reserve",
          kind: "command",
          text: `reserved ${quantity} × ${sku} @ ${unitPrice} (${available - quantity} left)`
        })
        return { reservationId, unitPrice }
      }),

    release: ({ reservationId }) =>
      Effect.gen(function*() {
        const held = reservations.get(reservationId)
        if (held === undefined) return { released: false }
        reservations.delete(reservationId)
        yield* Ref.update(stock, (s) => new Map(s).set(held.sku, (s.get(held.sku) ?? 0) + held.quantity))
        yield* trace.record({
          orderId: held.orderId,
          actor: "inventory.release",
          kind: "command",
          text: `released ${held.quantity} × ${held.sku}`
        })
        return { released: true }
      }),

    "acme-priority-pick": (order) =>
      trace.record({
        orderId: order.orderId,
        actor: "inventory.acme-priority-pick",
        kind: "event",
        text: `acme order: ${order.quantity} × ${order.sku} goes to the priority picking line`
      })
  })
}))

// ---------------------------------------------------------------------------------------------

class MailBounced extends Data.TaggedError("MailBounced")<{ readonly email: string }> {
  override get message() {
    return `550 mailbox unavailable: ${this.email}`
  }
}

export const BillingLive = Layer.unwrap(Effect.gen(function*() {
  const trace = yield* Trace

  return Service.toLayer(Billing, {
    charge: ({ amount, card, email, orderId }) =>
      Effect.gen(function*() {
        const slow = card === SLOW_CARD
        yield* trace.record({
          orderId,
          actor: "billing.charge",
          kind: "command",
          text: `charging ${amount} to card …${card.slice(-4)}${slow ? " (issuer is slow)" : ""}`
        })
        yield* Effect.sleep(slow ? "1 second" : "5 millis")
        return { chargeId: `ch-${orderId}`, orderId, amount, email }
      }),

    "fraud-review": (order) =>
      trace.record({
        orderId: order.orderId,
        actor: "billing.fraud-review",
        kind: "event",
        text: `total ${order.total} > 100: queued for fraud review`
      }),

    "send-receipt": (receipt, event) =>
      Effect.gen(function*() {
        const bounced = receipt.email.endsWith(".invalid")
        yield* trace.record({
          orderId: receipt.orderId,
          actor: "billing.send-receipt",
          kind: "event",
          text: bounced
            ? `attempt ${event.attempt}: mail to ${receipt.email} bounced`
            : `receipt for ${receipt.amount} mailed to ${receipt.email}`
        })
        if (bounced) return yield* new MailBounced({ email: receipt.email })
      })
  })
}))

// ---------------------------------------------------------------------------------------------

export const OrdersLive = Layer.unwrap(Effect.gen(function*() {
  const trace = yield* Trace
  const inventory = yield* Client.make(Inventory, { timeout: "2 seconds" })
  const billing = yield* Client.make(Billing, { timeout: "2 seconds" })

  return Service.toLayer(Orders, {
    place: ({ card, email, orderId, quantity, sku }) =>
      Effect.gen(function*() {
        // The context of the message being handled: who asked, for which tenant, in which conversation.
        const { principalId } = yield* MessageContext
        yield* trace.record({
          orderId,
          actor: "orders.place",
          kind: "command",
          text: `placing ${quantity} × ${sku} for ${principalId ?? "anonymous"}`
        })
        const { reservationId, unitPrice } = yield* inventory.reserve({ orderId, sku, quantity })
        const total = unitPrice * quantity
        const charge = billing.charge({ orderId, amount: total, card, email }, { timeout: "200 millis" })
        const { chargeId } = yield* charge.pipe(
          Effect.catchTag("Timeout", (timeout) =>
            Effect.gen(function*() {
              const text = `Timeout: ${timeout.message}`
              yield* trace.record({ orderId, actor: "orders.place", kind: "timeout", text })
              return yield* new PaymentUnavailable({ orderId, reason: timeout.message })
            })),
          // Compensate: give the stock back whenever the charge did not go through.
          Effect.onError(() =>
            inventory.release({ reservationId }, { retry: Schedule.recurs(2) }).pipe(Effect.ignore({ log: true }))
          )
        )
        return { orderId, sku, quantity, total, chargeId }
      }).pipe(orDieOnCallError)
  })
}))

// ---------------------------------------------------------------------------------------------

/** Picks the order id out of a dead letter's original event, when it has one. */
const orderIdOf = Schema.decodeUnknownOption(Schema.Struct({ data: Schema.Struct({ orderId: Schema.String }) }))

export const OpsLive = Layer.unwrap(Effect.gen(function*() {
  const trace = yield* Trace
  return Service.toLayer(Ops, {
    "dead-letters": (letter) =>
      trace.record({
        orderId: Option.match(orderIdOf(letter.event), { onNone: () => "?", onSome: (e) => e.data.orderId }),
        actor: "ops.dead-letters",
        kind: "dead-letter",
        attempts: letter.attempts,
        text: `${letter.service}/${letter.subscription} gave up after ${letter.attempts} attempts: ${letter.error}`
      })
  })
}))

/** All four services, sharing one trace, over whichever bridge is provided. */
export const ShopLive = Layer.mergeAll(InventoryLive, BillingLive, OrdersLive, OpsLive)
