// A Pi has no real-time clock: until NTP syncs, the wall clock is wrong (1970, or the time
// saved at the last shutdown). This tells whether it is synchronised, from systemd-timesyncd
// or chrony, so the beacon never advertises EIDs computed from a wrong time (the policy).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export type SyncCheck = 'auto' | 'assume-synced' | 'assume-unsynced';

export interface ClockState {
  synchronized: boolean;
  /** What said so: timesyncd, timedatectl, chrony, config, or none. */
  source: string;
}

function run(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 2000 });
  return r.status === 0 ? r.stdout : null;
}

/** Asks the system; the answer is cached for `cacheMs` because it spawns processes. */
export function createClockMonitor(check: SyncCheck, cacheMs = 30_000, probe: () => ClockState = probeSystemClock): () => ClockState {
  if (check === 'assume-synced') return () => ({ synchronized: true, source: 'config' });
  if (check === 'assume-unsynced') return () => ({ synchronized: false, source: 'config' });
  let cached: ClockState | null = null;
  let at = 0;
  return () => {
    const now = performance.now();
    if (!cached || now - at >= cacheMs) {
      cached = probe();
      at = now;
    }
    return cached;
  };
}

export function probeSystemClock(): ClockState {
  // systemd-timesyncd creates this file once it has synchronised (systemd ≥ 239).
  if (existsSync('/run/systemd/timesync/synchronized')) return { synchronized: true, source: 'timesyncd' };
  const timedatectl = run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value']);
  if (timedatectl !== null) return { synchronized: timedatectl.trim() === 'yes', source: 'timedatectl' };
  const chrony = run('chronyc', ['-n', 'tracking']);
  if (chrony !== null) return { synchronized: /Leap status\s*:\s*Normal/.test(chrony), source: 'chrony' };
  return { synchronized: false, source: 'none' };
}

/**
 * Sighting timestamps from the monotonic clock, anchored to the wall clock: durations never
 * jump. When the wall clock steps (NTP's first sync on a Pi, an operator's `date -s`) by more
 * than `maxStepMs`, check() re-anchors and tells the listeners, which close what spans it.
 */
export class SteadyClock {
  steps = 0;
  private anchorWall: number;
  private anchorMono: number;
  private readonly listeners: Array<(stepMs: number) => void> = [];

  constructor(
    private readonly wall: () => number = Date.now,
    private readonly mono: () => number = () => performance.now(),
    private readonly maxStepMs = 2000,
  ) {
    this.anchorWall = wall();
    this.anchorMono = mono();
  }

  now(): number {
    return Math.floor(this.anchorWall + (this.mono() - this.anchorMono));
  }

  onStep(listener: (stepMs: number) => void): void {
    this.listeners.push(listener);
  }

  /** Compares with the wall clock; call it every second or so. Returns the step, or 0. */
  check(): number {
    const step = this.wall() - this.now();
    if (Math.abs(step) <= this.maxStepMs) return 0;
    for (const l of this.listeners) l(step);
    this.anchorWall = this.wall();
    this.anchorMono = this.mono();
    this.steps++;
    return step;
  }
}
