/**
 * `direct`: the in-process ceiling. The command is a plain `await add()` of an async function; the
 * fanout is a Node `EventEmitter` with 4 listeners (one per subscriber), emitted synchronously.
 */
import { EventEmitter } from "node:events"
import type { SystemModule } from "../lib/types.ts"

const add = async (a: number, b: number): Promise<{ readonly sum: number }> => ({ sum: a + b })

export const system: SystemModule = {
  command: async () => ({ add, close: async () => {} }),

  fanout: async (deliver, subscribers) => {
    const emitter = new EventEmitter()
    for (let k = 0; k < subscribers; k++) emitter.on("added", (event: { readonly sum: number }) => deliver(k, event.sum))
    return {
      publish: (sum) => void emitter.emit("added", { sum }),
      close: async () => void emitter.removeAllListeners()
    }
  }
}
