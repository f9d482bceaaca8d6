/**
 * A log-bucket latency histogram (HDR-like): constant memory, ~1 % relative precision, O(1) record.
 *
 * Values are milliseconds (`performance.now()` differences, sub-microsecond in Node). Bucket i > 0
 * covers [1.01^(i-1), 1.01^i) × 10 ns; bucket 0 holds everything below 10 ns. Percentiles return
 * the geometric middle of the bucket they fall in (never more than the largest value recorded).
 */
const GROWTH = 1.01
const LOG_GROWTH = Math.log(GROWTH)
/** Bucket unit: 10 ns, in ms. */
const UNIT_MS = 1e-5
/** Up to 10 ns × 1.01^2800 ≈ 3.5 h; larger values land in the last bucket. */
const BUCKETS = 2800

export class Histogram {
  readonly counts = new Float64Array(BUCKETS)
  count = 0
  max = 0

  record(ms: number): void {
    const units = ms / UNIT_MS
    let i = units < 1 ? 0 : 1 + Math.floor(Math.log(units) / LOG_GROWTH)
    if (i >= BUCKETS) i = BUCKETS - 1
    this.counts[i]!++
    this.count++
    if (ms > this.max) this.max = ms
  }

  /** The value (ms) below which a fraction `q` (0..1) of the recorded values lie; 0 when empty. */
  percentile(q: number): number {
    if (this.count === 0) return 0
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!
      if (seen >= rank) {
        if (i === 0) return Math.min(UNIT_MS / 2, this.max)
        return Math.min(UNIT_MS * GROWTH ** (i - 1) * Math.sqrt(GROWTH), this.max)
      }
    }
    return this.max
  }
}
