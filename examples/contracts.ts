/**
 * Contracts of the example shop: schemas, commands, subscriptions and services only.
 *
 * This is the module other teams import to call a service; it holds no implementation.
 * `orders.place` reserves stock (`inventory.reserve`) and charges the customer (`billing.charge`);
 * both emit events that the subscriptions below select by content.
 */
import { Schedule, Schema } from "effect"
import { Command, Service, Subscription } from "../src/index.ts"

// ---------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------

/** Not enough stock to reserve. */
export class OutOfStock extends Schema.TaggedError<OutOfStock>()("OutOfStock", {
  sku: Schema.String,
  requested: Schema.Int,
  available: Schema.Int
}) {}

/** The card issuer refused the charge. */
export class PaymentDeclined extends Schema.TaggedError<PaymentDeclined>()("PaymentDeclined", {
  orderId: Schema.String,
  reason: Schema.String
}) {}

/** Billing did not answer in time; the order was not placed and its stock was released. */
export class PaymentUnavailable extends Schema.TaggedError<PaymentUnavailable>()("PaymentUnavailable", {
  orderId: Schema.String,
  reason: Schema.String
}) {}

// ---------------------------------------------------------------------------------------------
// inventory
// ---------------------------------------------------------------------------------------------

export const Reserve = Command.make("reserve", {
  input: Schema.Struct({ orderId: Schema.String, sku: Schema.String, quantity: Schema.Int }),
  output: Schema.Struct({ reservationId: Schema.String, unitPrice: Schema.Finite }),
  errors: [OutOfStock]
})

export const Release = Command.make("release", {
  input: Schema.Struct({ reservationId: Schema.String }),
  output: Schema.Struct({ released: Schema.Boolean }),
  idempotent: true
})

/** The payload of `order.placed`, the output of `orders.place`. */
export const OrderPlaced = Schema.Struct({
  orderId: Schema.String,
  sku: Schema.String,
  quantity: Schema.Int,
  total: Schema.Finite,
  chargeId: Schema.String
})

/** Tenant `acme` has a dedicated warehouse: its orders are picked with priority. */
export const AcmePriorityPick = Subscription.make("acme-priority-pick", {
  filter: { eventName: "order.placed", tenantId: "acme" },
  payload: OrderPlaced,
  delivery: "shared"
})

export const Inventory = Service.make("inventory", "1", {
  commands: [Reserve, Release],
  subscriptions: [AcmePriorityPick]
})

// ---------------------------------------------------------------------------------------------
// billing
// ---------------------------------------------------------------------------------------------

/** The payload of `payment.charged`, the output of `billing.charge`. */
export const Charged = Schema.Struct({
  chargeId: Schema.String,
  orderId: Schema.String,
  amount: Schema.Finite,
  email: Schema.String
})

export const Charge = Command.make("charge", {
  input: Schema.Struct({ orderId: Schema.String, amount: Schema.Finite, card: Schema.String, email: Schema.String }),
  output: Charged,
  errors: [PaymentDeclined],
  emits: "payment.charged"
})

/** Orders over 100 get a fraud review: a filter on the payload. */
export const FraudReview = Subscription.make("fraud-review", {
  filter: { eventName: "order.placed", data: { total: [{ numeric: [">", 100] }] } },
  payload: OrderPlaced,
  delivery: "shared"
})

/** Mails a receipt per charge; a bouncing mailbox is retried twice, 10 ms apart, then dead-lettered. */
export const SendReceipt = Subscription.make("send-receipt", {
  filter: { eventName: "payment.charged" },
  payload: Charged,
  delivery: "shared",
  retry: Schedule.spaced("10 millis").pipe(Schedule.upTo({ times: 2 }))
})

export const Billing = Service.make("billing", "1", {
  commands: [Charge],
  subscriptions: [FraudReview, SendReceipt]
})

// ---------------------------------------------------------------------------------------------
// orders
// ---------------------------------------------------------------------------------------------

export const Place = Command.make("place", {
  input: Schema.Struct({
    orderId: Schema.String,
    sku: Schema.String,
    quantity: Schema.Int,
    card: Schema.String,
    email: Schema.String
  }),
  output: OrderPlaced,
  errors: [OutOfStock, PaymentDeclined, PaymentUnavailable],
  emits: "order.placed"
})

export const Orders = Service.make("orders", "1", { commands: [Place] })

// ---------------------------------------------------------------------------------------------
// operations
// ---------------------------------------------------------------------------------------------

/** Every event some subscription gave up on. */
export const DeadLetters = Subscription.make("dead-letters", {
  filter: { eventName: Subscription.DEAD_LETTER },
  payload: Subscription.DeadLetter,
  delivery: "shared"
})

/** The on-call desk: watches the dead-letter stream. */
export const Ops = Service.make("ops", "1", { subscriptions: [DeadLetters] })
