import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  associatedEncryptedMetadata,
  classifyAdvertisement,
  decodeAdvertisement,
  deriveAemk,
  deriveRpik,
  DropCounters,
  newDropCounters,
  PROTOCOL_EN,
  rollingProximityIdentifier,
} from '../../core/protocols/index.js';
import { enAdvertisingData } from '../../simulators/index.js';
import { readFixture } from '../harness/reference.js';

const hex = (s: string) => Buffer.from(s, 'hex');
const decode = (adHex: string, rssi = -60, drops: DropCounters = newDropCounters()) =>
  decodeAdvertisement(hex(adHex), rssi, 'aa:bb:cc:dd:ee:ff', 1000, drops);

// Values quoted from the Exposure Notification Cryptography Specification v1.2 test vectors
// (google/exposure-notifications-internals TestVectors.java, Apache-2.0).
const TEK = '75c734c6dd1a782de7a965da5eb93125';
const RPIK = '185ad91db69ec7dd048960f1f3ba6175';
const AEMK = 'd57c46af7a1d83965b9bed8bd152936a';
const METADATA = '40080000';

describe('Exposure Notification cryptography (spec v1.2 vectors)', () => {
  it('derives RPIK and AEMK from the TEK', () => {
    expect(deriveRpik(hex(TEK)).toString('hex')).toBe(RPIK);
    expect(deriveAemk(hex(TEK)).toString('hex')).toBe(AEMK);
  });

  it('derives the first RPI/AEM pairs of the day', () => {
    const rpi0 = rollingProximityIdentifier(hex(RPIK), 2642976);
    expect(rpi0.toString('hex')).toBe('8be6cd371c5c891604bfbe49df845096');
    expect(associatedEncryptedMetadata(hex(AEMK), rpi0, hex(METADATA)).toString('hex')).toBe('72033874');
    const rpi1 = rollingProximityIdentifier(hex(RPIK), 2642977);
    expect(rpi1.toString('hex')).toBe('3c9a1de5dd6b02afa7fded7b570b3e56');
    expect(associatedEncryptedMetadata(hex(AEMK), rpi1, hex(METADATA)).toString('hex')).toBe('c29211b1');
  });

  it('reproduces all 144 RPI/AEM pairs of the specification (test/fixtures, Apache-2.0)', () => {
    const v = readFixture<{ rpis: Array<{ interval: number; rpi_hex: string; aem_hex: string }> }>('en_crypto_test_vectors.json');
    expect(v.rpis).toHaveLength(144);
    for (const { interval, rpi_hex, aem_hex } of v.rpis) {
      const rpi = rollingProximityIdentifier(hex(RPIK), interval);
      expect(rpi.toString('hex')).toBe(rpi_hex);
      expect(associatedEncryptedMetadata(hex(AEMK), rpi, hex(METADATA)).toString('hex')).toBe(aem_hex);
    }
  });
});

