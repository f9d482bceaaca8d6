import v8 from "node:v8"

/**
 * Small helpers shared by the workload drivers: bounded waits, error classification, RSS sampling.
 */

/** The median of `xs` (the mean of the two middle values when there is an even number of them). */
export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

/** Resolves with the promise's value, or rejects with `Error(what)` after `ms`. */
export const within = <A>(ms: number, what: string, promise: Promise<A>): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** True for the timeouts of every system: Herald's `Timeout`, and the raw baselines' own `Timeout` errors. */
export const isTimeout = (e: unknown): boolean => {
  const err = e as { readonly _tag?: unknown; readonly name?: unknown } | null | undefined
  return err?._tag === "Timeout" || err?.name === "Timeout" || err?.name === "TimeoutError"
}

/** One line describing an error, for the failure reason. */
export const describe = (e: unknown): string => {
  if (e instanceof Error) {
    const tag = (e as { readonly _tag?: unknown })._tag
    return `${typeof tag === "string" ? tag : e.name}: ${e.message}`
  }
  try {
    return JSON.stringify(e) ?? String(e)
  } catch {
    return String(e)
  }
}

/** Resident set size in MB. */
export const rssMb = (): number => Math.round((process.memoryUsage.rss() / 1048576) * 10) / 10

/**
 * The heap in use right after a full garbage collection, in MB, when Node runs with `--expose-gc`
 * (memory runs do): the live data, without the slack V8 keeps while it sizes its heap.
 */
export const heapAfterGcMb = (): number | undefined => {
  const gc = (globalThis as { readonly gc?: () => void }).gc
  if (gc === undefined) return undefined
  gc()
  return Math.round((process.memoryUsage().heapUsed / 1048576) * 10) / 10
}

/**
 * The size V8 gives its young generation (new space) right now, in MB. Under a high allocation rate
 * V8 doubles it once enough bytes have survived scavenges: a one-time step in RSS that is not live data.
 */
export const youngGenerationMb = (): number | undefined => {
  const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")
  return space === undefined ? undefined : Math.round((space.space_size / 1048576) * 10) / 10
}

/** Samples RSS every `everyMs` when `tick` is called (from the hot loop: no timer needed). */
export class RssSampler {
  readonly samples: Array<readonly [number, number]> = []
  /** `heapAfterGcMb()` at the memory check's baseline instant (5 s into the window). */
  heapAtBaseline: number | undefined = undefined
  /** `youngGenerationMb()` at the same instant (read before that full GC). */
  youngAtBaseline: number | undefined = undefined
  private next: number
  private readonly origin: number
  private readonly everyMs: number
  private readonly enabled: boolean
  constructor(origin: number, everyMs: number, enabled: boolean) {
    this.origin = origin
    this.everyMs = everyMs
    this.enabled = enabled
    this.next = origin
  }
  tick(now: number): void {
    if (!this.enabled || now < this.next) return
    this.samples.push([Math.round(now - this.origin) / 1000, rssMb()])
    if (this.heapAtBaseline === undefined && now - this.origin >= 5000) {
      this.youngAtBaseline = youngGenerationMb()
      this.heapAtBaseline = heapAfterGcMb()
    }
    this.next += this.everyMs
    if (this.next < now) this.next = now + this.everyMs
  }
}

/** Counters every driver reports. */
export interface Tally {
  errors: number
  timeouts: number
  wrong: number
  lost: number
  duplicates: number
  firstProblem: string | undefined
}

export const newTally = (): Tally => ({ errors: 0, timeouts: 0, wrong: 0, lost: 0, duplicates: 0, firstProblem: undefined })

export const noteError = (tally: Tally, e: unknown): void => {
  if (isTimeout(e)) tally.timeouts++
  else tally.errors++
  tally.firstProblem ??= describe(e)
}

export const problems = (t: Tally): number => t.errors + t.timeouts + t.wrong + t.lost + t.duplicates

/** An Error whose `name` says what went wrong (`Timeout`, `NoResponders`), as the tally counts them. */
export const named = (name: string, message: string): Error => Object.assign(new Error(message), { name })

/**
 * The caller side of a raw request/reply baseline: calls waiting for their reply, keyed by a
 * correlation id, and one 100 ms sweep that fails calls older than the timeout.
 */
export interface PendingCalls {
  /** Registers a call under a new id, sends it with `send(id)`, and resolves with its reply. */
  readonly call: (send: (id: string) => void) => Promise<{ readonly sum: number }>
  /** Settles call `id` with its reply; unknown or timed-out ids are ignored. */
  readonly resolve: (id: string, reply: { readonly sum: number }) => void
  /** Fails call `id`; unknown or timed-out ids are ignored. */
  readonly reject: (id: string, error: Error) => void
  /** Stops the sweep. */
  readonly close: () => void
}

interface PendingCall {
  readonly resolve: (value: { readonly sum: number }) => void
  readonly reject: (e: Error) => void
  readonly at: number
}

/** Pending calls with a timeout sweep; `close` stops the sweep. */
export const pendingCalls = (timeoutMs: number): PendingCalls => {
  const pending = new Map<string, PendingCall>()
  let seq = 0
  const take = (id: string) => {
    const call = pending.get(id)
    if (call !== undefined) pending.delete(id)
    return call
  }
  const sweep = setInterval(() => {
    const limit = performance.now() - timeoutMs
    for (const [id, call] of pending) {
      if (call.at > limit) break // insertion order = age order
      pending.delete(id)
      call.reject(named("Timeout", `no reply within ${timeoutMs} ms`))
    }
  }, 100)
  return {
    call: (send) =>
      new Promise((resolve, reject) => {
        const id = String(++seq)
        pending.set(id, { resolve, reject, at: performance.now() })
        send(id)
      }),
    resolve: (id, reply) => take(id)?.resolve(reply),
    reject: (id, error) => take(id)?.reject(error),
    close: () => clearInterval(sweep)
  }
}
