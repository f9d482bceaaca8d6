/**
 * Herald's runtime alone, two builds side by side: `node bench/runtime-ab.ts <command|event> <dir>…`.
 *
 * Each `<dir>` is a checkout of Herald (e.g. `git worktree add ../herald-before <rev>`, sharing this
 * checkout's `node_modules` through a symlink). Every build runs in this one process over an
 * in-process bridge that does nothing but hand bytes over (no broker, no copies; the service answers
 * in a fiber of its own, a microtask later, as over a socket), and the builds take turns: 20 blocks
 * each, interleaved, the median of their CPU µs per call (C=64, through `ManagedRuntime.runPromise`
 * and `Client.make`) or per delivery (4 subscribing services of one event). Interleaving in one
 * process cancels most of the drift of a shared machine, which moves separate runs of `bench/cpu.ts`
 * by ±15 %; differences of a few per cent show.
 */
import { type Context, Effect, Exit, Layer, ManagedRuntime } from "effect"
import { median } from "./lib/util.ts"

const [workload = "", ...dirs] = process.argv.slice(2)
if ((workload !== "command" && workload !== "event") || dirs.length === 0) {
  console.error("usage: node bench/runtime-ab.ts <command|event> <herald checkout>…")
  process.exit(2)
}

type Block = (n: number) => Promise<void>
type Handler = (message: unknown) => Effect.Effect<void>

/** Sets up one build's calculator and caller, or its 4 subscribers; returns a block of `n` operations. */
const setUp = async (dir: string): Promise<Block> => {
  const { Bridge, Client, Event, Service } = await import(`${dir}/src/index.ts`)
  const { Added, Calculator, subscriberService } = await import(`${dir}/bench/lib/contracts.ts`)
  let served: { readonly handle: Handler; readonly context: Context.Context<never> } | undefined
  const subscribers: Array<{ readonly handle: Handler; readonly context: Context.Context<never> }> = []
  let published: Uint8Array | undefined
  /** Runs the served command in a fiber of its own, a microtask later; `answer` gets the reply bytes. */
  const serve = (bytes: Uint8Array, answer: (reply: Uint8Array) => void) =>
    queueMicrotask(() => {
      const message = { bytes, reply: (reply: Uint8Array) => Effect.sync(() => queueMicrotask(() => answer(reply))) }
      Effect.runForkWith(served!.context)(served!.handle(message))
    })
  const bridge = {
    name: "in-process",
    capabilities: { durable: true, persistent: true },
    health: Effect.succeed("connected"),
    pendingRequests: Effect.succeed(0),
    publish: (_route: unknown, bytes: Uint8Array) => Effect.sync(() => void (published = bytes)),
    serve: (_address: unknown, handle: Handler) =>
      Effect.map(Effect.context<never>(), (context) => void (served = { handle, context })),
    // the 4 subscriptions to `added` (not the services' discovery subscriptions)
    subscribe: (spec: { readonly subscription: string }, handle: Handler) =>
      Effect.map(Effect.context<never>(), (context) => {
        if (spec.subscription === "on-added") subscribers.push({ handle, context })
      }),
    request: (_address: unknown, bytes: Uint8Array) =>
      Effect.callback<Uint8Array>((resume) => serve(bytes, (reply) => resume(Effect.succeed(reply)))),
    // used by builds that have it (and ignored by those that do not)
    startRequest: (_address: unknown, bytes: Uint8Array, _expiresAt: number, done: (exit: Exit.Exit<Uint8Array>) => void) => {
      let waiting = true
      serve(bytes, (reply) => waiting && done(Exit.succeed(reply)))
      return () => void (waiting = false)
    }
  }
  const bridgeLayer = Layer.succeed(Bridge.Bridge, bridge)
  if (workload === "command") {
    const live = Service.toLayer(Calculator, { add: ({ a, b }: { a: number; b: number }) => Effect.succeed({ sum: a + b }) })
    const runtime = ManagedRuntime.make(live.pipe(Layer.provideMerge(bridgeLayer)))
    const calc: { readonly add: (input: { a: number; b: number }) => Effect.Effect<{ readonly sum: number }> } =
      await runtime.runPromise(Client.make(Calculator, { timeout: 5000 }))
    return async (n) => {
      let left = n
      await Promise.all(Array.from({ length: 64 }, async () => {
        while (left > 0) {
          const a = left--
          const { sum }: { readonly sum: number } = await runtime.runPromise(calc.add({ a, b: 1 }))
          if (sum !== a + 1) throw new Error(`add(${a}, 1) returned ${sum}`)
        }
      }))
    }
  }
  let received = 0
  const layers = [0, 1, 2, 3].map((k) =>
    Service.toLayer(subscriberService(k), { "on-added": () => Effect.sync(() => void received++) })
  )
  const runtime = ManagedRuntime.make(Layer.mergeAll(layers[0], layers[1], layers[2], layers[3]).pipe(Layer.provideMerge(bridgeLayer)))
  await runtime.context()
  await runtime.runPromise(Event.publish(Added, { sum: 1 }))
  const bytes = published!
  return async (n) => {
    const goal = received + n
    for (let i = 0; i < n; i += subscribers.length) {
      for (const s of subscribers) Effect.runForkWith(s.context)(s.handle({ bytes, deliveryCount: 1 }))
      if (i % 256 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await new Promise((resolve) => setImmediate(resolve))
    if (received < goal) throw new Error(`${goal - received} deliveries missing`)
  }
}

const blocks = await Promise.all(dirs.map(setUp))
const n = workload === "command" ? 10_000 : 40_000
for (const block of blocks) await block(n) // warm-up
const samples: Array<Array<number>> = dirs.map(() => [])
for (let round = 0; round < 20; round++) {
  for (let i = 0; i < blocks.length; i++) {
    const before = process.cpuUsage()
    await blocks[i]!(n)
    const used = process.cpuUsage(before)
    samples[i]!.push((used.user + used.system) / n)
  }
}
dirs.forEach((dir, i) => console.log(`${workload} ${dir}: ${median(samples[i]!).toFixed(2)} µs CPU per ${workload === "command" ? "call" : "delivery"}`))
