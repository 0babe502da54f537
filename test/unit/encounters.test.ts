import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AggregatorOptions,
  attenuationBucket,
  closeAll,
  ClosedEncounter,
  createAggregator,
  observe,
  sweep,
} from '../../core/encounters/index.js';
import { PROTOCOL_EN, Sighting } from '../../core/protocols/index.js';
import { aggregatorOptions } from '../../core/config/index.js';

// The defaults a unit runs with; a small cap on open encounters so eviction is reachable.
const options: AggregatorOptions = { ...aggregatorOptions(), maxOpen: 1000 };

function sighting(id: number, time: number, rssi: number): Sighting {
  const tempId = Buffer.alloc(16);
  tempId.writeUInt32BE(id, 0);
  return { protocol: PROTOCOL_EN, tempId, metadata: Buffer.from([1, 2, 3, 4]), rssi, address: 'x', time, clockSynced: true };
}

describe('encounter aggregation', () => {
  it('keeps one encounter per temp ID with first/last seen, count and RSSI statistics', () => {
    const state = createAggregator(options);
    const out: ClosedEncounter[] = [];
    const rssis = [-50, -70, -65, -80];
    rssis.forEach((r, i) => observe(state, sighting(1, 1000 + i * 250, r), out));
    observe(state, sighting(2, 1100, -90), out);
    expect(state.open.size).toBe(2);
    sweep(state, 1100 + 59_999, out);
    expect(out).toHaveLength(0);
    sweep(state, 1100 + 60_000, out);
    expect(out.map((e) => e.tempId.readUInt32BE(0))).toEqual([2]);
    sweep(state, 1750 + 60_000, out);
    expect(out).toHaveLength(2);
    const e = out.find((x) => x.tempId.readUInt32BE(0) === 1)!;
    expect(e).toMatchObject({ firstSeen: 1000, lastSeen: 1750, count: 4, rssiMin: -80, rssiMax: -50, rssiSum: -265, closeReason: 'silence' });
    expect(state.open.size).toBe(0);
  });

  it('counts sightings without RSSI (HCI 127) but keeps them out of the RSSI statistics', () => {
    const state = createAggregator(options);
    const out: ClosedEncounter[] = [];
    observe(state, sighting(1, 0, 127), out);
    observe(state, sighting(1, 1000, -60), out);
    observe(state, sighting(1, 2000, 127), out);
    observe(state, sighting(1, 3000, -70), out);
    observe(state, sighting(2, 0, 127), out);
    closeAll(state, out);
    const [a, b] = out;
    expect(a).toMatchObject({ count: 4, rssiMin: -70, rssiMax: -60, rssiSum: -130, rssiCount: 2 });
    expect(b).toMatchObject({ count: 1, rssiMin: 127, rssiMax: 127, rssiSum: 0, rssiCount: 0 });
  });

  it('credits the gap before each sighting to its attenuation bucket, capped', () => {
    const state = createAggregator(options);
    const out: ClosedEncounter[] = [];
    observe(state, sighting(1, 0, -50), out); // att 50: immediate
    observe(state, sighting(1, 1000, -50), out); // +1 s immediate
    observe(state, sighting(1, 3000, -60), out); // att 60: near, +2 s
    observe(state, sighting(1, 4000, -70), out); // att 70: medium, +1 s
    observe(state, sighting(1, 34_000, -90), out); // att 90: other, +30 s capped to 10 s
    closeAll(state, out);
    expect(out[0].bucketMs).toEqual([1000, 2000, 1000, 10_000]);
    expect(out[0].closeReason).toBe('shutdown');
  });

  it('maps attenuation to buckets at the documented thresholds', () => {
    expect([-54, -55, -62, -63, -72, -73, -100].map((r) => attenuationBucket(r, options))).toEqual([0, 1, 1, 2, 2, 3, 3]);
  });

  it('closes at the maximum length and starts a new encounter', () => {
    const state = createAggregator({ ...options, maxDurationMs: 10_000 });
    const out: ClosedEncounter[] = [];
    for (let t = 0; t <= 12_000; t += 1000) observe(state, sighting(1, t, -60), out);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ firstSeen: 0, lastSeen: 9000, count: 10, closeReason: 'maxDuration' });
    expect(state.open.get([...state.open.keys()][0])!.firstSeen).toBe(10_000);
  });

  it('a temp ID heard again after the silence starts a new encounter', () => {
    const state = createAggregator(options);
    const out: ClosedEncounter[] = [];
    observe(state, sighting(1, 0, -60), out);
    observe(state, sighting(1, 61_000, -60), out);
    expect(out).toHaveLength(1);
    expect(out[0].closeReason).toBe('silence');
  });

  it('marks an encounter unsynchronised if any of its sightings was', () => {
    const state = createAggregator(options);
    const out: ClosedEncounter[] = [];
    observe(state, sighting(1, 0, -60), out);
    observe(state, { ...sighting(1, 1000, -60), clockSynced: false }, out);
    observe(state, sighting(1, 2000, -60), out);
    observe(state, sighting(2, 0, -60), out);
    closeAll(state, out, 'clockStep');
    expect(out.map((e) => [e.tempId.readUInt32BE(0), e.clockSynced, e.closeReason])).toEqual([[1, false, 'clockStep'], [2, true, 'clockStep']]);
    expect(state.counters.closedClockStep).toBe(2);
  });

  it('never produces negative durations or gaps when the clock steps back', () => {
    const state = createAggregator(options);
    const out: ClosedEncounter[] = [];
    observe(state, sighting(1, 100_000, -60), out);
    observe(state, sighting(1, 50_000, -60), out);
    closeAll(state, out);
    expect(out[0].lastSeen - out[0].firstSeen).toBe(0);
    expect(out[0].bucketMs.every((b) => b >= 0)).toBe(true);
  });

  it('stays within maxOpen whatever the number of distinct IDs, evicting the least recently heard', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 1000 })), { maxLength: 2000 }),
        fc.integer({ min: 1, max: 50 }),
        (events, maxOpen) => {
          const state = createAggregator({ ...options, maxOpen });
          const out: ClosedEncounter[] = [];
          let t = 0;
          let count = 0;
          for (const [id, dt] of events) {
            t += dt;
            observe(state, sighting(id, t, -60), out);
            count++;
            expect(state.open.size).toBeLessThanOrEqual(maxOpen);
          }
          closeAll(state, out);
          // Nothing is lost: every sighting is in exactly one encounter.
          expect(out.reduce((n, e) => n + e.count, 0)).toBe(count);
        },
      ),
      { numRuns: 200 },
    );
    const state = createAggregator({ ...options, maxOpen: 2 });
    const out: ClosedEncounter[] = [];
    observe(state, sighting(1, 0, -60), out);
    observe(state, sighting(2, 10, -60), out);
    observe(state, sighting(1, 20, -60), out);
    observe(state, sighting(3, 30, -60), out);
    expect(out.map((e) => [e.tempId.readUInt32BE(0), e.closeReason])).toEqual([[2, 'evicted']]);
  });
});
