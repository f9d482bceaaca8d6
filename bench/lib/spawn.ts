/**
 * Parent side of one measurement: checks that a broker accepts connections, runs `bench/child.ts`
 * in a fresh Node process (`process.execPath`, so the same Node 24), and returns the measurement it
 * reports over IPC, or a failed measurement when it crashed, hung or said nothing.
 */
import { spawn } from "node:child_process"
import { createConnection } from "node:net"
import type { ChildSpec } from "../child.ts"
import type { Measurement } from "./types.ts"

const CHILD = new URL("../child.ts", import.meta.url).pathname
/** Setup, probe, grace after the window and closing, on top of warm-up + window (see child.ts). */
const CHILD_SLACK_MS = 45_000

/**
 * Whether something accepts TCP connections on host:port within `timeoutMs`, and the server's
 * identity when its greeting names one (NATS sends `INFO {"server_id": …}` first; it changes when
 * the server restarts, so a run can tell that the broker restarted under it).
 */
export const probeBroker = (host: string, port: number, timeoutMs = 1000): Promise<{ readonly up: boolean; readonly id?: string }> =>
  new Promise((resolve) => {
    const socket = createConnection({ host, port })
    let settled = false
    const done = (up: boolean, id?: string) => {
      if (settled) return
      settled = true
      socket.destroy()
      resolve(id === undefined ? { up } : { up, id })
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once("connect", () => setTimeout(() => done(true), 200)) // brokers that wait for the client say nothing
    socket.once("data", (data) => done(true, /"server_id":"([^"]+)"/.exec(data.toString())?.[1]))
    socket.once("error", () => done(false))
  })

const tail = (s: string, n = 600) => (s.length > n ? `…${s.slice(-n)}` : s).trim().replaceAll(/\s+/g, " ")

/** A measurement that produced no numbers. */
export const failedMeasurement = (spec: ChildSpec, failure: string): Measurement => ({
  system: spec.system,
  workload: spec.workload,
  concurrency: spec.concurrency,
  round: spec.round,
  ok: false,
  failure,
  window_s: spec.windowMs / 1000,
  ops_per_s: 0,
  ops: 0,
  p50_ms: 0,
  p99_ms: 0,
  max_ms: 0,
  errors: 0,
  timeouts: 0,
  wrong: 0,
  lost: 0,
  duplicates: 0,
  rss_mb: 0
})

/** The semi-space size V8 grows its young generation to under a high allocation rate (Node 24, 64-bit). */
const SEMI_SPACE_MB = 128

/**
 * Node flags of memory runs. `--expose-gc`: they force a GC to tell live data from heap slack.
 * `--min-semi-space-size`: V8 commits its young generation at full size from the start. Otherwise it
 * commits it page by page as the allocation rate demands, and on the fastest systems that one-off
 * step (~100 MB of RSS) falls inside the window, where the RSS check would read it as a leak.
 */
export const MEMORY_RUN_FLAGS: ReadonlyArray<string> = ["--expose-gc", `--min-semi-space-size=${SEMI_SPACE_MB}`]

export const runChild = (spec: ChildSpec): Promise<Measurement> =>
  new Promise((resolve) => {
    const flags = spec.sampleRss ? MEMORY_RUN_FLAGS : []
    const child = spawn(process.execPath, [...flags, CHILD, JSON.stringify(spec)], { stdio: ["ignore", "pipe", "pipe", "ipc"] })
    let output = ""
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000)
    }
    child.stdout?.on("data", keep)
    child.stderr?.on("data", keep)
    let result: Measurement | undefined
    child.on("message", (m) => {
      result = m as Measurement
    })
    const limit = spec.warmupMs + spec.windowMs + CHILD_SLACK_MS
    let killed = false
    const timer = setTimeout(() => {
      killed = true
      child.kill("SIGKILL")
    }, limit)
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      if (result !== undefined) return resolve(result)
      const why = killed ? `killed after ${limit} ms without a result` : `child exited (${signal ?? `code ${code}`}) without a result`
      resolve(failedMeasurement(spec, output === "" ? why : `${why}: ${tail(output)}`))
    })
  })
