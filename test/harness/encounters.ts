// An encounter as a gateway would send it, for tests that need stored traffic but not particular values.
import type { WireEncounter } from '../../core/encounters/index.js';

/** An Exposure Notification encounter of a minute from `firstSeen`; its temp ID is `id` repeated (mod 256). */
export function sampleEncounter(id: number, firstSeen: number): WireEncounter {
  return {
    id, protocol: 0, tempId: Buffer.alloc(16, id % 256), metadata: Buffer.from([0x40, 0xf4, 0, 0]), firstSeen, lastSeen: firstSeen + 60_000, count: 12,
    rssiMin: -80, rssiMax: -60, rssiMean: -70, attenuationS: [0, 30, 30, 0], clockSynced: true,
  };
}
