import {
  AD_TYPE_SERVICE_DATA_16,
  DropCounters,
  MAX_AD_BYTES,
} from './advertising-data.js';
import { EN_AEM_BYTES, EN_RPI_BYTES, EN_SERVICE_UUID } from './exposure-notification.js';
import { PROTOCOL_EN, RSSI_UNAVAILABLE, Sighting } from './sighting.js';

/**
 * Decodes the AD structures of one advertising report into a sighting, or null when it
 * carries no temp ID we know. Malformed structures are skipped and counted in `drops`;
 * this never throws. Written as one loop over the bytes: it runs for every report.
 */
export function decodeAdvertisement(
  data: Buffer,
  rssi: number,
  address: string,
  time: number,
  drops: DropCounters,
): Sighting | null {
  const n = data.length;
  if (n > MAX_AD_BYTES) {
    drops.adTooLong++;
    return null;
  }
  if (!((rssi >= -127 && rssi <= 20) || rssi === RSSI_UNAVAILABLE)) {
    drops.rssiInvalid++;
    return null;
  }
  let found: Sighting | null = null;
  let i = 0;
  while (i < n) {
    const len = data[i];
    if (len === 0) break;
    const end = i + 1 + len;
    if (end > n) {
      drops.adTruncated++;
      break;
    }
    if (data[i + 1] === AD_TYPE_SERVICE_DATA_16) {
      if (len < 3) {
        drops.serviceDataTooShort++;
      } else if ((data[i + 2] | (data[i + 3] << 8)) === EN_SERVICE_UUID) {
        const start = i + 4;
        if (end - start !== EN_RPI_BYTES + EN_AEM_BYTES) {
          drops.enWrongSize++;
        } else if (found === null) {
          found = {
            protocol: PROTOCOL_EN,
            tempId: data.subarray(start, start + EN_RPI_BYTES),
            metadata: data.subarray(start + EN_RPI_BYTES, end),
            rssi,
            address,
            time,
            clockSynced: true,
          };
        }
      }
    }
    i = end;
  }
  return found;
}
