/**
 * `npm run bench`: Herald against its baselines, as specified in BENCHMARK.md.
 *
 *   npm run bench [-- --quick] [--systems a,b] [--workloads command,fanout] [--rounds N] [--floors]
 *
 * Each measurement (system × workload × concurrency) runs in a fresh child process (bench/child.ts):
 * probe, warm-up (1 s), window (5 s). Rounds are interleaved: every round runs every cell on every
 * system, systems of one cell back to back, so a Herald row and its baseline are measured close in
 * time. Then, for each Herald system, one 30 s memory run of the command workload at C=64 checks
 * that RSS grows < 10 % after its first 5 s. A memory run warms up for 10 s and starts Node with V8's
 * young generation committed at full size (`MEMORY_RUN_FLAGS` in lib/spawn.ts): V8 sizes its heap
 * over its first collection cycles, and without both the check read that one-off sizing as growth
 * while the heap after a full GC stayed the same. `--quick`: 1 round, 0.5 s warm-up, 1.5 s window, a
 * 6 s memory run (so only its last second is checked).
 *
 * `--floors` adds the floor systems (`mqtt-floor`, `amqp-floor`): the raw baselines' client code doing
 * only the per-message work Herald's design requires; their ratio to the baseline bounds what
 * Herald over the same broker can reach. They run otherwise only when named in `--systems`.
 *
 * stdout: one JSON line per measurement, then the markdown table of medians and the memory
 * verdicts. stderr: the plan and progress. Exit code 1 when any run failed (errors, timeouts,
 * wrong results, lost or duplicate events, a crash) or memory grew too much. A system whose broker
 * does not accept connections is skipped with a message (that alone does not fail the run).
 */
import { parseArgs } from "node:util"
import type { ChildSpec } from "./child.ts"
import { type Cell, memoryVerdict, table } from "./lib/report.ts"
import { probeBroker, runChild } from "./lib/spawn.ts"
import type { Measurement, SystemInfo, Workload } from "./lib/types.ts"
import { SYSTEMS } from "./systems/index.ts"

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    systems: { type: "string" },
    workloads: { type: "string" },
    rounds: { type: "string" },
    floors: { type: "boolean", default: false },
    help: { type: "boolean", default: false }
  }
})
if (values.help) {
  console.log("npm run bench -- [--quick] [--systems a,b] [--workloads command,fanout] [--rounds N] [--floors]")
  console.log(`systems: ${SYSTEMS.map((s) => s.id).join(", ")}`)
  process.exit(0)
}

const list = (s: string | undefined) => (s === undefined ? undefined : s.split(",").map((x) => x.trim()).filter((x) => x !== ""))
const wantedSystems = list(values.systems)
const unknown = wantedSystems?.filter((id) => !SYSTEMS.some((s) => s.id === id)) ?? []
const workloads = (list(values.workloads) ?? ["command", "fanout"]) as Array<Workload>
const badWorkloads = workloads.filter((w) => w !== "command" && w !== "fanout")
if (unknown.length > 0 || badWorkloads.length > 0) {
  console.error(`unknown ${unknown.length > 0 ? `system(s) ${unknown.join(", ")}` : `workload(s) ${badWorkloads.join(", ")}`}`)
  console.error(`systems: ${SYSTEMS.map((s) => s.id).join(", ")}; workloads: command, fanout`)
  process.exit(2)
}
const systems: ReadonlyArray<SystemInfo> = SYSTEMS.filter((s) =>
  wantedSystems === undefined ? values.floors || s.floor !== true : wantedSystems.includes(s.id) || (values.floors && s.floor === true)
)

const quick = values.quick
const rounds = values.rounds !== undefined ? Math.max(1, parseInt(values.rounds, 10) || 1) : quick ? 1 : 3
const warmupMs = quick ? 500 : 1000
const windowMs = quick ? 1500 : 5000
const memoryWindowMs = quick ? 6000 : 30_000
/**
 * V8 grows its old generation's limit over its first mark-compact cycles (~10–15 s at the memory
 * bridge's ~50 k calls/s): RSS climbs to its plateau meanwhile with the heap after a full GC unchanged.
 */
