// Walks the AD structures of an advertising report (Core spec Vol 3 Part C §11):
// [length][type][length-1 bytes]...; a zero length ends the significant part.
export const AD_TYPE_FLAGS = 0x01;
export const AD_TYPE_UUID16_INCOMPLETE = 0x02;
export const AD_TYPE_UUID16_COMPLETE = 0x03;
export const AD_TYPE_SERVICE_DATA_16 = 0x16;
export const AD_TYPE_MANUFACTURER = 0xff;

/** Longest legacy advertising data; extended advertising allows up to 1650 bytes. */
export const MAX_AD_BYTES = 1650;

export type DropReason =
  | 'ad_truncated'
  | 'ad_too_long'
  | 'en_wrong_size'
  | 'service_data_too_short'
  | 'rssi_invalid';

export const DROP_REASONS: readonly DropReason[] = [
  'ad_truncated',
  'ad_too_long',
  'en_wrong_size',
  'service_data_too_short',
  'rssi_invalid',
];

export type DropCounters = Record<DropReason, number>;

export function newDropCounters(): DropCounters {
  return { ad_truncated: 0, ad_too_long: 0, en_wrong_size: 0, service_data_too_short: 0, rssi_invalid: 0 };
}
