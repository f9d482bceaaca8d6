import { MemoryBridge } from "../../src/index.ts"
import * as BridgeSuite from "../../src/testing/BridgeSuite.ts"

BridgeSuite.run("memory", MemoryBridge.layer, { routingRuns: 100, quietPeriod: "20 millis" })
