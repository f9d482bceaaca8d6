/**
 * `mqtt-raw`: the ceiling over MQTT, with mqtt.js 5 as its docs suggest, MQTT 5 and QoS 0, and
 * TCP_NODELAY set on every socket (mqtt.js does not set it; Nagle's algorithm alone costs this
 * workload a multiple). Command: the caller publishes `{a, b}` as JSON with a Response Topic (its
 * own reply topic) and Correlation Data `<n>`, and matches replies through one subscription on that
 * topic (a 100 ms sweep times out calls older than the timeout); the service answers from a shared
 * subscription, echoing the correlation data. Fanout: plain QoS 0 publish, and 4 subscriber
 * connections with a plain subscription each. Every role has its own connection.
 */
import { connect, type MqttClient } from "mqtt"
import type { SystemModule } from "../lib/types.ts"
import { pendingCalls } from "../lib/util.ts"

const URL = "mqtt://127.0.0.1:1883"


/** Connects one role with MQTT 5 and TCP_NODELAY on its socket. */
const open = (role: string, runId: string): Promise<MqttClient> =>
  new Promise((resolve, reject) => {
    const client = connect(URL, { protocolVersion: 5, clientId: `mqtt-raw-${runId}-${role}`, connectTimeout: 3000, reconnectPeriod: 0 })
    const noDelay = () => (client.stream as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true)
    noDelay()
    client.once("connect", () => {
      noDelay()
      resolve(client)
    })
    client.once("error", (e) => {
      client.end(true)
      reject(e)
    })
  })

const closeAll = async (clients: ReadonlyArray<MqttClient>) => {
  await Promise.allSettled(clients.map((c) => c.endAsync()))
}

/** The raw mqtt.js system: request/response and pub/sub, one connection per role. */
export const system: SystemModule = {
  command: async ({ runId, timeoutMs }) => {
    const topic = `bench/${runId}/calculator/add`
    const service = await open("service", runId)
    service.on("message", (_topic, payload, packet) => {
      const responseTopic = packet.properties?.responseTopic
      if (responseTopic === undefined) return
      const { a, b } = JSON.parse(payload.toString()) as { a: number; b: number }
      service.publish(responseTopic, JSON.stringify({ sum: a + b }), {
        qos: 0,
        properties: packet.properties?.correlationData === undefined ? {} : { correlationData: packet.properties.correlationData }
      })
    })
    await service.subscribeAsync(`$share/calculator/${topic}`, { qos: 0 })

    const caller = await open("caller", runId)
    const replies = `bench/${runId}/reply/caller`
    const pending = pendingCalls(timeoutMs)
    caller.on("message", (_topic, payload, packet) => {
      const id = packet.properties?.correlationData?.toString()
      if (id !== undefined) pending.resolve(id, JSON.parse(payload.toString()) as { sum: number })
    })
    await caller.subscribeAsync(replies, { qos: 0 })

    return {
      add: (a, b) =>
        pending.call((id) =>
          caller.publish(topic, JSON.stringify({ a, b }), {
            qos: 0,
            properties: { responseTopic: replies, correlationData: Buffer.from(id) }
          })
        ),
      close: async () => {
        pending.close()
        await closeAll([caller, service])
      }
    }
  },

  fanout: async (deliver, subscribers, { runId }) => {
    const topic = `bench/${runId}/added`
    const subs: Array<MqttClient> = []
    for (let k = 0; k < subscribers; k++) {
      const client = await open(`subscriber-${k + 1}`, runId)
      client.on("message", (_topic, payload) => deliver(k, (JSON.parse(payload.toString()) as { sum: number }).sum))
      await client.subscribeAsync(topic, { qos: 0 })
      subs.push(client)
    }
    const publisher = await open("publisher", runId)
    return {
      publish: (sum) => void publisher.publish(topic, JSON.stringify({ sum }), { qos: 0 }),
      close: () => closeAll([publisher, ...subs])
    }
  }
}
