// Diagnosis keys → their RPIs per the EN cryptography spec → the venue encounters that carry them.
import {
  associatedEncryptedMetadata,
  deriveAemk,
  deriveRpik,
  EN_INTERVAL_MS,
  PROTOCOL_EN,
  rollingProximityIdentifier,
  RSSI_UNAVAILABLE,
} from '../protocols/index.js';
import type { VenueEncounter } from '../encounters/index.js';
import { DiagnosisKey, DRIFT_TOLERANCE_MS } from './diagnosis-keys.js';

export interface RpiEntry {
  keyIndex: number;
  intervalNumber: number;
}

/** Every RPI each key produced (its rolling period), by hex: a lookup table for the encounters. */
export function rpiTable(keys: DiagnosisKey[]): Map<string, RpiEntry> {
  const table = new Map<string, RpiEntry>();
  keys.forEach((k, keyIndex) => {
    const rpik = deriveRpik(k.key);
    for (let i = 0; i < k.rollingPeriod; i++) {
      const intervalNumber = k.rollingStartIntervalNumber + i;
      table.set(rollingProximityIdentifier(rpik, intervalNumber).toString('hex'), { keyIndex, intervalNumber });
    }
  });
  return table;
}

export type Match = VenueEncounter & {
  keyIndex: number;
  intervalNumber: number;
  /** TX power the phone put in its (now decrypted) metadata, when the version byte is sane. */
  txPowerDbm: number | null;
  /** EN attenuation at the strongest sighting: TX power − RSSI. */
  attenuationDb: number | null;
};

/**
 * Encounters whose temp ID is an RPI of a diagnosis key and that were seen within the spec's
 * tolerance (±2 h) of that RPI's interval.
 */
export function matchEncounters(keys: DiagnosisKey[], encounters: Iterable<VenueEncounter>, table = rpiTable(keys)): Match[] {
  const aemks = keys.map((k) => deriveAemk(k.key));
  const out: Match[] = [];
  for (const e of encounters) {
    // RPIs are 16 bytes, BlueTrace temp IDs 61: only EN encounters can be a key's.
    if (e.protocol !== PROTOCOL_EN) continue;
    const hit = table.get(e.tempId.toString('hex'));
    if (!hit) continue;
    const start = hit.intervalNumber * EN_INTERVAL_MS;
    if (e.lastSeen < start - DRIFT_TOLERANCE_MS || e.firstSeen > start + EN_INTERVAL_MS + DRIFT_TOLERANCE_MS) continue;
    const metadata = e.metadata.length === 4 ? associatedEncryptedMetadata(aemks[hit.keyIndex], e.tempId, e.metadata) : null;
    // Version byte: major version 1 in the top two bits (0b01xx xxxx).
    const txPowerDbm = metadata && (metadata[0] & 0xc0) === 0x40 ? metadata.readInt8(1) : null;
    const rssiKnown = e.rssiMax !== RSSI_UNAVAILABLE;
    out.push({ ...e, ...hit, txPowerDbm, attenuationDb: txPowerDbm !== null && rssiKnown ? txPowerDbm - e.rssiMax : null });
  }
  return out.sort((a, b) => a.firstSeen - b.firstSeen);
}
