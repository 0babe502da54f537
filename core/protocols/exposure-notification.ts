// Exposure Notification (Google/Apple) — cryptography spec v1.2 and the BLE frame.
// RPI = AES-128-ECB(RPIK, "EN-RPI" || 6×0x00 || ENIntervalNumber LE32);
// AEM = AES-128-CTR(AEMK, IV = RPI, metadata); keys from HKDF-SHA256(TEK, no salt).
import { createCipheriv, hkdfSync } from 'node:crypto';

export const EN_SERVICE_UUID = 0xfd6f;
export const EN_RPI_BYTES = 16;
export const EN_AEM_BYTES = 4;
export const EN_INTERVAL_MS = 600_000;
/** A TEK covers 144 ten-minute intervals (one day). */
export const EN_TEK_ROLLING_PERIOD = 144;

function hkdf16(tek: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', tek, Buffer.alloc(0), Buffer.from(info, 'ascii'), 16));
}

export function deriveRpik(tek: Uint8Array): Buffer {
  return hkdf16(tek, 'EN-RPIK');
}

export function deriveAemk(tek: Uint8Array): Buffer {
  return hkdf16(tek, 'EN-AEMK');
}

export function rollingProximityIdentifier(rpik: Uint8Array, intervalNumber: number): Buffer {
  const padded = Buffer.alloc(16);
  padded.write('EN-RPI', 0, 'ascii');
  padded.writeUInt32LE(intervalNumber >>> 0, 12);
  const cipher = createCipheriv('aes-128-ecb', rpik, null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(padded), cipher.final()]);
}

/** Encrypts or decrypts (CTR is symmetric) the 4-byte associated metadata. */
export function associatedEncryptedMetadata(aemk: Uint8Array, rpi: Uint8Array, metadata: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-128-ctr', aemk, rpi);
  return Buffer.concat([cipher.update(metadata), cipher.final()]);
}

/** BLE metadata: version byte (major 1, minor 0), TX power in dBm, two reserved bytes. */
export function bleMetadata(txPowerDbm: number): Buffer {
  return Buffer.from([0x40, txPowerDbm & 0xff, 0, 0]);
}
