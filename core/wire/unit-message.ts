// What a unit says besides batches (its statuses, its answers to requests, its temp-ID requests)
// is signed with its own key, the one that signs its batches: COSE_Sign1 as the backend's control
// messages are, with an external AAD of its own, so that neither kind of signature can pass for
// the other. The registry's record of the gateway a topic names holds the key that must verify
// it; a status on the broker's word alone cannot make a dead unit look alive, or a live one dead.
import type { SigningKey } from '../trust/index.js';
import { readCose, signCose, verifyCose } from './cose.js';

/** Not sent: supplied by both sides (docs/protocol.md, "Unit messages"). */
export const UNIT_AAD = Buffer.from('vgw-unit-v3');

export function signUnitMessage(key: SigningKey, doc: object): Buffer {
  return signCose(key, Buffer.from(JSON.stringify(doc)), UNIT_AAD);
}

export const UNIT_REFUSALS = ['malformed', 'unsigned', 'badSignature'] as const;
export type UnitRefusal = (typeof UNIT_REFUSALS)[number];

/** `json`: the signed payload's bytes; `doc`: what they parse to. */
export type OpenedUnitMessage = { ok: true; doc: unknown; json: Buffer; verified: boolean } | { ok: false; reason: UnitRefusal; detail: string };

/**
 * The JSON a unit signed. `publicKey` is the gateway's registered key; null reads the message
 * without checking who signed it (a collector run without a registry, for development only).
 * Never throws.
 */
export function openUnitMessage(bytes: Buffer, publicKey: Uint8Array | null): OpenedUnitMessage {
  const opened = openUnitMessageByAny(bytes, publicKey === null ? null : [publicKey]);
  return opened.ok ? { ok: true, doc: opened.doc, json: opened.json, verified: opened.verified } : opened;
}

/**
 * As openUnitMessage, for a gateway whose messages any of `publicKeys` may sign (during a rotation
 * of its key, docs/protocol.md "Gateway keys"); `signer` is the one that did.
 */
export function openUnitMessageByAny(bytes: Buffer, publicKeys: readonly Uint8Array[] | null): (OpenedUnitMessage & { ok: true; signer: Uint8Array | null }) | Extract<OpenedUnitMessage, { ok: false }> {
  const first = bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if (first === 0x7b) return { ok: false, reason: 'unsigned', detail: 'a bare JSON document: protocol 3 statuses and answers are signed by the unit (COSE_Sign1)' };
  const read = readCose(bytes);
  if (!read.ok) return { ok: false, reason: 'malformed', detail: read.reason };
  let signer: Uint8Array | null = null;
  if (publicKeys !== null) {
    signer = publicKeys.find((k) => verifyCose(read.message, k, UNIT_AAD)) ?? null;
    if (!signer) return { ok: false, reason: 'badSignature', detail: "the signature does not verify with the gateway's registered key" };
  }
  try {
    return { ok: true, doc: JSON.parse(read.message.payload.toString('utf8')) as unknown, json: read.message.payload, verified: publicKeys !== null, signer };
  } catch {
    return { ok: false, reason: 'malformed', detail: 'the signed payload is not JSON' };
  }
}
