import { describe, expect, it } from 'vitest';
import {
  computeEid,
  eddystoneEidAdvertisingData,
  eidTemporaryKey,
  identityKeyFromRegistration,
  resolveEid,
  x25519PublicFromPrivate,
} from '../../core/protocols/index.js';

const hex = (s: string) => Buffer.from(s, 'hex');

// Vectors from RadiusNetworks/ephemeral_calc specs, reproduced from the Eddystone spec text
// (google/eddystone eddystone-eid/eid-computation.md), as carried in ../shared/reference.
const IDENTITY_KEY = hex('0102030405060708090a111213141516');

describe('Eddystone-EID', () => {
  it('computes the EIDs of the vectors (K = 10)', () => {
    expect(computeEid(IDENTITY_KEY, 10, 0).toString('hex')).toBe('a9b76a71c5f89290');
    expect(computeEid(IDENTITY_KEY, 10, 1023).toString('hex')).toBe('a9b76a71c5f89290');
    expect(computeEid(IDENTITY_KEY, 10, 1024).toString('hex')).toBe('4144413e45fefa58');
    expect(computeEid(IDENTITY_KEY, 10, 2000).toString('hex')).toBe('4144413e45fefa58');
    expect(computeEid(IDENTITY_KEY, 10, 2048).toString('hex')).not.toBe('4144413e45fefa58');
  });

  it('derives the temporary key from the top 16 bits of the counter', () => {
    expect(eidTemporaryKey(IDENTITY_KEY, 0).toString('hex')).toBe('6f291c5c48264b8a0b38a19e7fed73cc');
    expect(eidTemporaryKey(IDENTITY_KEY, 65535).toString('hex')).toBe('6f291c5c48264b8a0b38a19e7fed73cc');
    expect(eidTemporaryKey(IDENTITY_KEY, 65536).toString('hex')).not.toBe('6f291c5c48264b8a0b38a19e7fed73cc');
  });

  it('derives the identity key from Curve25519 ECDH + HKDF (registration)', () => {
    const beaconPrivate = hex('6ea13b5ef3cc642fd6102c1d85c096b510f56efc488114a4562a987bf4525628');
    const resolverPublic = hex('29769a045dcb811ba3025985b9de91eb9a57dadbceb68a1e6a3c2b1af4868e1f');
    expect(x25519PublicFromPrivate(hex('61136adab1bf302f1c49e860196aeefd8fbaa41518b4c226372d6cc469c47278')).toString('hex')).toBe(
      '29769a045dcb811ba3025985b9de91eb9a57dadbceb68a1e6a3c2b1af4868e1f',
    );
    const r = identityKeyFromRegistration(beaconPrivate, resolverPublic);
    expect(r.beaconPublicKey.toString('hex')).toBe('c63e6f89aab47552c8d621a59c81d0af203f6570a4bd7a267a08a17561c8bc2b');
    expect(r.sharedSecret.toString('hex')).toBe('690821890fffb83bb348fb620d0a10e625fe3d919b5594e7b9258d50f829b90b');
    expect(r.identityKey.toString('hex')).toBe('f40d6f18e5882260e847e99ca33ac44f');
  });

  it('builds the over-the-air frame: service data 0xFEAA, type 0x30, TX power, 8 EID bytes', () => {
    const ad = eddystoneEidAdvertisingData(-20, hex('a9b76a71c5f89290'));
    expect(ad.toString('hex')).toBe('0201060303aafe0d16aafe30eca9b76a71c5f89290');
  });

  it('rejects bad inputs with the parameter named', () => {
    expect(() => computeEid(Buffer.alloc(15), 10, 0)).toThrow(/identity key: must be 16 bytes/);
    expect(() => computeEid(IDENTITY_KEY, 16, 0)).toThrow(/exponent: must be a whole number from 0 to 15/);
    expect(() => computeEid(IDENTITY_KEY, 10, -1)).toThrow(/counter: /);
  });

  it('resolves an EID to its venue within a drift window, and nothing else', () => {
    const registry = [
      { venue: 'mall-01', gateway: 'gw-01', identityKey: IDENTITY_KEY, exponent: 10, epoch: 0 },
      { venue: 'market-02', identityKey: hex('f40d6f18e5882260e847e99ca33ac44f'), exponent: 10, epoch: 1_700_000_000 },
    ];
    const t = 1_795_000_000;
    const eid = computeEid(registry[1].identityKey, 10, t - 1_700_000_000);
    expect(resolveEid(eid, t, registry)).toMatchObject({ venue: 'market-02', drift: 0 });
    // seen by a phone whose clock is 2 quanta behind the beacon's
    expect(resolveEid(eid, t - 2 * 1024, registry, 2)).toMatchObject({ venue: 'market-02', drift: 2 });
    expect(resolveEid(eid, t - 3 * 1024, registry, 2)).toBeNull();
    expect(resolveEid(hex('0000000000000000'), t, registry)).toBeNull();
    expect(resolveEid(computeEid(IDENTITY_KEY, 10, t), t + 30, registry)).toMatchObject({ venue: 'mall-01', gateway: 'gw-01' });
  });
});
