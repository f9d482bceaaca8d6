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
 */
import * as amqp from "amqplib"
import type { ChannelModel } from "amqplib"
import type { SystemModule } from "../lib/types.ts"
import { pendingCalls } from "../lib/util.ts"

const URL = "amqp://guest:guest@127.0.0.1:5672"
const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


const open = async (role: string): Promise<ChannelModel> => {
  const conn = await amqp.connect(URL, { noDelay: true, timeout: 3000, clientProperties: { connection_name: `amqp-raw-${role}` } })
  conn.on("error", () => undefined)
  return conn
}

const closeAll = async (conns: ReadonlyArray<ChannelModel>) => {
  await Promise.allSettled(conns.map((c) => c.close()))
}

export const system: SystemModule = {
  command: async ({ runId, timeoutMs }) => {
    const queue = `bench.${runId}.calculator.add`
    const service = await open("service")
    const serving = await service.createChannel()
    await serving.assertQueue(queue, { durable: false, autoDelete: true })
    await serving.prefetch(100)
    await serving.consume(queue, (msg) => {
      if (msg === null) return
      const { a, b } = JSON.parse(msg.content.toString()) as { a: number; b: number }
      serving.sendToQueue(msg.properties.replyTo as string, Buffer.from(JSON.stringify({ sum: a + b })), {
        correlationId: msg.properties.correlationId as string
      })
      serving.ack(msg)
    })

    const caller = await open("caller")
    const calling = await caller.createChannel()
    const pending = pendingCalls(timeoutMs)
    await calling.consume(DIRECT_REPLY_TO, (msg) => {
      if (msg === null) return
      pending.resolve(msg.properties.correlationId as string, JSON.parse(msg.content.toString()) as { sum: number })
    }, { noAck: true })

    return {
      add: (a, b) =>
        pending.call((id) =>
          calling.sendToQueue(queue, Buffer.from(JSON.stringify({ a, b })), { replyTo: DIRECT_REPLY_TO, correlationId: id })
        ),
      close: async () => {
        pending.close()
        await closeAll([caller, service])
      }
    }
  },

  fanout: async (deliver, subscribers, { runId }) => {
    const exchange = `bench.${runId}.added`
    const subs: Array<ChannelModel> = []
    for (let k = 0; k < subscribers; k++) {
      const conn = await open(`subscriber-${k + 1}`)
      const ch = await conn.createChannel()
      await ch.assertExchange(exchange, "fanout", { durable: false, autoDelete: true })
      const { queue } = await ch.assertQueue("", { exclusive: true })
      await ch.bindQueue(queue, exchange, "")
      await ch.consume(queue, (msg) => {
        if (msg !== null) deliver(k, (JSON.parse(msg.content.toString()) as { sum: number }).sum)
      }, { noAck: true })
      subs.push(conn)
    }
    const publisher = await open("publisher")
    const publishing = await publisher.createChannel()
    return {
      publish: (sum) => void publishing.publish(exchange, "", Buffer.from(JSON.stringify({ sum }))),
      close: () => closeAll([publisher, ...subs])
    }
  }
}
