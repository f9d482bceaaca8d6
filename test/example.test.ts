/** Runs the example shop scenario (examples/) and checks its trace. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, References } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { program as quickstart } from "../examples/quickstart.ts"
import { scenario } from "../examples/scenario.ts"
import type { Entry } from "../examples/trace.ts"

const by = (entries: ReadonlyArray<Entry>, actor: string) => entries.filter((e) => e.actor === actor)
const ordersOf = (entries: ReadonlyArray<Entry>) => [...new Set(entries.map((e) => e.orderId))].sort()

describe("example shop", () => {
  it.live("places orders, filters events, dead-letters, times out and propagates context", () =>
    Effect.gen(function*() {
      const entries = yield* scenario

      // outcomes seen by the top-level caller
      const outcome = (orderId: string) => by(entries, "client").find((e) => e.orderId === orderId)?.text ?? ""
      assert.include(outcome("o-1"), "placed, total 25")
      assert.include(outcome("o-2"), "placed, total 240")
      assert.include(outcome("o-3"), "placed, total 62.5")
      assert.include(outcome("o-4"), "PaymentUnavailable")
      assert.include(outcome("o-5"), "OutOfStock")
      assert.deepStrictEqual(ordersOf(by(entries, "orders.place")), ["o-1", "o-2", "o-3", "o-4", "o-5"])

      // orders.place called the other services' commands
      assert.deepStrictEqual(ordersOf(by(entries, "inventory.reserve")), ["o-1", "o-2", "o-3", "o-4", "o-5"])
      assert.deepStrictEqual(ordersOf(by(entries, "billing.charge")), ["o-1", "o-2", "o-3", "o-4"])

      // payload filter: only the order over 100
      const fraud = by(entries, "billing.fraud-review")
      assert.deepStrictEqual(fraud.map((e) => e.orderId), ["o-2"])

      // tenant filter: only acme's orders, each once
      const acme = by(entries, "inventory.acme-priority-pick")
      assert.deepStrictEqual(ordersOf(acme), ["o-1", "o-3"])
      assert.strictEqual(acme.length, 2)
      assert.isTrue(acme.every((e) => e.tenantId === "acme"))

      // the bouncing receipt was retried, then dead-lettered with the original tenant and correlation
      const letters = by(entries, "ops.dead-letters")
      assert.strictEqual(letters.length, 1)
      const letter = letters[0]!
      assert.strictEqual(letter.orderId, "o-2")
      assert.isAbove(letter.attempts ?? 0, 1)
      assert.strictEqual(letter.tenantId, "globex")
      assert.include(letter.text, "billing/send-receipt")
      assert.strictEqual(by(entries, "billing.send-receipt").filter((e) => e.orderId === "o-2").length, letter.attempts)

      // the slow charge timed out at the caller and the stock was released
      const timeouts = entries.filter((e) => e.kind === "timeout")
      assert.deepStrictEqual(timeouts.map((e) => e.orderId), ["o-4"])
      assert.include(timeouts[0]!.text, "Timeout")
      assert.deepStrictEqual(ordersOf(by(entries, "inventory.release")), ["o-4"])

      // context propagation: inside services, one correlation id per order, and the caller's tenant
      const services = entries.filter((e) => e.actor !== "client")
      for (const orderId of ordersOf(services)) {
        const group = services.filter((e) => e.orderId === orderId)
        assert.strictEqual(new Set(group.map((e) => e.correlationId)).size, 1, `one correlation id for ${orderId}`)
        assert.isDefined(group[0]!.correlationId)
        const tenant = orderId === "o-2" || orderId === "o-4" ? "globex" : "acme"
        assert.isTrue(group.every((e) => e.tenantId === tenant), `tenant ${tenant} for ${orderId}`)
      }
      assert.strictEqual(new Set(services.map((e) => e.correlationId)).size, 5)
    }).pipe(Effect.provideService(References.MinimumLogLevel, "Error")))

  it.effect("the README's quick start runs", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* quickstart, 42)
    }))

  it.live("`npm start` serves the shop over HTTP and stops cleanly on SIGINT, draining in-flight requests", () =>
    Effect.promise(() => runMainAndInterrupt()).pipe(Effect.map((run) => {
      assert.strictEqual(run.placed.status, 201, run.output)
      assert.deepStrictEqual(run.placed.body, { orderId: "o-100", sku: "widget", quantity: 2, total: 25, chargeId: "ch-o-100" })
      assert.strictEqual(run.unauthorized, 401)
      // the slow order was in flight when SIGINT arrived: it still got its answer (billing timed out → 422)
      assert.strictEqual(run.inFlight.status, 422, run.output)
      assert.strictEqual(run.inFlight.body._tag, "PaymentUnavailable")
      assert.strictEqual(run.code, 0, run.output)
      assert.isBelow(run.stoppedInMs, 5000)
      assert.include(run.output, "o-5 (tenant acme): 50 × gizmo → rejected: OutOfStock")
      assert.include(run.output, "curl -si -X POST")
      assert.include(run.output, "stopped")
    })))
})

interface MainRun {
  readonly output: string
  readonly placed: { readonly status: number; readonly body: unknown }
  readonly unauthorized: number
  readonly inFlight: { readonly status: number; readonly body: any }
  readonly code: number | null
  readonly stoppedInMs: number
}

/** Runs `examples/main.ts` as `npm start` does, on a free port; calls it; interrupts it with one call in flight. */
const runMainAndInterrupt = async (): Promise<MainRun> => {
  const root = fileURLToPath(new URL("..", import.meta.url))
  const child = spawn(process.execPath, ["examples/main.ts"], {
    cwd: root,
    env: { ...process.env, PORT: "0", HERALD_BRIDGE: "memory" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL line within 15 s:\n${output}`)), 15_000)
      const check = () => {
        const match = /listening on (http:\/\/[0-9.:]+)/.exec(output)
        if (match !== null) {
          clearTimeout(timer)
          child.stdout.off("data", check)
          resolve(match[1]!)
        }
      }
      child.stdout.on("data", check)
      child.once("exit", () => reject(new Error(`exited before listening:\n${output}`)))
    })
    const order = (orderId: string, card: string, token?: string) =>
      fetch(`${url}/api/orders`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
        body: JSON.stringify({ orderId, sku: "widget", quantity: 2, card, email: "alice@acme.test" })
      })
    const placed = await order("o-100", "4242-4242-4242-4242", "alice-token")
    const placedBody = await placed.json()
    const unauthorized = (await order("o-101", "4242-4242-4242-4242")).status
    // the slow card: billing takes a second, orders gives up after 200 ms
    const inFlight = order("o-102", "4000-0000-0000-3220", "alice-token").then(async (r) => ({ status: r.status, body: await r.json() }))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const start = performance.now()
    child.kill("SIGINT")
    const code = await exited
    return {
      output,
      placed: { status: placed.status, body: placedBody },
      unauthorized,
      inFlight: await inFlight,
      code,
      stoppedInMs: performance.now() - start
    }
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL")
  }
}
