/**
 * The live view in a real headless Chromium: the page lists the live services, and a command
 * invoked over HTTP shows up in the page's counter and event tail at its next poll.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, References } from "effect"
import { existsSync } from "node:fs"
import { chromium } from "playwright-core"
import { MemoryBridge } from "../../src/index.ts"
import * as HttpGateway from "../../src/http/HttpGateway.ts"
import { Calculator, CalculatorLive } from "../fixtures.ts"
import { Ghost } from "./fixtures.ts"

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"

const GatewayLive = HttpGateway.layer({ services: [Calculator, Ghost], port: 0, host: "127.0.0.1", liveView: true }).pipe(
  Layer.provide(Layer.mergeAll(CalculatorLive(), CalculatorLive())),
  Layer.provide(MemoryBridge.layer),
  Layer.provide(Layer.succeed(References.MinimumLogLevel, "None"))
)

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: CHROMIUM, headless: true })),
  (b) => Effect.promise(() => b.close())
)

describe("HttpGateway live view in Chromium", () => {
  it.live("the page lists the services, and a call changes its counter and its event tail", () =>
    Effect.gen(function*() {
      assert.isTrue(existsSync(CHROMIUM), `Chromium is needed at ${CHROMIUM} (apt-get install chromium)`)
      const { url } = yield* HttpGateway.Gateway
      const page = yield* Effect.flatMap(browser, (b) => Effect.promise(() => b.newPage()))
      yield* Effect.promise(() => page.goto(`${url}/`))
      const calls = page.locator(`[data-command="calculator/1/add"][data-metric="calls"]`)
      yield* Effect.promise(() => calls.waitFor({ timeout: 10_000 }))
      assert.strictEqual(yield* Effect.promise(() => calls.textContent()), "0")
      const instances = yield* Effect.promise(() => page.locator(`[data-instances="calculator/1"]`).textContent())
      assert.strictEqual(instances, "2 instances")
      assert.strictEqual(yield* Effect.promise(() => page.locator(`[data-instances="ghost/1"]`).textContent()), "0 instances")

      const response = yield* Effect.promise(() =>
        fetch(`${url}/calculator/v1/add`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ a: 20, b: 22 })
        })
      )
      assert.strictEqual(response.status, 200)
      // the page polls every second: wait for the counter and the tail to show the call
      yield* Effect.promise(() =>
        page.waitForFunction(
          `document.querySelector('[data-command="calculator/1/add"][data-metric="calls"]')?.textContent === "1"`,
          undefined,
          { timeout: 10_000 }
        )
      )
      const added = page.locator(`#events tr[data-event="added"]`)
      yield* Effect.promise(() => added.first().waitFor({ timeout: 10_000 }))
      assert.include(yield* Effect.promise(() => added.first().textContent()), "calculator v1")
      assert.strictEqual(yield* Effect.promise(() => added.first().locator("td").last().textContent()), "", "no payload by default")
    }).pipe(Effect.provide(GatewayLive)), 40_000)
})
