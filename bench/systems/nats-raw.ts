/**
 * `nats-raw`: the ceiling over NATS, with `@nats-io/transport-node` as its own docs suggest (the
 * client sets TCP_NODELAY itself). Command: the caller publishes `{a, b}` as JSON with a reply
 * subject `<inbox>.<n>` and matches replies through one wildcard subscription on `<inbox>.*`
 * (a 503 status reply is "no responders"; a 100 ms sweep times out calls older than the timeout);
 * the service answers from a queue-group subscription. Fanout: plain publish, and 4 subscriber
 * connections with a plain subscription each. Every role has its own connection.
 */
import { connect, createInbox, type NatsConnection } from "@nats-io/transport-node"
import type { SystemModule } from "../lib/types.ts"
import { named, pendingCalls } from "../lib/util.ts"

const SERVERS = "127.0.0.1:4222"


const open = (role: string): Promise<NatsConnection> => connect({ servers: SERVERS, name: `nats-raw-${role}`, timeout: 3000 })

const closeAll = async (conns: ReadonlyArray<NatsConnection>) => {
  await Promise.allSettled(conns.map((nc) => nc.drain()))
}

export const system: SystemModule = {
  command: async ({ runId, timeoutMs }) => {
    const subject = `bench.${runId}.calculator.add`
    const service = await open("service")
    service.subscribe(subject, {
      queue: "calculator",
      callback: (err, msg) => {
        if (err !== null) return
        const { a, b } = msg.json<{ a: number; b: number }>()
        msg.respond(JSON.stringify({ sum: a + b }))
      }
    })
    await service.flush()

    const caller = await open("caller")
    const inbox = createInbox()
    const pending = pendingCalls(timeoutMs)
    caller.subscribe(`${inbox}.*`, {
      callback: (err, msg) => {
        if (err !== null) return
        const id = msg.subject.slice(inbox.length + 1)
        if (msg.headers?.code === 503) pending.reject(id, named("NoResponders", `no responders on ${subject}`))
        else pending.resolve(id, msg.json<{ sum: number }>())
      }
    })
    await caller.flush()

    return {
      add: (a, b) =>
        pending.call((id) => caller.publish(subject, JSON.stringify({ a, b }), { reply: `${inbox}.${id}` })),
      close: async () => {
        pending.close()
        await closeAll([caller, service])
      }
    }
  },

  fanout: async (deliver, subscribers, { runId }) => {
    const subject = `bench.${runId}.added`
    const subs: Array<NatsConnection> = []
    for (let k = 0; k < subscribers; k++) {
      const nc = await open(`subscriber-${k + 1}`)
      nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err === null) deliver(k, msg.json<{ sum: number }>().sum)
        }
      })
      await nc.flush()
      subs.push(nc)
    }
    const publisher = await open("publisher")
    return {
      publish: (sum) => publisher.publish(subject, JSON.stringify({ sum })),
      close: () => closeAll([publisher, ...subs])
    }
  }
}
