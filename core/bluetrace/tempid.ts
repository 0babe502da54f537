// BlueTrace temp IDs (OpenTrace's cloud functions, ../shared/reference/bluetrace_opentrace_facts.json):
// AES-256-GCM over UID (21 bytes) ‖ start ‖ expiry (int32 big-endian unix seconds), sent as
// base64 of ciphertext ‖ IV (16) ‖ tag (16): 61 bytes, 84 characters. Only the holder of the
// 32-byte key (the backend) can issue or read them; the gateway treats them as opaque.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const TEMPID_KEY_BYTES = 32;
export const UID_BYTES = 21;
/** A UID as text: base64 of its 21 bytes (28 characters, no padding), as Firebase UIDs are. */
export const UID_TEXT_PATTERN = /^[A-Za-z0-9+/]{28}$/;
const PLAINTEXT_BYTES = UID_BYTES + 8;
const IV_BYTES = 16;
const TAG_BYTES = 16;
/** A temp ID on the wire and in encounters: 61 bytes. */
export const TEMPID_BYTES = PLAINTEXT_BYTES + IV_BYTES + TAG_BYTES;
/** A temp ID in payloads: standard base64, 61 bytes making 82 characters and '==' of padding. */
export const TEMPID_TEXT_LENGTH = 84;
const TEMPID_TEXT_PATTERN = /^[A-Za-z0-9+/]{82}==$/;

/** OpenTrace's issuing rules: 100 at a time, 15 minutes each, the first valid a minute early. */
export const TEMPID_BATCH_SIZE = 100;
export const TEMPID_VALIDITY_S = 15 * 60;
export const TEMPID_EARLY_S = 60;

export interface IssuedTempId {
  tempId: string;
  /** Unix seconds. */
  start: number;
  expiry: number;
}

export interface DecryptedTempId {
  uid: string;
  start: number;
  expiry: number;
}

/** The 61 bytes of a temp ID's text, or null when it is not 84 characters of base64. */
export function tempIdBytes(text: unknown): Buffer | null {
  if (typeof text !== 'string' || text.length !== TEMPID_TEXT_LENGTH || !TEMPID_TEXT_PATTERN.test(text)) return null;
  const bytes = Buffer.from(text, 'base64');
  // Node ignores stray low bits of the last character: only the canonical text names these bytes.
  return bytes.length === TEMPID_BYTES && bytes.toString('base64') === text ? bytes : null;
}

export function uidBytes(uid: string): Buffer {
  if (!UID_TEXT_PATTERN.test(uid)) throw new Error(`uid: expected 28 base64 characters (21 bytes), got ${JSON.stringify(uid.slice(0, 40))}`);
  return Buffer.from(uid, 'base64');
}

export function newUid(): string {
  return randomBytes(UID_BYTES).toString('base64');
}

/** One temp ID for `uid` valid over [start, expiry] (unix seconds). */
export function encryptTempId(key: Buffer, uid: string, start: number, expiry: number, iv: Buffer = randomBytes(IV_BYTES)): string {
  if (key.length !== TEMPID_KEY_BYTES) throw new Error(`temp ID key: expected ${TEMPID_KEY_BYTES} bytes`);
  const plain = Buffer.alloc(PLAINTEXT_BYTES);
  uidBytes(uid).copy(plain, 0);
  plain.writeInt32BE(start, UID_BYTES);
  plain.writeInt32BE(expiry, UID_BYTES + 4);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([body, iv, cipher.getAuthTag()]).toString('base64');
}

/** `count` consecutive temp IDs from `nowS` on, by OpenTrace's rules (the batch a phone or venue fetches). */
export function issueTempIds(key: Buffer, uid: string, nowS: number, count = TEMPID_BATCH_SIZE, validityS = TEMPID_VALIDITY_S): IssuedTempId[] {
  const out: IssuedTempId[] = [];
  for (let i = 0; i < count; i++) {
    const start = nowS + validityS * i - TEMPID_EARLY_S;
    const expiry = start + validityS;
    out.push({ tempId: encryptTempId(key, uid, start, expiry), start, expiry });
  }
  return out;
}

/** The UID and validity a temp ID carries, or null when it is not one of this key's (forged, altered, another key). */
export function decryptTempId(key: Buffer, tempId: Uint8Array | string): DecryptedTempId | null {
  const bytes = typeof tempId === 'string' ? tempIdBytes(tempId) : Buffer.from(tempId);
  if (!bytes || bytes.length !== TEMPID_BYTES) return null;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(PLAINTEXT_BYTES, PLAINTEXT_BYTES + IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAuthTag(bytes.subarray(PLAINTEXT_BYTES + IV_BYTES));
    const plain = Buffer.concat([decipher.update(bytes.subarray(0, PLAINTEXT_BYTES)), decipher.final()]);
    return { uid: plain.subarray(0, UID_BYTES).toString('base64'), start: plain.readInt32BE(UID_BYTES), expiry: plain.readInt32BE(UID_BYTES + 4) };
  } catch {
    return null;
  }
}

/** A temp ID may be valid this long at most: OpenTrace's 15 minutes and a margin. */
export const TEMPID_MAX_VALIDITY_S = TEMPID_VALIDITY_S + 5 * 60;
const DAY_S = 86_400;

/**
 * Why a batch of issued temp IDs makes no sense at `nowS` (the unit's clock), or null: each valid
 * at most TEMPID_MAX_VALIDITY_S, starting within a day back and two days on (a batch of 100 lasts
 * 25 h), and `refreshAt` within a day. A signed answer is checked too: a backend fault must not
 * leave a venue with IDs no phone can use, or none for years.
 */
export function implausibleTempIds(tempIds: readonly IssuedTempId[], refreshAt: number, nowS: number): string | null {
  for (const [i, t] of tempIds.entries()) {
    if (t.expiry - t.start > TEMPID_MAX_VALIDITY_S) {
      return `tempIds.${i}.expiry: valid ${t.expiry - t.start} s, more than the ${TEMPID_MAX_VALIDITY_S} s a BlueTrace temp ID may be (15 minutes and a margin)`;
    }
    if (t.start < nowS - DAY_S || t.start > nowS + 2 * DAY_S) {
      return `tempIds.${i}.start: ${new Date(t.start * 1000).toISOString()} is not within a day before and two days after this unit's clock (${new Date(nowS * 1000).toISOString()})`;
    }
  }
  if (refreshAt > nowS + DAY_S + 3600 || refreshAt < nowS - DAY_S) {
    return `refreshAt: ${new Date(refreshAt * 1000).toISOString()} is not within a day of this unit's clock (${new Date(nowS * 1000).toISOString()})`;
  }
  return null;
}
