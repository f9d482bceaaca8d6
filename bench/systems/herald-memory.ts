/**
 * `herald-memory`: Herald on the memory bridge. Every role (calculator, caller, publisher, the 4
 * subscribing services) lives in one runtime on one `MemoryBridge.layer`, as in the quickstart.
 */
import { MemoryBridge } from "../../src/index.ts"
import { heraldSystem } from "../lib/herald.ts"

export const system = heraldSystem({ shared: true, bridge: () => MemoryBridge.layer })
