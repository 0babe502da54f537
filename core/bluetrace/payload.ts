// The two BlueTrace v2 payloads of an exchange, UTF-8 JSON (OpenTrace's V2ReadRequestPayload and
// V2WriteRequestPayload): the central READS the peripheral's {v, id, o, mp}, then WRITES its own
// {v, id, o, mc, rs}. Phones are untrusted: parsing never throws, and each refusal is counted
// by reason. Field order is an implementation detail of Gson; nothing here depends on it.
import { tempIdBytes } from './tempid.js';

export const BLUETRACE_VERSION = 2;
/** ATT caps an attribute value at 512 bytes; a payload longer than that is refused unread. */
export const MAX_PAYLOAD_BYTES = 512;
export const MAX_ORG_BYTES = 32;
export const MAX_MODEL_BYTES = 64;

export type PayloadRefusal = 'tooLong' | 'notJson' | 'wrongVersion' | 'badTempId' | 'badOrg' | 'badModel' | 'badRssi';
export type PayloadRefusals = Record<PayloadRefusal, number>;

export function newPayloadRefusals(): PayloadRefusals {
  return { tooLong: 0, notJson: 0, wrongVersion: 0, badTempId: 0, badOrg: 0, badModel: 0, badRssi: 0 };
}

/** What a peer said of itself in an exchange. `rs` only in a central's write. */
export interface PeerPayload {
  tempId: Buffer;
  org: string;
  model: string;
  /** The RSSI (dBm) the central measured for the peripheral; only in a write. */
  rs?: number;
}

export function readPayload(tempId: string, org: string, model: string): Buffer {
  return Buffer.from(JSON.stringify({ v: BLUETRACE_VERSION, id: tempId, o: org, mp: model }), 'utf8');
}

/**
 * HCI's "RSSI not available": the `rs` a central writes when its controller measured none, and
 * the metadata's `rs` when the gateway was central (the phone told it nothing).
 */
export const RS_UNAVAILABLE = 127;

/**
 * The `rs` written to a phone. OpenTrace has no "not available": a phone stores whatever number
 * it gets as the signal it was met at, and 127 would read as the strongest signal there is. So
 * where the controller measured none the gateway writes -127, the weakest HCI can report: the
 * phone still records the venue, at a signal no proximity estimate counts as close.
 */
export function rsForPhone(rssi: number): number {
  return rssi === RS_UNAVAILABLE ? RS_WEAKEST : rssi;
}

export const RS_WEAKEST = -127;

export function writePayload(tempId: string, org: string, model: string, rs: number): Buffer {
  return Buffer.from(JSON.stringify({ v: BLUETRACE_VERSION, id: tempId, o: org, rs, mc: model }), 'utf8');
}

const shortText = (v: unknown, maxBytes: number): v is string =>
  typeof v === 'string' && v.length > 0 && Buffer.byteLength(v, 'utf8') <= maxBytes;

/**
 * Parses the payload a peer sent: `'read'` what a peripheral answered our read with,
 * `'write'` what a central wrote to us. Null, with the reason counted, when it is not one.
 */
export function parsePayload(bytes: Uint8Array, kind: 'read' | 'write', refusals: PayloadRefusals): PeerPayload | null {
  if (bytes.length > MAX_PAYLOAD_BYTES) {
    refusals.tooLong++;
    return null;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    value = undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    refusals.notJson++;
    return null;
  }
  const p = value as Record<string, unknown>;
  if (p.v !== BLUETRACE_VERSION) {
    refusals.wrongVersion++;
    return null;
  }
  const tempId = tempIdBytes(p.id);
  if (!tempId) {
    refusals.badTempId++;
    return null;
  }
  if (!shortText(p.o, MAX_ORG_BYTES)) {
    refusals.badOrg++;
    return null;
  }
  const model = kind === 'read' ? p.mp : p.mc;
  if (!shortText(model, MAX_MODEL_BYTES)) {
    refusals.badModel++;
    return null;
  }
  if (kind === 'read') return { tempId, org: p.o, model };
  // 127 is HCI's "not available": what a central writes when its controller gives no RSSI (btvirt)
  if (typeof p.rs !== 'number' || !Number.isInteger(p.rs) || ((p.rs < -127 || p.rs > 20) && p.rs !== RS_UNAVAILABLE)) {
    refusals.badRssi++;
    return null;
  }
  return { tempId, org: p.o, model, rs: p.rs };
}
