/**
 * `herald-amqp`: Herald on the AMQP bridge (`AmqpBridge.layer`). Each role (calculator, caller,
 * publisher, each subscriber) builds its own bridge, so it has its own RabbitMQ connection. A fixed
 * name prefix keeps the benchmark apart from tests running on the same broker; its command and
 * subscription queues are transient, and its two durable exchanges (`heraldbench.events`,
 * `heraldbench.dead-letters`) and dead-letter queue are reused across runs.
 */
import { AmqpBridge } from "../../src/index.ts"
import { heraldSystem } from "../lib/herald.ts"

export const AMQP_URL = "amqp://guest:guest@127.0.0.1:5672"

export const system = heraldSystem({
  shared: false,
  bridge: (role) => AmqpBridge.layer({ urls: AMQP_URL, connectionName: `herald-bench-${role}`, prefix: "heraldbench" })
})
