import { ConfigError } from '../core/config/index.js';
import { TrustError } from '../core/trust/index.js';
import { PullError } from '../collector/pull.js';

/** Documented exit codes (README): scripts rely on them. */
/** restart: `vgw run` stopped cleanly for a restart command; the service restarts on it (RestartForceExitStatus). */
export const EXIT = { ok: 0, failure: 1, usage: 2, timeout: 3, restart: 75 } as const;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Prints a clear message for expected errors and exits with the matching code (no answer in time: 3). */
export function fail(err: unknown): never {
  if (err instanceof PullError && err.timedOut) {
    process.stderr.write(`vgw: ${err.message}\n`);
    process.exit(EXIT.timeout);
  }
  if (err instanceof ConfigError || err instanceof UsageError || err instanceof TrustError) {
    process.stderr.write(`vgw: ${err.message}\n`);
    process.exit(EXIT.usage);
  }
  process.stderr.write(`vgw: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(EXIT.failure);
}

/** Accepts unix milliseconds or an ISO-8601 time; names the option when neither. */
export function parseTime(value: string, option: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new UsageError(`${option}: "${value}" is not a time; give ISO-8601 (2026-11-22T10:00:00Z) or unix milliseconds`);
  return t;
}
