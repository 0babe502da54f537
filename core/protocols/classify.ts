// Names the kind of an advertisement the daemon does not log temp IDs from, for diagnostics:
// a technician sees what the radio hears (status counters), nothing is stored.
import { AD_TYPE_MANUFACTURER, AD_TYPE_SERVICE_DATA_16 } from './advertising-data.js';
import { EDDYSTONE_SERVICE_UUID } from './eddystone-eid.js';
import { EN_SERVICE_UUID } from './exposure-notification.js';

export type AdvertKind = 'exposureNotification' | 'eddystone' | 'ibeacon' | 'opentrace' | 'other';

const APPLE = 0x004c;
/** BlueTrace/OpenTrace phones advertise manufacturer data under this id (opentrace-community). */
const OPENTRACE_MANUFACTURER = 0x03ff;

/** Never throws; malformed structures end the walk (the decoder counts those). */
export function classifyAdvertisement(data: Uint8Array): AdvertKind {
  let i = 0;
  while (i < data.length) {
    const len = data[i];
    if (len === 0 || i + 1 + len > data.length) break;
    const type = data[i + 1];
    if (type === AD_TYPE_SERVICE_DATA_16 && len >= 3) {
      const uuid = data[i + 2] | (data[i + 3] << 8);
      if (uuid === EN_SERVICE_UUID) return 'exposureNotification';
      if (uuid === EDDYSTONE_SERVICE_UUID) return 'eddystone';
    } else if (type === AD_TYPE_MANUFACTURER && len >= 3) {
      const company = data[i + 2] | (data[i + 3] << 8);
      if (company === OPENTRACE_MANUFACTURER) return 'opentrace';
      if (company === APPLE && len >= 5 && data[i + 4] === 0x02 && data[i + 5] === 0x15) return 'ibeacon';
    }
    i += 1 + len;
  }
  return 'other';
}
