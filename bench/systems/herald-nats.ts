/**
 * `herald-nats`: Herald on the NATS bridge (`NatsBridge.layer`). Each role (calculator, caller,
 * publisher, each subscriber) builds its own bridge, so it has its own NATS connection. A fixed
 * subject prefix keeps the benchmark apart from tests running on the same server; its event stream
 * (`HERALDBENCH_EVENTS`) is reused across runs.
 */
import { NatsBridge } from "../../src/index.ts"
import { heraldSystem } from "../lib/herald.ts"

export const NATS_SERVER = "127.0.0.1:4222"

export const system = heraldSystem({
  shared: false,
  bridge: (role) => NatsBridge.layer({ servers: NATS_SERVER, name: `herald-bench-${role}`, subjectPrefix: "heraldbench" })
})
