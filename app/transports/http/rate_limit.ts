/**
 * A token bucket per key (a guest's invitation token): bursts up to `capacity`, then `perSecond`.
 * One teammate's runaway script then slows only that teammate, never the host's process.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
  ) {}

  /** Takes one request's worth; false when the key has used its share for now. */
  take(key: string, at = Date.now()): boolean {
    const bucket = this.buckets.get(key) ?? { tokens: this.capacity, at };
    bucket.tokens = Math.min(this.capacity, bucket.tokens + ((at - bucket.at) / 1000) * this.perSecond);
    bucket.at = at;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
