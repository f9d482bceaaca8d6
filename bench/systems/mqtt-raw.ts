/**
 * `mqtt-raw`: the ceiling over MQTT, with mqtt.js 5 as its docs suggest, MQTT 5 and QoS 0, and
 * TCP_NODELAY set on every socket (mqtt.js does not set it; Nagle's algorithm alone costs this
 * workload a multiple). Command: the caller publishes `{a, b}` as JSON with a Response Topic (its
 * own reply topic) and Correlation Data `<n>`, and matches replies through one subscription on that
 * topic (a 100 ms sweep times out calls older than the timeout); the service answers from a shared
 * subscription, echoing the correlation data. Fanout: plain QoS 0 publish, and 4 subscriber
 * connections with a plain subscription each. Every role has its own connection.
 *
 * `mqttSystem({ design: true, … })` is `mqtt-floor` (see `mqtt-floor.ts`): the same client code
 * doing what Herald's design requires on the wire.
 */
import { connect, type IClientPublishOptions, type MqttClient } from "mqtt"
import { Codec } from "../../src/index.ts"
import { writeBatcher } from "../../src/internal/mqttWrites.ts"
import { type Payloads, plainJson } from "../lib/payloads.ts"
import type { SystemModule } from "../lib/types.ts"
import { pendingCalls } from "../lib/util.ts"

const URL = "mqtt://127.0.0.1:1883"
/** What the bridge declares as every message's content type: the default codec's. */
const CONTENT_TYPE = Codec.json.contentType

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

export interface MqttSystemOptions {
  readonly payloads: Payloads
  /**
   * What the MQTT bridge puts on the wire besides the payload: a content type on every message, a
   * message expiry on commands, events published with QoS 1 and confirmed by their PUBACK, and
   * subscriptions with a subscription identifier, shared ones (`$share/<service>…`) for the
   * subscribers (each subscriber is a service with `shared` delivery); and, as the bridge does,
   * what one pass of the event loop writes to a socket coalesced into one write.
   */
  readonly design: boolean
}

/** The mqtt.js system: request/response and pub/sub, one connection per role. */
export const mqttSystem = ({ design, payloads }: MqttSystemOptions): SystemModule => {
  // one batcher per connection, as each bridge has its own
  const batcher = () => design ? writeBatcher(setImmediate) : () => undefined
  return {
    command: async ({ runId, timeoutMs }) => {
      const topic = `bench/${runId}/calculator/add`
      const service = await open("service", runId)
      const batchService = batcher()
      service.on("message", (_topic, payload, packet) => {
        const responseTopic = packet.properties?.responseTopic
        if (responseTopic === undefined) return
        const reply = payloads.serve(payload)
        if (reply === undefined) return
        const correlationData = packet.properties?.correlationData
        batchService(service)
        service.publish(responseTopic, reply, {
          qos: 0,
          properties: {
            ...(correlationData === undefined ? {} : { correlationData }),
            ...(design ? { contentType: CONTENT_TYPE } : {})
          }
        })
      })
      await service.subscribeAsync(`$share/calculator/${topic}`, { qos: 0 })

      const caller = await open("caller", runId)
      const batchCaller = batcher()
      const replies = `bench/${runId}/reply/caller`
      const pending = pendingCalls(timeoutMs)
      caller.on("message", (_topic, payload, packet) => {
        const id = packet.properties?.correlationData?.toString()
        if (id === undefined) return
        try {
          pending.resolve(id, payloads.result(payload))
        } catch (e) {
          pending.reject(id, e as Error)
        }
      })
      await caller.subscribeAsync(replies, { qos: 0 })
      const expirySeconds = Math.ceil(timeoutMs / 1000)

      return {
        add: (a, b) =>
          pending.call((id) => {
            batchCaller(caller)
            caller.publish(topic, payloads.call(a, b, timeoutMs), {
              qos: 0,
              properties: design
                ? { responseTopic: replies, correlationData: Buffer.from(id), messageExpiryInterval: expirySeconds, contentType: CONTENT_TYPE }
                : { responseTopic: replies, correlationData: Buffer.from(id) }
            })
          }),
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
        client.on("message", (_topic, payload) => deliver(k, payloads.delivered(payload)))
        await client.subscribeAsync(
          design ? `$share/subscriber-${k + 1}/${topic}` : topic,
          design ? { qos: 0, properties: { subscriptionIdentifier: 1 } } : { qos: 0 }
        )
        subs.push(client)
      }
      const publisher = await open("publisher", runId)
      const batchPublisher = batcher()
      const options: IClientPublishOptions = design ? { qos: 1, properties: { contentType: CONTENT_TYPE } } : { qos: 0 }
      return {
        publish: design
          ? (sum) => {
            batchPublisher(publisher)
            return publisher.publishAsync(topic, payloads.event(sum), options)
          }
          : (sum) => void publisher.publish(topic, payloads.event(sum), options),
        close: () => closeAll([publisher, ...subs])
      }
    }
  }
}

export const system = mqttSystem({ payloads: plainJson, design: false })