const memoryWarmupMs = quick ? 2000 : 10_000
/** RSS growth is measured from this many seconds into the memory window to its end. */
const memoryBaselineS = 5
/** Observed per-process cost besides warm-up and window: spawn, imports, connections, probe, close. */
const OVERHEAD_MS = 1000

const cells: Array<Cell> = []
if (workloads.includes("command")) cells.push({ workload: "command", concurrency: 1 }, { workload: "command", concurrency: 64 })
if (workloads.includes("fanout")) cells.push({ workload: "fanout", concurrency: 64 })
const memorySystems = workloads.includes("command") ? systems.filter((s) => s.baseline !== undefined && s.floor !== true) : []

const measurements = rounds * cells.length * systems.length
const plannedMs = measurements * (warmupMs + windowMs + OVERHEAD_MS) + memorySystems.length * (memoryWarmupMs + memoryWindowMs + OVERHEAD_MS)
const mmss = (ms: number) => `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`
console.error(
  `bench: ${systems.map((s) => s.id).join(", ")} × ${cells.map((c) => `${c.workload} C=${c.concurrency}`).join(", ")} × ${rounds} round(s)` +
    ` = ${measurements} runs of ${warmupMs / 1000} s + ${windowMs / 1000} s, plus ${memorySystems.length} memory run(s) of ${memoryWarmupMs / 1000} s + ${memoryWindowMs / 1000} s`
)
console.error(`bench: planned duration ≈ ${mmss(plannedMs)} (Node ${process.version})`)
if (plannedMs > 15 * 60_000) console.error("bench: WARNING: more than the 15 minutes a full run may take; drop rounds or systems")

const results: Array<Measurement> = []
const skipped = new Map<string, string>()
const began = performance.now()
let done = 0

const measure = async (s: SystemInfo, spec: ChildSpec): Promise<Measurement | undefined> => {
  done++
  const label = `[${done}/${measurements + memorySystems.length}] round ${spec.round} ${s.id} ${spec.workload} C=${spec.concurrency}`
  const broker = s.broker
  const before = broker === undefined ? undefined : await probeBroker(broker.host, broker.port)
  if (broker !== undefined && before?.up !== true) {
    const why = `${broker.name} is not accepting connections on ${broker.host}:${broker.port}`
    if (!skipped.has(s.id)) console.error(`bench: SKIPPING ${s.id}: ${why}`)
    skipped.set(s.id, why)
    console.log(JSON.stringify({ system: s.id, workload: spec.workload, concurrency: spec.concurrency, round: spec.round, skipped: why }))
    return undefined
  }
  let m = await runChild(spec)
  if (broker !== undefined && before?.id !== undefined) {
    const after = await probeBroker(broker.host, broker.port)
    if (after.id !== before.id) {
      const note = `${broker.name} restarted during this run (${after.up ? "server id changed" : "now down"})`
      m = { ...m, broker_note: note, ...(m.ok ? {} : { failure: `${m.failure} [${note}]` }) }
    }
  }
  const { rss_samples: _samples, ...line } = m
  results.push(m)
  console.error(`${label}: ${m.ops_per_s.toLocaleString("en-US")}/s p50 ${m.p50_ms} ms p99 ${m.p99_ms} ms ${m.ok ? "ok" : `FAILED: ${m.failure}`}`)
  if (spec.round !== "memory") console.log(JSON.stringify(line))
  return m
}

for (let round = 1; round <= rounds; round++) {
  for (const cell of cells) {
    for (const s of systems) {
      await measure(s, { system: s.id, workload: cell.workload, concurrency: cell.concurrency, round, warmupMs, windowMs, sampleRss: false })
    }
  }
}

