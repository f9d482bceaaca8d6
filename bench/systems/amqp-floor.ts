/**
 * `amqp-floor`: what no implementation of Herald's design over RabbitMQ can do without, measured
 * with the raw baseline's own client code (`amqpSystem` in `amqp-raw.ts`): Herald's envelopes
 * encoded and decoded by its codec, the contracts' schemas at both ends, the bridge's message
 * properties, events persistent and confirmed through a topic exchange. No Effect runtime, no
 * metrics. `amqp-floor / amqp-raw` bounds what `herald-amqp / amqp-raw` can reach.
 */
import { heraldEnvelopes } from "../lib/payloads.ts"
import { amqpSystem } from "./amqp-raw.ts"

export const system = amqpSystem({ payloads: heraldEnvelopes, design: true })
