/**
 * `amqp-raw`: the ceiling over RabbitMQ, with amqplib as RabbitMQ's own tutorials use it, and
 * TCP_NODELAY set (`noDelay`; amqplib leaves Nagle's algorithm on by default). Command: the RPC
 * tutorial with direct reply-to: the caller publishes `{a, b}` as JSON to the service's queue with
 * `reply_to: amq.rabbitmq.reply-to` and a correlation id, and matches replies from one no-ack
 * consumer (a 100 ms sweep times out calls older than the timeout); the service consumes its queue
 * with a prefetch of 100 (Herald's default), replies to `reply_to` and acknowledges. Fanout: the
 * publish/subscribe tutorial: plain publishes to a fanout exchange, and 4 subscriber connections,
 * each with an exclusive server-named queue bound to it and a no-ack consumer. Every role has its
 * own connection.
 *
 * `amqpSystem({ design: true, … })` is `amqp-floor` (see `amqp-floor.ts`): the same client code
 * doing what Herald's design requires on the wire.
 */
import * as amqp from "amqplib"
import type { ChannelModel, Options } from "amqplib"
import * as Topology from "../../src/internal/amqpTopology.ts"
import { type Payloads, plainJson } from "../lib/payloads.ts"
import type { SystemModule } from "../lib/types.ts"
import { pendingCalls } from "../lib/util.ts"

const URL = "amqp://guest:guest@127.0.0.1:5672"
const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
/** The bridge's queue options for command queues, and (the same) for non-durable `shared` subscriptions. */
const TRANSIENT = Topology.commandQueueOptions
/** The bridge's routing key of `added` from `publisher` (no tenant), and its binding key of a subscription to it. */
const ROUTING_KEY = Topology.routingKey({ id: "", eventName: "added", senderService: "publisher" })!
const BINDING_KEY = Topology.bindingKeys({ eventNames: ["added"], tenantIds: undefined })[0]!

const open = async (role: string, coalesce = false): Promise<ChannelModel> => {
  const conn = await amqp.connect(URL, { noDelay: true, timeout: 3000, clientProperties: { connection_name: `amqp-raw-${role}` } })
  conn.on("error", () => undefined)
  if (coalesce) Topology.coalesceWrites(conn)
  return conn
}

const closeAll = async (conns: ReadonlyArray<ChannelModel>) => {
  await Promise.allSettled(conns.map((c) => c.close()))
}

export interface AmqpSystemOptions {
  readonly payloads: Payloads
  /**
   * What the AMQP bridge puts on the wire besides the payload: commands `mandatory` with an
   * `expiration` and a content type; events persistent, with a content type, message id and type,
   * published on a confirm channel (a publish ends with its confirm) to a topic exchange; one
   * transient queue per subscribing service (each subscriber is a service with `shared` delivery);
   * and, as the bridge does, the frames of one pass coalesced into one socket write.
   */
  readonly design: boolean
}

export const amqpSystem = ({ design, payloads }: AmqpSystemOptions): SystemModule => ({
  command: async ({ runId, timeoutMs }) => {
    const queue = `bench.${runId}.calculator.add`
    const service = await open("service", design)
    const serving = await service.createChannel()
    await serving.assertQueue(queue, design ? TRANSIENT : { durable: false, autoDelete: true })
    await serving.prefetch(100)
    await serving.consume(queue, (msg) => {
      if (msg === null) return
      const reply = payloads.serve(msg.content)
      if (reply !== undefined) {
        serving.sendToQueue(msg.properties.replyTo as string, reply, {
          correlationId: msg.properties.correlationId as string,
          ...(design ? { contentType: Topology.CONTENT_TYPE } : {})
        })
      }
      serving.ack(msg)
    })

    const caller = await open("caller", design)
    const calling = await caller.createChannel()
    const pending = pendingCalls(timeoutMs)
    await calling.consume(DIRECT_REPLY_TO, (msg) => {
      if (msg === null) return
      const id = msg.properties.correlationId as string
      try {
        pending.resolve(id, payloads.result(msg.content))
      } catch (e) {
        pending.reject(id, e as Error)
      }
    }, { noAck: true })
    const expiration = String(timeoutMs)

    return {
      add: (a, b) =>
        pending.call((id) =>
          calling.sendToQueue(
            queue,
            payloads.call(a, b, timeoutMs),
            design
              ? { replyTo: DIRECT_REPLY_TO, correlationId: id, expiration, mandatory: true, contentType: Topology.CONTENT_TYPE }
              : { replyTo: DIRECT_REPLY_TO, correlationId: id }
          )
        ),
      close: async () => {
        pending.close()
        await closeAll([caller, service])
      }
    }
  },

  fanout: async (deliver, subscribers, { runId }) => {
    const exchange = `bench.${runId}.added`
    const routingKey = design ? ROUTING_KEY : ""
    const subs: Array<ChannelModel> = []
    for (let k = 0; k < subscribers; k++) {
      const conn = await open(`subscriber-${k + 1}`, design)
      const ch = await conn.createChannel()
      await ch.assertExchange(exchange, design ? "topic" : "fanout", { durable: false, autoDelete: true })
      const { queue } = design
        ? await ch.assertQueue(`bench.${runId}.subscriber-${k + 1}`, TRANSIENT)
        : await ch.assertQueue("", { exclusive: true })
      await ch.bindQueue(queue, exchange, design ? BINDING_KEY : "")
      await ch.consume(queue, (msg) => {
        if (msg !== null) deliver(k, payloads.delivered(msg.content))
      }, { noAck: true })
      subs.push(conn)
    }
    const publisher = await open("publisher", design)
    if (!design) {
      const publishing = await publisher.createChannel()
      return {
        publish: (sum) => void publishing.publish(exchange, routingKey, payloads.event(sum)),
        close: () => closeAll([publisher, ...subs])
      }
    }
    const confirming = await publisher.createConfirmChannel()
    let seq = 0
    return {
      publish: (sum) =>
        new Promise<void>((resolve, reject) => {
          const options: Options.Publish = { persistent: true, contentType: Topology.CONTENT_TYPE, messageId: String(++seq), type: "added" }
          confirming.publish(exchange, routingKey, payloads.event(sum), options, (err) => (err ? reject(err) : resolve()))
        }),
      close: () => closeAll([publisher, ...subs])
    }
  }
})

export const system = amqpSystem({ payloads: plainJson, design: false })
