// The daemon's ingest path as the benchmarks drive it: a seeded crowd of a busy entrance (60
// phones a minute) → decode → aggregation → the store, one simulated second at a time.
import { ClosedEncounter, createAggregator, Encounter, observe, sweep } from '../core/encounters/index.js';
import { decodeAdvertisement, newDropCounters } from '../core/protocols/index.js';
import { Crowd } from '../simulators/index.js';
import type { Store } from '../daemon/store/index.js';
import { aggregatorOptions } from '../core/config/index.js';

export const ARRIVALS_PER_MINUTE = 60;

export interface CrowdIngest {
  /** Adverts heard so far. */
  readonly adverts: number;
  /** The encounters open now (what the store checkpoints). */
  open(): Iterable<Encounter>;
  /** Everything heard in (t − 1 s, t] goes through to the store's queue (not committed). */
  second(t: number, store: Store): void;
}

export function crowdIngest(seed: number, anchor: number): CrowdIngest {
  const crowd = new Crowd({ seed, phones: 0, arrivalsPerMinute: ARRIVALS_PER_MINUTE, minDwellS: 60, maxDwellS: 600, anchor });
  const state = createAggregator(aggregatorOptions());
  const drops = newDropCounters();
  const closed: ClosedEncounter[] = [];
  let adverts = 0;
  return {
    get adverts() {
      return adverts;
    },
    open: () => state.open.values(),
    second(t: number, store: Store) {
      crowd.advance(t - 1000, t, (data, rssi, address, time) => {
        adverts++;
        const sighting = decodeAdvertisement(data, rssi, address, time, drops);
        if (sighting) observe(state, sighting, closed);
      });
      sweep(state, t, closed);
      store.addEncounters(closed);
      closed.length = 0;
    },
  };
}