describe('decodeAdvertisement', () => {
  // Real frames quoted in citruz/beacontools issue #48 (MIT), as carried in test/fixtures.
  it('decodes a real iPhone EN advert (with Flags)', () => {
    const s = decode('02011a03036ffd17166ffde932e8b0688dfaec0062b7d6d35eefb5eeaa91ac', -70);
    expect(s).not.toBeNull();
    expect(s!.protocol).toBe(PROTOCOL_EN);
    expect(s!.tempId.toString('hex')).toBe('e932e8b0688dfaec0062b7d6d35eefb5');
    expect(s!.metadata.toString('hex')).toBe('eeaa91ac');
    expect(s!.rssi).toBe(-70);
  });

  it('decodes a real Android EN advert (no Flags)', () => {
    const s = decode('03036ffd17166ffd2cfb0de02b33d20c5c27611238e2d10742b56ee5', -72);
    expect(s!.tempId.toString('hex')).toBe('2cfb0de02b33d20c5c27611238e2d107');
    expect(s!.metadata.toString('hex')).toBe('42b56ee5');
  });

  it('decodes what the simulated phones send, byte for byte', () => {
    const rpi = hex('8be6cd371c5c891604bfbe49df845096');
    const aem = hex('72033874');
    const s = decodeAdvertisement(enAdvertisingData(rpi, aem), -50, 'x', 5, newDropCounters());
    expect(s!.tempId.equals(rpi)).toBe(true);
    expect(s!.metadata.equals(aem)).toBe(true);
  });

  it('ignores other beacons without counting them as malformed', () => {
    const drops = newDropCounters();
    expect(decode('0201060303aafe1716aafe00e3123456789012346789010000000000010000', -60, drops)).toBeNull(); // Eddystone-UID
    expect(decode('0201061aff4c0002154142434445464748494041424344454600010002f8', -60, drops)).toBeNull(); // iBeacon
    expect(Object.values(drops).every((n) => n === 0)).toBe(true);
  });

  it('drops malformed structures and counts each by reason', () => {
    const drops = newDropCounters();
    // EN service data one byte short (19 bytes instead of 20)
    expect(decode('02011a03036ffd16166ffd' + '00'.repeat(19), -60, drops)).toBeNull();
    expect(drops.enWrongSize).toBe(1);
    // EN service data one byte long
    expect(decode('18166ffd' + '00'.repeat(21), -60, drops)).toBeNull();
    expect(drops.enWrongSize).toBe(2);
    // a length byte that runs past the end (beacontools' bad packet "0201060303")
    expect(decode('0201060303', -60, drops)).toBeNull();
    expect(drops.adTruncated).toBe(1);
    // service data too short to hold a UUID
    expect(decode('0216aa', -60, drops)).toBeNull();
    expect(drops.serviceDataTooShort).toBe(1);
    // an RSSI no controller can report
    expect(decode('03036ffd17166ffd2cfb0de02b33d20c5c27611238e2d10742b56ee5', 21, drops)).toBeNull();
    expect(decode('03036ffd17166ffd2cfb0de02b33d20c5c27611238e2d10742b56ee5', -128, drops)).toBeNull();
    expect(drops.rssiInvalid).toBe(2);
    // 127 is HCI's "not available": the phone was heard, the sighting stands
    expect(decode('03036ffd17166ffd2cfb0de02b33d20c5c27611238e2d10742b56ee5', 127, drops)!.rssi).toBe(127);
    expect(decodeAdvertisement(Buffer.alloc(2000), -60, 'x', 0, drops)).toBeNull();
    expect(drops.adTooLong).toBe(1);
  });

  it('keeps a valid EN structure that precedes a truncated trailing one', () => {
    const drops = newDropCounters();
    // beacontools' exposure_packet: a stray 0xd1 length byte after the service data
    const s = decode('02011a03036ffd17166ffd0d3b4f65584c582160571dd19010d41c2660ee34d1', -60, drops);
    expect(s!.tempId.toString('hex')).toBe('0d3b4f65584c582160571dd19010d41c');
    expect(drops.adTruncated).toBe(1);
  });

  it('never throws and only ever returns well-formed sightings, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: -200, max: 200 }), (bytes, rssi) => {
        const drops = newDropCounters();
        const s = decodeAdvertisement(Buffer.from(bytes), rssi, 'x', 0, drops);
        if (s !== null) {
          expect(s.tempId).toHaveLength(16);
          expect(s.metadata).toHaveLength(4);
          expect(s.rssi >= -127 && (s.rssi <= 20 || s.rssi === 127)).toBe(true);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('counts every truncation of a real advert as a drop, never as a sighting', () => {
    const full = hex('02011a03036ffd17166ffde932e8b0688dfaec0062b7d6d35eefb5eeaa91ac');
    for (let len = 0; len < full.length; len++) {
      const drops = newDropCounters();
      const s = decodeAdvertisement(full.subarray(0, len), -60, 'x', 0, drops);
      expect(s).toBeNull();
      const dropped = Object.values(drops).reduce((a, b) => a + b, 0);
      // Cutting exactly between structures leaves a well-formed advert without EN data.
      expect(dropped).toBe(len === 0 || len === 3 || len === 7 ? 0 : 1);
    }
  });
});

describe('classifyAdvertisement (diagnostics)', () => {
  it('names EN, Eddystone, iBeacon and OpenTrace adverts', () => {
    // beacontools samples (MIT): Eddystone-UID, Eddystone-EID, iBeacon, EN
    expect(classifyAdvertisement(hex('0201060303aafe1716aafe00e3123456789012346789010000000000010000'))).toBe('eddystone');
    expect(classifyAdvertisement(hex('0201060303aafe0d16aafe30e34549445f74657374'))).toBe('eddystone');
    expect(classifyAdvertisement(hex('0201061aff4c0002154142434445464748494041424344454600010002f8'))).toBe('ibeacon');
    expect(classifyAdvertisement(hex('02011a03036ffd17166ffde932e8b0688dfaec0062b7d6d35eefb5eeaa91ac'))).toBe('exposureNotification');
    // OpenTrace: manufacturer id 0x03FF followed by a short random string (opentrace-community facts)
    expect(classifyAdvertisement(Buffer.concat([hex('020106'), hex('0bffff03'), Buffer.from('aZ3kQ9pL')]))).toBe('opentrace');
    expect(classifyAdvertisement(hex('02010605021a18001809ff7204fe10bc0c375909094d6f6e2035363433'))).toBe('other');
  });

  it('never throws on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => void classifyAdvertisement(b)), { numRuns: 3000 });
  });
});
