// Eddystone-EID (google/eddystone, eddystone-eid/eid-computation.md): an 8-byte ephemeral ID
// that only a resolver holding the beacon's identity key can map back to the venue.
import { createCipheriv, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, KeyObject } from 'node:crypto';

export const EDDYSTONE_SERVICE_UUID = 0xfeaa;
export const EDDYSTONE_FRAME_EID = 0x30;
export const EID_BYTES = 8;
export const MAX_ROTATION_EXPONENT = 15;

function aes128Block(key: Uint8Array, block: Buffer): Buffer {
  const cipher = createCipheriv('aes-128-ecb', key, null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(block), cipher.final()]);
}

function checkInputs(identityKey: Uint8Array, exponent: number, counter: number): void {
  if (identityKey.length !== 16) throw new RangeError('identity key: must be 16 bytes (32 hex digits)');
  if (!Number.isInteger(exponent) || exponent < 0 || exponent > MAX_ROTATION_EXPONENT) {
    throw new RangeError(`exponent: must be a whole number from 0 to ${MAX_ROTATION_EXPONENT}`);
  }
  if (!Number.isInteger(counter) || counter < 0 || counter > 0xffffffff) {
    throw new RangeError('counter: must be a whole number of seconds from 0 to 4294967295');
  }
}

/** Temporary key: AES(identity key, 00×11 ‖ FF ‖ 00 00 ‖ top 16 bits of the counter). */
export function eidTemporaryKey(identityKey: Uint8Array, counter: number): Buffer {
  const block = Buffer.alloc(16);
  block[11] = 0xff;
  block.writeUInt16BE((counter >>> 16) & 0xffff, 14);
  return aes128Block(identityKey, block);
}

/** EID = first 8 bytes of AES(temporary key, 00×11 ‖ K ‖ counter with its K low bits cleared). */
export function computeEid(identityKey: Uint8Array, exponent: number, counter: number): Buffer {
  checkInputs(identityKey, exponent, counter);
  const block = Buffer.alloc(16);
  block[11] = exponent;
  block.writeUInt32BE(quantumStart(counter, exponent), 12);
  return aes128Block(eidTemporaryKey(identityKey, counter), block).subarray(0, EID_BYTES);
}

/** The counter value at which the EID in force at `counter` started. */
export function quantumStart(counter: number, exponent: number): number {
  return (counter - (counter % 2 ** exponent)) >>> 0;
}

/** PKCS#8 header of a raw X25519 private key (Node 20's JWK import of one needs its public half). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function x25519Private(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new RangeError('X25519 private key: must be 32 bytes');
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

function x25519Public(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new RangeError('X25519 public key: must be 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

export function x25519PublicFromPrivate(privateKey: Uint8Array): Buffer {
  return Buffer.from(createPublicKey(x25519Private(privateKey)).export({ format: 'jwk' }).x!, 'base64url');
}

/**
 * Spec registration: identity key = first 16 bytes of HKDF-SHA256(X25519(beacon private,
 * resolver public), salt = resolver public ‖ beacon public, empty info).
 */
export function identityKeyFromRegistration(beaconPrivateKey: Uint8Array, resolverPublicKey: Uint8Array): { identityKey: Buffer; beaconPublicKey: Buffer; sharedSecret: Buffer } {
  const sharedSecret = diffieHellman({ privateKey: x25519Private(beaconPrivateKey), publicKey: x25519Public(resolverPublicKey) });
  const beaconPublicKey = x25519PublicFromPrivate(beaconPrivateKey);
  const salt = Buffer.concat([Buffer.from(resolverPublicKey), beaconPublicKey]);
  const identityKey = Buffer.from(hkdfSync('sha256', sharedSecret, salt, Buffer.alloc(0), 32)).subarray(0, 16);
  return { identityKey, beaconPublicKey, sharedSecret };
}

/** The resolver's side of the same registration: X25519(resolver private, beacon public). */
export function identityKeyForResolver(resolverPrivateKey: Uint8Array, beaconPublicKey: Uint8Array): Buffer {
  const sharedSecret = diffieHellman({ privateKey: x25519Private(resolverPrivateKey), publicKey: x25519Public(beaconPublicKey) });
  const salt = Buffer.concat([x25519PublicFromPrivate(resolverPrivateKey), Buffer.from(beaconPublicKey)]);
  return Buffer.from(hkdfSync('sha256', sharedSecret, salt, Buffer.alloc(0), 32)).subarray(0, 16);
}

/** Advertising data of the venue beacon: Flags, UUID list 0xFEAA, EID frame. */
export function eddystoneEidAdvertisingData(txPowerAt0mDbm: number, eid: Uint8Array): Buffer {
  if (eid.length !== EID_BYTES) throw new RangeError('eid: must be 8 bytes');
  return Buffer.concat([
    Buffer.from([0x02, 0x01, 0x06, 0x03, 0x03, 0xaa, 0xfe, 0x0d, 0x16, 0xaa, 0xfe, EDDYSTONE_FRAME_EID, txPowerAt0mDbm & 0xff]),
    eid,
  ]);
}

export interface RegisteredBeacon {
  venue: string;
  gateway?: string;
  identityKey: Buffer;
  exponent: number;
  /** Unix seconds at which the beacon's time counter was 0 (default 0: the counter is unix time). */
  epoch: number;
}

export interface Resolution {
  venue: string;
  gateway?: string;
  /** Quanta between the EID's quantum and the one expected at the time it was seen (clock drift). */
  drift: number;
  counter: number;
}

/**
 * Resolves an EID seen at unix time `seenAtS` to the beacon that sent it, trying the
 * expected quantum first, then ±1, ±2, … up to `driftQuanta` (beacon or phone clock drift).
 */
export function resolveEid(eid: Uint8Array, seenAtS: number, registry: readonly RegisteredBeacon[], driftQuanta = 2): Resolution | null {
  for (let d = 0; d <= driftQuanta; d++) {
    for (const sign of d === 0 ? [0] : [-1, 1]) {
      for (const beacon of registry) {
        const counter = Math.floor(seenAtS - beacon.epoch) + sign * d * 2 ** beacon.exponent;
        if (counter < 0 || counter > 0xffffffff) continue;
        if (computeEid(beacon.identityKey, beacon.exponent, counter).equals(eid)) {
          return { venue: beacon.venue, gateway: beacon.gateway, drift: sign * d, counter: quantumStart(counter, beacon.exponent) };
        }
      }
    }
  }
  return null;
}
