import { describe, expect, it } from 'vitest';
import { createClockMonitor, SteadyClock } from '../../daemon/clock/index.js';

describe('clock discipline', () => {
  it('timestamps follow the monotonic clock; a wall-clock step is detected, reported and re-anchored', () => {
    const t = { wall: Date.UTC(1970, 0, 1, 0, 5), mono: 1000 }; // a Pi booted without RTC
    const clock = new SteadyClock(() => t.wall, () => t.mono, 2000);
    const steps: number[] = [];
    clock.onStep((s) => steps.push(s));
    const start = clock.now();
    t.wall += 1500;
    t.mono += 1500;
    expect(clock.now() - start).toBe(1500);
    expect(clock.check()).toBe(0);
    // NTP syncs: the wall clock jumps 56 years ahead while only 10 ms pass
    t.wall = Date.UTC(2026, 10, 22, 10) ;
    t.mono += 10;
    expect(clock.now() - start).toBe(1510); // durations measured so far are unaffected
    const step = clock.check();
    expect(step).toBeGreaterThan(50 * 365 * 86_400_000);
    expect(steps).toEqual([step]);
    expect(clock.now()).toBe(t.wall);
    expect(clock.steps).toBe(1);
    // small drift within the tolerance is not a step
    t.wall += 1000 + 1500;
    t.mono += 1000;
    expect(clock.check()).toBe(0);
  });

  it('follows the configured sync check, and caches what the system says', () => {
    expect(createClockMonitor('assume-synced')()).toEqual({ synchronized: true, source: 'config' });
    expect(createClockMonitor('assume-unsynced')()).toEqual({ synchronized: false, source: 'config' });
    let probes = 0;
    const monitor = createClockMonitor('auto', 60_000, () => {
      probes++;
      return { synchronized: true, source: 'chrony' };
    });
    expect(monitor().source).toBe('chrony');
    monitor();
    expect(probes).toBe(1);
  });
});
