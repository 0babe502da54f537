// What a BlueTrace encounter keeps beside the temp ID, as bytes (the encounter's `metadata`, and
// on the wire after a one-byte length): the roles the gateway played in its exchanges, the
// strongest RSSI the phone said it measured (127 when it said none: the gateway was only
// central), and the phone's organisation code and model, each as a one-byte length and UTF-8.
// Every exchange of an encounter adds to the first two (mergeMetadata).
import { MAX_MODEL_BYTES, MAX_ORG_BYTES, RS_UNAVAILABLE } from './payload.js';

/** The gateway answered a phone's read and took its write. */
export const ROLE_PERIPHERAL = 0;
/** The gateway connected to a phone, read its temp ID and wrote its own. */
export const ROLE_CENTRAL = 1;
/** Exchanges in both roles within one encounter. */
export const ROLE_BOTH = 2;
export type BluetraceRole = typeof ROLE_PERIPHERAL | typeof ROLE_CENTRAL | typeof ROLE_BOTH;

/** role, rs, two lengths and the longest org and model. */
export const MAX_METADATA_BYTES = 4 + MAX_ORG_BYTES + MAX_MODEL_BYTES;

export interface BluetraceMetadata {
  role: BluetraceRole;
  /** The strongest RSSI (dBm) the phone said it measured of the gateway; 127 when it said none. */
  rs: number;
  org: string;
  model: string;
}

export function encodeMetadata(m: BluetraceMetadata): Buffer {
  const org = Buffer.from(m.org, 'utf8');
  const model = Buffer.from(m.model, 'utf8');
  const out = Buffer.alloc(4 + org.length + model.length);
  out[0] = m.role;
  out.writeInt8(m.rs, 1);
  out[2] = org.length;
  org.copy(out, 3);
  out[3 + org.length] = model.length;
  model.copy(out, 4 + org.length);
  return out;
}

/** The metadata's fields, or null when the bytes are not a BlueTrace metadata record. */
export function decodeMetadata(b: Uint8Array): BluetraceMetadata | null {
  if (b.length < 4 || b.length > MAX_METADATA_BYTES || (b[0] !== ROLE_PERIPHERAL && b[0] !== ROLE_CENTRAL && b[0] !== ROLE_BOTH)) return null;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const orgLength = b[2];
  if (3 + orgLength + 1 > b.length) return null;
  const modelLength = b[3 + orgLength];
  if (4 + orgLength + modelLength !== b.length) return null;
  return {
    role: b[0] as BluetraceRole,
    rs: buf.readInt8(1),
    org: buf.toString('utf8', 3, 3 + orgLength),
    model: buf.toString('utf8', 4 + orgLength, b.length),
  };
}

/**
 * One more exchange of the same encounter: the roles seen so far, and the strongest RSSI the
 * phone reported (127 never beats a measurement). The phone's org and model stay the first's.
 * `held` itself when nothing changes; either argument not a metadata record leaves `held` as it is.
 */
export function mergeMetadata(held: Buffer, next: Uint8Array): Buffer {
  if (held.length < 2 || next.length < 2) return held;
  const roles = held[0] === next[0] ? held[0] : ROLE_BOTH;
  const a = held.readInt8(1);
  const b = Buffer.from(next.buffer, next.byteOffset, next.length).readInt8(1);
  const rs = a === RS_UNAVAILABLE ? b : b === RS_UNAVAILABLE ? a : Math.max(a, b);
  if (roles === held[0] && rs === a) return held;
  const out = Buffer.from(held);
  out[0] = roles;
  out.writeInt8(rs, 1);
  return out;
}
