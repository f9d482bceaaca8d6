/**
 * Write coalescing for mqtt.js clients, shared by the MQTT bridge and the benchmark's floor system.
 */
import type { MqttClient } from "mqtt"

/**
 * Coalesces what one pass of the event loop writes to a client's socket into one system call:
 * mqtt.js flushes every packet on its own. Call the returned function before each publish; the
 * socket is corked at the first one and uncorked by the task `schedule` runs (after the pass: for
 * the bridge, once the Effect fibers resumed in it have run).
 */
export const writeBatcher = (schedule: (task: () => void) => void) => {
  let corked: { readonly uncork: () => void } | undefined
  const uncork = () => {
    const stream = corked
    corked = undefined
    stream?.uncork()
  }
  return (client: MqttClient): void => {
    const stream = client.stream as unknown as { readonly cork?: () => void; readonly uncork?: () => void } | undefined
    if (corked !== undefined || !client.connected || stream?.cork === undefined || stream.uncork === undefined) return
    stream.cork()
    corked = stream as { readonly uncork: () => void }
    schedule(uncork)
  }
}
