/**
 * Two or more checkouts of Herald side by side over RabbitMQ: `node bench/amqp-ab.ts <C> <dir>…`.
 *
 * Like `bench/runtime-ab.ts`, but through the AMQP bridge and a real broker: each checkout (a
 * `git worktree` sharing this checkout's `node_modules` through a symlink) gets its own calculator
 * service and caller, each on its own connection, under its own name prefix, all in this one process.
 * The builds take turns, 16 blocks each (1 000 calls at C=1, 5 000 otherwise, C callers in closed
 * loops through `ManagedRuntime.runPromise`), and the script prints each build's median wall time and
 * CPU time per call, and the median of the per-block ratios to the first build. Run both orders: the
 * build listed second tends to pay a few per cent for it.
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { median } from "./lib/util.ts"

const URL = "amqp://guest:guest@127.0.0.1:5672"
const [concurrencyArg = "", ...dirs] = process.argv.slice(2)
const concurrency = Number(concurrencyArg)
if (!(Number.isInteger(concurrency) && concurrency > 0) || dirs.length === 0) {
  console.error("usage: node bench/amqp-ab.ts <concurrency> <herald checkout>…")
  process.exit(2)
}

type Add = (input: { a: number; b: number }) => Effect.Effect<{ readonly sum: number }>

/** Starts one build's calculator and caller; returns a block of `n` checked calls. */
const setUp = async (dir: string, i: number) => {
  const { AmqpBridge, Client, Service } = await import(`${dir}/src/index.ts`)
  const { Calculator } = await import(`${dir}/bench/lib/contracts.ts`)
  const prefix = `amqp-ab-${process.pid}-${i}`
  const live = Service.toLayer(Calculator, { add: ({ a, b }: { a: number; b: number }) => Effect.succeed({ sum: a + b }) })
  const service = ManagedRuntime.make(live.pipe(Layer.provideMerge(AmqpBridge.layer({ urls: URL, connectionName: `${prefix}-service`, prefix }))))
  await service.context()
  const caller = ManagedRuntime.make(AmqpBridge.layer({ urls: URL, connectionName: `${prefix}-caller`, prefix }))
  const calc: { readonly add: Add } = await caller.runPromise(Client.make(Calculator, { timeout: 5000 }))
  const block = async (n: number) => {
    let left = n
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        const a = left--
        const { sum } = await caller.runPromise(calc.add({ a, b: 1 }))
        if (sum !== a + 1) throw new Error(`add(${a}, 1) returned ${sum}`)
      }
    }))
  }
  return { block, close: () => Promise.all([caller.dispose(), service.dispose()]) }
}

const builds = []
for (let i = 0; i < dirs.length; i++) builds.push(await setUp(dirs[i]!, i))
const n = concurrency === 1 ? 1_000 : 5_000
for (const b of builds) await b.block(n) // warm-up
const wall = dirs.map(() => [] as Array<number>)
const cpu = dirs.map(() => [] as Array<number>)
for (let round = 0; round < 16; round++) {
  for (let i = 0; i < builds.length; i++) {
    const cpu0 = process.cpuUsage()
    const wall0 = performance.now()
    await builds[i]!.block(n)
    const took = performance.now() - wall0
    const used = process.cpuUsage(cpu0)
    wall[i]!.push((took * 1000) / n)
    cpu[i]!.push((used.user + used.system) / n)
  }
}
const ratio = (xs: ReadonlyArray<number>, base: ReadonlyArray<number>) => median(xs.map((x, r) => x / base[r]!)).toFixed(3)
dirs.forEach((dir, i) => {
  const vsFirst = i === 0 ? "" : `; per-block ratio to the first: wall ${ratio(wall[i]!, wall[0]!)}, CPU ${ratio(cpu[i]!, cpu[0]!)}`
  console.log(`C=${concurrency} ${dir}: ${median(wall[i]!).toFixed(1)} µs wall, ${median(cpu[i]!).toFixed(1)} µs CPU per call${vsFirst}`)
})
await Promise.all(builds.map((b) => b.close()))
process.exit(0)
