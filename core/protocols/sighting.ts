import { MAX_METADATA_BYTES, TEMPID_BYTES } from '../bluetrace/index.js';

export const PROTOCOL_EN = 0;
/** BlueTrace temp IDs exchanged over GATT (core/bluetrace). */
export const PROTOCOL_BLUETRACE = 1;
/**
 * HCI's "RSSI not available" (some controllers, BlueZ's emulator): the phone was heard, its
 * signal strength is unknown. Such sightings count; they add nothing to the RSSI statistics.
 */
export const RSSI_UNAVAILABLE = 127;
export type ProtocolId = typeof PROTOCOL_EN | typeof PROTOCOL_BLUETRACE;
/**
 * Bytes of temp ID and of metadata for each protocol: the wire format relies on these. A
 * protocol whose metadata varies (`variable`) carries it on the wire after a one-byte length.
 */
export const PROTOCOL_SIZES: Record<number, { tempId: number; metadata: number | { variable: true; max: number } }> = {
  [PROTOCOL_EN]: { tempId: 16, metadata: 4 },
  [PROTOCOL_BLUETRACE]: { tempId: TEMPID_BYTES, metadata: { variable: true, max: MAX_METADATA_BYTES } },
};

/** One advertisement carrying a temporary ID, as heard by the radio. */
export interface Sighting {
  protocol: ProtocolId;
  /** A view into the advertisement; copy it before keeping it. */
  tempId: Buffer;
  metadata: Buffer;
  rssi: number;
  address: string;
  /** Unix milliseconds. */
  time: number;
  /** Whether the clock was synchronised when it was heard (false on a Pi that has not synced yet). */
  clockSynced: boolean;
}
