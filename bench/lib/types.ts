/**
 * The contract between the harness and the systems it measures, and the shape of one measurement.
 *
 * A system module (`bench/systems/<id>.ts`) exports `system: SystemModule`. The harness calls
 * `command()` or `fanout()` once in a fresh child process, drives the returned target with the
 * workload's closed loop, and calls `close()` at the end. Every role of a broker system (service,
 * caller, publisher, each subscriber) must open its own connection inside these functions.
 */

/** One command workload target: `add` is what one closed-loop worker awaits. */
export interface CommandTarget {
  /** Calls `calculator` v1 `add`. Rejects on error; a timeout rejects with an error whose `_tag` or `name` is `"Timeout"`. */
  readonly add: (a: number, b: number) => Promise<{ readonly sum: number }>
  readonly close: () => Promise<void>
}

/** Called by a subscriber's handler for every `added` event it receives. `subscriber` is 0..3. */
export type Deliver = (subscriber: number, sum: number) => void

/** One fanout workload target: publishes event `added` `{ sum }`. */
export interface FanoutTarget {
  /** Publishes one event. May return before delivery; rejects (or throws) when the publish failed. */
  readonly publish: (sum: number) => Promise<unknown> | void
  readonly close: () => Promise<void>
}

/** Options the harness passes to a system. */
export interface SetupOptions {
  /** Per-call timeout the caller should apply (ms). */
  readonly timeoutMs: number
  /** A unique token for this process, to keep subjects/topics of concurrent runs apart. */
  readonly runId: string
}

/** What every system module exports as `system`. */
export interface SystemModule {
  readonly command: (options: SetupOptions) => Promise<CommandTarget>
  readonly fanout: (deliver: Deliver, subscribers: number, options: SetupOptions) => Promise<FanoutTarget>
}

/** Registry entry: metadata only, so the parent process never loads a client library. */
export interface SystemInfo {
  readonly id: string
  /** Module path relative to `bench/systems/`. */
  readonly file: string
  readonly description: string
  /** For Herald and floor systems: the id of the raw baseline its ratios are computed against. */
  readonly baseline?: string
  /**
   * A floor system: the raw baseline's client code doing only the per-message work Herald's design
   * requires (`bench/lib/payloads.ts`). Its ratio bounds what the Herald system over the same broker
   * can reach. Not run by default, and never given a memory run.
   */
  readonly floor?: boolean
  /** The broker it needs; the harness skips the system when it does not accept connections. */
  readonly broker?: { readonly name: string; readonly host: string; readonly port: number }
}

export type Workload = "command" | "fanout"

/** Subscribers in the fanout workload. */
export const SUBSCRIBERS = 4

/** One measurement as printed (one JSON line). */
export interface Measurement {
  readonly system: string
  readonly workload: Workload
  /** Closed-loop workers (command) or the outstanding window W (fanout). */
  readonly concurrency: number
  readonly round: number | "memory"
  readonly ok: boolean
  /** Why the run failed (probe failure, errors, crash, …); absent when ok. */
  readonly failure?: string
  readonly window_s: number
  /** calls/s (command) or deliveries/s summed over the subscribers (fanout). */
  readonly ops_per_s: number
  readonly ops: number
  readonly p50_ms: number
  readonly p99_ms: number
  readonly max_ms: number
  readonly errors: number
  readonly timeouts: number
  readonly wrong: number
  readonly lost: number
  readonly duplicates: number
  readonly rss_mb: number
  /** Set by the parent when the broker restarted while this measurement ran. */
  readonly broker_note?: string
  /** Memory runs only: RSS samples `[seconds into the window, MB]`. */
  readonly rss_samples?: ReadonlyArray<readonly [number, number]>
  /** Memory runs: heap in use after a full GC at the baseline instant and at the end, MB. */
  readonly heap_gc_baseline_mb?: number | undefined
  readonly heap_gc_end_mb?: number | undefined
  /** Memory runs: the size of V8's young generation (new space) at the baseline instant and at the end, MB. */
  readonly young_gen_baseline_mb?: number | undefined
  readonly young_gen_end_mb?: number | undefined
}