const memoryLines: Array<string> = []
let memoryFailed = false
for (const s of memorySystems) {
  const m = await measure(s, {
    system: s.id, workload: "command", concurrency: 64, round: "memory", warmupMs: memoryWarmupMs, windowMs: memoryWindowMs, sampleRss: true
  })
  if (m === undefined) {
    memoryLines.push(`- ${s.id}: skipped (${skipped.get(s.id)})`)
    continue
  }
  const v = memoryVerdict(m.rss_samples ?? [], memoryWindowMs / 1000, memoryBaselineS)
  const { rss_samples: _samples, ...line } = m
  console.log(JSON.stringify({
    ...line,
    rss_at_baseline_mb: v === undefined ? undefined : Math.round(v.atBaseline * 10) / 10,
    rss_end_mb: v === undefined ? undefined : Math.round(v.end * 10) / 10,
    rss_max_mb: v?.max,
    rss_growth_pct: v === undefined ? undefined : Math.round(v.growthPct * 10) / 10,
    memory: v?.pass && m.ok ? "PASS" : "FAIL"
  }))
  const pass = v !== undefined && v.pass && m.ok
  memoryFailed ||= !pass
  memoryLines.push(
    v === undefined
      ? `- ${s.id}: **FAIL** (no RSS samples${m.ok ? "" : `; run failed: ${m.failure}`})`
      : `- ${s.id}: RSS ${v.atBaseline.toFixed(1)} MB at ${memoryBaselineS} s → ${v.end.toFixed(1)} MB at ${memoryWindowMs / 1000} s ` +
        `(max ${v.max.toFixed(1)} MB): growth ${v.growthPct.toFixed(1)} % → **${pass ? "PASS" : "FAIL"}**` +
        ` (${m.ops_per_s.toLocaleString("en-US")} calls/s${m.ok ? "" : `; run failed: ${m.failure}`})` +
        (m.heap_gc_baseline_mb === undefined || m.heap_gc_end_mb === undefined
          ? ""
          : `; heap after a full GC ${m.heap_gc_baseline_mb} → ${m.heap_gc_end_mb} MB`) +
        (m.young_gen_baseline_mb === undefined || m.young_gen_end_mb === undefined
          ? ""
          : `; V8 young generation ${m.young_gen_baseline_mb} → ${m.young_gen_end_mb} MB`)
  )
}

const failed = results.filter((r) => !r.ok)
console.log("")
console.log(`### Medians of ${rounds} round(s), ${warmupMs / 1000} s warm-up + ${windowMs / 1000} s window (${new Date().toISOString().slice(0, 10)}, Node ${process.version})`)
console.log("")
console.log(table(cells, systems, results, skipped))
console.log("")
console.log("Throughput × baseline: Herald ÷ its baseline (direct for memory, nats-raw for NATS; higher is better). p50 × baseline: lower is better.")
if (systems.some((s) => s.floor === true)) {
  console.log("Floor rows: the baseline's client code doing only the per-message work Herald's design requires; their ratio bounds the Herald row's.")
}
if (memorySystems.length > 0) {
  console.log("")
  console.log(`### Memory: command C=64, ${memoryWarmupMs / 1000} s warm-up + ${memoryWindowMs / 1000} s window, RSS growth after the first ${memoryBaselineS} s must stay < 10 %`)
  console.log("")
  for (const line of memoryLines) console.log(line)
}
for (const [id, why] of skipped) console.log(`\nSKIPPED ${id}: ${why}`)
if (failed.length > 0) {
  console.log(`\n**${failed.length} FAILED run(s):**`)
  for (const f of failed) console.log(`- ${f.system} ${f.workload} C=${f.concurrency} round ${f.round}: ${f.failure}`)
}
console.error(`bench: took ${mmss(performance.now() - began)} (planned ${mmss(plannedMs)})`)
process.exit(failed.length > 0 || memoryFailed ? 1 : 0)
