/**
 * The example shop behind the HTTP gateway (`npm start`): which bridge it runs on, how callers
 * authenticate, and how its commands map to routes.
 *
 * - `POST /api/orders` places an order (201; `OutOfStock` → 409, `PaymentDeclined` → 402).
 * - `POST /api/inventory/v1/reserve` and `DELETE /api/reservations/:reservationId` reach inventory.
 * - Every route needs `Authorization: Bearer <token>`: `alice-token` (alice, tenant acme) or
 *   `bob-token` (bob, tenant globex). The principal and tenant flow into every message the call causes.
 */
import { Effect, Layer } from "effect"
import { type Bridge, BridgeError, MemoryBridge, NatsBridge } from "../src/index.ts"
import * as HttpGateway from "../src/http/HttpGateway.ts"
import { Inventory, Orders, Place, Release } from "./contracts.ts"

/** The demo's bearer tokens and who they stand for. */
export const tokens: Readonly<Record<string, HttpGateway.Principal>> = {
  "alice-token": { principalId: "alice", tenantId: "acme" },
  "bob-token": { principalId: "bob", tenantId: "globex" }
}

/** The gateway in front of the shop's `orders` and `inventory` services. */
export const ShopGateway = (options: { readonly port: number; readonly host?: string | undefined }) =>
  HttpGateway.layer({
    services: [Orders, Inventory],
    port: options.port,
    host: options.host,
    basePath: "/api",
    auth: HttpGateway.bearer((token) => {
      const principal = tokens[token]
      return principal === undefined
        ? Effect.fail(new HttpGateway.Unauthorized({ reason: "unknown token" }))
        : Effect.succeed(principal)
    }),
    routes: [
      HttpGateway.route(Place, { path: "/orders", status: 201, summary: "Place an order" }),
      HttpGateway.route(Release, { method: "DELETE", path: "/reservations/:reservationId" })
    ],
    errorStatus: { OutOfStock: 409, PaymentDeclined: 402 },
    timeout: "5 seconds",
    openapi: { title: "Herald example shop", version: "1" },
    // served without authentication, like /metrics: fine on the loopback address the example uses
    liveView: true
  })

/** The bridges `HERALD_BRIDGE` can select. */
export const bridgeNames = ["memory", "nats", "mqtt", "amqp"] as const

/** A bridge name. */
export type BridgeName = (typeof bridgeNames)[number]

/** Reads `HERALD_BRIDGE` (default `memory`); anything else is an error naming the choices. */
export const bridgeNameOf = (value: string | undefined): BridgeName => {
  const name = (value ?? "memory").trim().toLowerCase()
  const found = bridgeNames.find((n) => n === name)
  if (found === undefined) throw new Error(`HERALD_BRIDGE=${value}: use one of ${bridgeNames.join(", ")}`)
  return found
}

interface BridgeModule {
  readonly layer: (config?: Record<string, unknown>) => Layer.Layer<Bridge.Bridge, BridgeError>
}

/** MQTT and AMQP are loaded only when selected, so the example runs on memory and NATS without them. */
const loadBridge = (name: "mqtt" | "amqp", config: Record<string, unknown>): Layer.Layer<Bridge.Bridge, BridgeError> =>
  Layer.unwrap(
    Effect.tryPromise({
      try: async () => {
        const file = name === "mqtt" ? "Mqtt.ts" : "Amqp.ts"
        const module = (await import(new URL(`../src/bridges/${file}`, import.meta.url).href)) as Partial<BridgeModule>
        if (typeof module.layer !== "function") throw new Error("no `layer` export")
        return module.layer(config)
      },
      catch: (cause) => new BridgeError({ bridge: name, reason: `cannot load the ${name} bridge: ${String(cause)}` })
    })
  )

/**
 * The bridge Layer for a name, on the broker's default local address or `HERALD_BROKER_URL`
 * (NATS `servers`, MQTT `url`, AMQP `urls`).
 */
export const bridgeLayer = (name: BridgeName, brokerUrl?: string): Layer.Layer<Bridge.Bridge, BridgeError> => {
  switch (name) {
    case "memory":
      return MemoryBridge.layer
    case "nats":
      return NatsBridge.layer(brokerUrl === undefined ? {} : { servers: brokerUrl })
    case "mqtt":
      return loadBridge("mqtt", brokerUrl === undefined ? {} : { url: brokerUrl })
    case "amqp":
      return loadBridge("amqp", brokerUrl === undefined ? {} : { urls: brokerUrl })
  }
}

/** Ready-to-paste `curl` lines for a running gateway. */
export const curlLines = (url: string): ReadonlyArray<string> => {
  const json = `-H 'content-type: application/json'`
  const alice = `-H 'authorization: Bearer alice-token'`
  const order = (orderId: string, quantity: number) =>
    JSON.stringify({ orderId, sku: "widget", quantity, card: "4242-4242-4242-4242", email: "alice@acme.test" })
  return [
    `# place an order as alice (tenant acme): 201 with the order`,
    `curl -si -X POST ${url}/api/orders ${alice} ${json} -d '${order("o-100", 2)}'`,
    `# more than the stock: 409 with the declared error OutOfStock`,
    `curl -si -X POST ${url}/api/orders ${alice} ${json} -d '${order("o-101", 500)}'`,
    `# no credentials: 401 problem document; invalid input: 400 listing the issues`,
    `curl -si -X POST ${url}/api/orders ${json} -d '{}'`,
    `curl -si -X POST ${url}/api/orders ${alice} ${json} -d '{"orderId":7}'`,
    `# the OpenAPI 3.1 document, and readiness`,
    `curl -s ${url}/openapi.json`,
    `curl -si ${url}/readyz`
  ]
}
