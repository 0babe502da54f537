// COSE_Sign1 (RFC 9052 §4.2) with EdDSA over Ed25519: the envelope of every message the backend
// sends a unit. A standard envelope, so a backend team in another language finds a library for it
// (or writes the ~20 lines it takes: docs/protocol.md), and checks its bytes against the COSE
// working group's examples as test/unit/control.test.ts does.
import { createHash } from 'node:crypto';
import { Decoder } from 'cbor-x';
import { publicKeyObject, signBytes, verifyBytes, type SigningKey } from '../trust/index.js';

/** The MQTT content type of every COSE_Sign1 message: control messages and what a unit signs besides batches. */
export const COSE_CONTENT_TYPE = 'application/cose; cose-type="cose-sign1"';

/** COSE's algorithm number for EdDSA. */
const ALG_EDDSA = -8;
const TAG_COSE_SIGN1 = 18;
/** A key id is the first 8 bytes of SHA-256 of the raw public key. */
export const KID_BYTES = 8;

export function keyId(publicKey: Uint8Array): Buffer {
  return createHash('sha256').update(publicKey).digest().subarray(0, KID_BYTES);
}

/** The head of a CBOR item of major type `major` and length or value `n` (shortest form). */
function head(major: number, n: number): Buffer {
  const m = major << 5;
  if (n < 24) return Buffer.from([m | n]);
  if (n < 0x100) return Buffer.from([m | 24, n]);
  if (n < 0x10000) return Buffer.from([m | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = m | 26;
  b.writeUInt32BE(n, 1);
  return b;
}

const bstr = (b: Uint8Array): Buffer => Buffer.concat([head(2, b.length), b]);
const tstr = (s: string): Buffer => Buffer.concat([head(3, Buffer.byteLength(s)), Buffer.from(s)]);

/** The protected header: {1: -8 (EdDSA), 4: kid}. Written by hand, so its bytes are the same in every language. */
export function protectedHeader(kid: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([0xa2, 0x01, 0x27, 0x04]), bstr(kid)]);
}

/** Sig_structure = ["Signature1", protected, external_aad, payload]: the bytes the signature covers. */
export function toBeSigned(protectedBytes: Uint8Array, externalAad: Uint8Array, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([0x84]), tstr('Signature1'), bstr(protectedBytes), bstr(externalAad), bstr(payload)]);
}

/** A COSE_Sign1 message (tag 18) over `payload`, signed with `key`; `externalAad` is not sent, the verifier supplies it. */
export function signCose(key: SigningKey, payload: Uint8Array, externalAad: Uint8Array): Buffer {
  const prot = protectedHeader(keyId(key.publicKey));
  const sig = signBytes(key, toBeSigned(prot, externalAad, payload));
  return Buffer.concat([head(6, TAG_COSE_SIGN1), Buffer.from([0x84]), bstr(prot), Buffer.from([0xa0]), bstr(payload), bstr(sig)]);
}

export interface CoseSign1 {
  protectedBytes: Buffer;
  alg: unknown;
  /** From the protected header, else the unprotected one; null when neither has one. */
  kid: Buffer | null;
  payload: Buffer;
  signature: Buffer;
}

const decoder = new Decoder({ mapsAsObjects: false, int64AsNumber: true } as ConstructorParameters<typeof Decoder>[0]);

function asMap(v: unknown): Map<unknown, unknown> | null {
  return v instanceof Map ? v : null;
}

/** Reads a COSE_Sign1 message without trusting it; never throws: a reason when it is not one. */
export function readCose(bytes: Uint8Array): { ok: true; message: CoseSign1 } | { ok: false; reason: string } {
  let v: unknown;
  try {
    v = decoder.decode(bytes);
  } catch (err) {
    return { ok: false, reason: `not CBOR (${(err as Error).message})` };
  }
  const tagged = v as { tag?: unknown; value?: unknown } | null;
  const arr = tagged !== null && typeof tagged === 'object' && tagged.tag === TAG_COSE_SIGN1 ? tagged.value : v;
  if (!Array.isArray(arr) || arr.length !== 4) return { ok: false, reason: 'not a COSE_Sign1 message (tag 18, an array of 4)' };
  const [prot, unprot, payload, signature] = arr as unknown[];
  if (!(prot instanceof Uint8Array) || !(payload instanceof Uint8Array) || !(signature instanceof Uint8Array)) {
    return { ok: false, reason: 'COSE_Sign1: protected header, payload and signature must be byte strings (a detached payload is not used)' };
  }
  const unprotected = asMap(unprot);
  if (!unprotected) return { ok: false, reason: 'COSE_Sign1: the unprotected header must be a map' };
  let protectedMap: Map<unknown, unknown> | null = new Map();
  if (prot.length > 0) {
    try {
      protectedMap = asMap(decoder.decode(prot));
    } catch {
      protectedMap = null;
    }
  }
  if (!protectedMap) return { ok: false, reason: 'COSE_Sign1: the protected header is not a CBOR map' };
  const kid = protectedMap.get(4) ?? unprotected.get(4) ?? null;
  return {
    ok: true,
    message: {
      protectedBytes: Buffer.from(prot), alg: protectedMap.get(1), kid: kid instanceof Uint8Array ? Buffer.from(kid) : null,
      payload: Buffer.from(payload), signature: Buffer.from(signature),
    },
  };
}

/** Whether `message` is signed by the Ed25519 key `publicKey` (raw 32 bytes) with EdDSA. */
export function verifyCose(message: CoseSign1, publicKey: Uint8Array, externalAad: Uint8Array): boolean {
  if (message.alg !== ALG_EDDSA) return false;
  return verifyBytes(publicKeyObject(publicKey), toBeSigned(message.protectedBytes, externalAad, message.payload), message.signature);
}
