// Full-jitter reconnects: the window doubles per failed attempt up to its cap, and a fleet's first
// attempts after a broker restart spread evenly over the first window.
import { describe, expect, it } from 'vitest';
import { reconnectDelayMs } from '../../core/mqtt/index.js';
import { seeded } from '../harness/random.js';

describe('reconnectDelayMs', () => {
  it('is uniform over a window that doubles per attempt and stops at the cap', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((a) => reconnectDelayMs(a, 2000, 30_000, 0.999_999))).toEqual([1999, 3999, 7999, 15_999, 29_999, 29_999, 29_999]);
    expect(reconnectDelayMs(0, 2000, 30_000, 0)).toBe(0);
    expect(reconnectDelayMs(3, 2000, 30_000, 0.5)).toBe(8000);
    // a cap below the base: the window is the cap
    expect(reconnectDelayMs(0, 5000, 1000, 0.5)).toBe(500);
    // a week of failures does not overflow
    expect(reconnectDelayMs(10_000, 2000, 30_000, 0.5)).toBe(15_000);
  });

  it('spreads 1,000 gateways evenly: no 100 ms of the first 2 s window gets more than twice its share', () => {
    const random = seeded(5);
    const slots = new Array(20).fill(0);
    for (let g = 0; g < 1000; g++) slots[Math.floor(reconnectDelayMs(0, 2000, 30_000, random(0, 1)) / 100)]++;
    expect(Math.max(...slots)).toBeLessThanOrEqual(100);
    expect(Math.min(...slots)).toBeGreaterThanOrEqual(20);
  });
});
