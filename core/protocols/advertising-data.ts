// Walks the AD structures of an advertising report (Core spec Vol 3 Part C §11):
// [length][type][length-1 bytes]...; a zero length ends the significant part.
export const AD_TYPE_UUID16_INCOMPLETE = 0x02;
export const AD_TYPE_UUID16_COMPLETE = 0x03;
export const AD_TYPE_SERVICE_DATA_16 = 0x16;
export const AD_TYPE_MANUFACTURER = 0xff;

/** Longest advertising data a report can carry: 1650 bytes with extended advertising (legacy: 31). */
export const MAX_AD_BYTES = 1650;

export type DropReason =
  | 'adTruncated'
  | 'adTooLong'
  | 'enWrongSize'
  | 'serviceDataTooShort'
  | 'rssiInvalid';

export type DropCounters = Record<DropReason, number>;

export function newDropCounters(): DropCounters {
  return { adTruncated: 0, adTooLong: 0, enWrongSize: 0, serviceDataTooShort: 0, rssiInvalid: 0 };
}

/** A 128-bit UUID's text (dashes optional) → its 16 bytes as AD structures and ATT carry them, little-endian. */
export function uuid128Bytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex').reverse();
}
