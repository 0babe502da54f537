// Ground truth of a simulated crowd: every advert it emits, grouped by RPI. Computed from
// the bytes of the adverts, independently of the daemon's decoder and aggregator.
import { Crowd, CrowdOptions } from '../../simulators/index.js';

export interface TruthEncounter {
  rpi: string;
  aem: string;
  first: number;
  last: number;
  count: number;
  rssiMin: number;
  rssiMax: number;
  rssiSum: number;
}

export function crowdTruth(options: CrowdOptions, horizonMs = 6 * 3600_000): Map<string, TruthEncounter> {
  const crowd = new Crowd(options);
  const truth = new Map<string, TruthEncounter>();
  crowd.advance(options.anchor - 1, options.anchor + horizonMs, (data, rssi, _address, time) => {
    const rpi = data.subarray(11, 27).toString('hex');
    const t = truth.get(rpi);
    if (!t) {
      truth.set(rpi, { rpi, aem: data.subarray(27, 31).toString('hex'), first: time, last: time, count: 1, rssiMin: rssi, rssiMax: rssi, rssiSum: rssi });
      return;
    }
    t.last = time;
    t.count++;
    t.rssiMin = Math.min(t.rssiMin, rssi);
    t.rssiMax = Math.max(t.rssiMax, rssi);
    t.rssiSum += rssi;
  });
  if (!crowd.done()) throw new Error('horizon too short for the crowd');
  return truth;
}

/** The crowd's last advert: after it plus the silence, every encounter has closed. */
export function crowdEnd(truth: Map<string, TruthEncounter>): number {
  return Math.max(...[...truth.values()].map((t) => t.last));
}
