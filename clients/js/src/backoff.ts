// Full-jitter exponential backoff: the delay of attempt n (1, 2, …) is drawn uniformly from
// [0, min(maxDelayMs, minDelayMs · 2^(n-1))], so clients that lost their node together stay
// spread over the whole window, at the cap too.

export interface ReconnectOptions {
  /** The window of the first attempt (ms); default 1000. */
  minDelayMs?: number;
  /** The cap of the window (ms); default 30000. */
  maxDelayMs?: number;
  /** Consecutive failed attempts before the client gives up (closed with an error); default unbounded. */
  maxAttempts?: number;
}

/** The window (ms) attempt `attempt` (1-based) draws its delay from. */
export function backoffWindow(attempt: number, opts: Required<ReconnectOptions>): number {
  const exp = opts.minDelayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30);
  return Math.min(opts.maxDelayMs, exp);
}

/** A delay drawn uniformly from attempt `attempt`'s window. */
export function backoffDelay(attempt: number, opts: Required<ReconnectOptions>, random: () => number = Math.random): number {
  return Math.floor(random() * backoffWindow(attempt, opts));
}
