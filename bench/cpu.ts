/**
 * CPU cost per operation of one system, for A/B comparisons while optimising:
 * `node bench/cpu.ts <system> <command|fanout> [concurrency=64] [operations=50000]`.
 *
 * Unlike `npm run bench` (throughput in a fixed window), it runs a fixed number of operations after
 * a warm-up and prints one JSON line with the process's CPU time (user + system) per call or per
 * delivery, and the wall-clock rate. CPU per operation moves less than throughput on a shared
 * machine; compare two builds by alternating runs and taking medians. Profile with
 * `node --cpu-prof bench/cpu.ts …`. Every result is checked: a wrong sum or a missing delivery throws.
 */
import { SUBSCRIBERS, type SystemModule } from "./lib/types.ts"
import { systemById } from "./systems/index.ts"

const [id = "", workload = "command", concurrencyArg = "64", operationsArg = "50000"] = process.argv.slice(2)
const info = systemById(id)
if (info === undefined || (workload !== "command" && workload !== "fanout")) {
  console.error("usage: node bench/cpu.ts <system> <command|fanout> [concurrency=64] [operations=50000]")
  process.exit(2)
}
const concurrency = Number(concurrencyArg)
const operations = Number(operationsArg)
const { system } = (await import(`./systems/${info.file}`)) as { system: SystemModule }
const setup = { timeoutMs: 5000, runId: Math.random().toString(36).slice(2, 10) }

/** Runs `work`, returning CPU µs per operation and operations per wall-clock second. */
const measure = async (work: () => Promise<void>, perOp: number) => {
  const cpu0 = process.cpuUsage()
  const wall0 = performance.now()
  await work()
  const wall = performance.now() - wall0
  const cpu = process.cpuUsage(cpu0)
  return { cpu_us_per_op: Number(((cpu.user + cpu.system) / perOp).toFixed(2)), ops_per_s: Math.round((perOp / wall) * 1000) }
}

if (workload === "command") {
  const target = await system.command(setup)
  const calls = async (n: number) => {
    let left = n
    const worker = async () => {
      while (left > 0) {
        const a = left--
        const { sum } = await target.add(a, 1)
        if (sum !== a + 1) throw new Error(`add(${a}, 1) returned ${sum}`)
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
  }
  await calls(Math.min(operations, 5000))
  console.log(JSON.stringify({ system: id, workload, concurrency, operations, ...(await measure(() => calls(operations), operations)) }))
  await target.close()
} else {
  let received = 0
  let wake: Array<() => void> = []
  const wakeAll = () => {
    const waiting = wake
    wake = []
    for (const resume of waiting) resume()
  }
  const target = await system.fanout(() => {
    received++
    wakeAll()
  }, SUBSCRIBERS, setup)
  /** Resolves once `done()` holds, re-checking after every delivery and every settled publish. */
  const until = async (done: () => boolean) => {
    while (!done()) await new Promise<void>((resume) => wake.push(resume))
  }
  // publishes still waiting for their acknowledgement (counted, not kept: keeping every promise
  // would promote them all to the old generation and bill the collector to the system), and the
  // first one that failed
  let unsettled = 0
  let failure: unknown = undefined
  const settled = () => {
    unsettled--
    wakeAll()
  }
  // publishes n events, at most `concurrency` of them not yet received by every subscriber; then
  // waits until every event was received and every publish settled
  const events = async (n: number) => {
    const start = received
    for (let sent = 0; sent < n; sent++) {
      await until(() => sent * SUBSCRIBERS - (received - start) < concurrency * SUBSCRIBERS)
      const p = target.publish(sent)
      if (p !== undefined) {
        unsettled++
        p.then(settled, (e: unknown) => {
          failure ??= e
          settled()
        })
      }
      if (failure !== undefined) throw failure
    }
    await until(() => received - start >= n * SUBSCRIBERS)
    await until(() => unsettled === 0)
    if (failure !== undefined) throw failure
  }
  await events(Math.min(operations, 2000))
  const deliveries = operations * SUBSCRIBERS
  console.log(JSON.stringify({ system: id, workload, window: concurrency, events: operations, ...(await measure(() => events(operations), deliveries)) }))
  await target.close()
}
process.exit(0)
