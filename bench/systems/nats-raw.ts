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

const SERVERS = "127.0.0.1:4222"

interface Call {
  readonly resolve: (value: { readonly sum: number }) => void
  readonly reject: (e: Error) => void
  readonly at: number
}

const named = (name: string, message: string): Error => Object.assign(new Error(message), { name })

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
    const pending = new Map<number, Call>()
    let seq = 0
    caller.subscribe(`${inbox}.*`, {
      callback: (err, msg) => {
        if (err !== null) return
        const id = Number(msg.subject.slice(inbox.length + 1))
        const call = pending.get(id)
        if (call === undefined) return
        pending.delete(id)
        if (msg.headers?.code === 503) call.reject(named("NoResponders", `no responders on ${subject}`))
        else call.resolve(msg.json<{ sum: number }>())
      }
    })
    await caller.flush()
    const sweep = setInterval(() => {
      const limit = performance.now() - timeoutMs
      for (const [id, call] of pending) {
        if (call.at > limit) break // insertion order = age order
        pending.delete(id)
        call.reject(named("Timeout", `no reply within ${timeoutMs} ms`))
      }
    }, 100)

    return {
      add: (a, b) =>
        new Promise((resolve, reject) => {
          const id = ++seq
          pending.set(id, { resolve, reject, at: performance.now() })
          caller.publish(subject, JSON.stringify({ a, b }), { reply: `${inbox}.${id}` })
        }),
      close: async () => {
        clearInterval(sweep)
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
