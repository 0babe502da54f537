// The backend's half of BlueTrace issuance: a gateway asks for its venue's temp IDs on
// `<base>/tempids/req`; the backend, which alone holds the 32-byte key, issues them for the UID
// in the gateway's registration record (OpenTrace's rules: 100, 15 minutes each) and answers on
// `<base>/tempids`, or says why not.
import { readFileSync } from 'node:fs';
import { issueTempIds, TEMPID_KEY_BYTES } from '../core/bluetrace/index.js';
import { assertPrivateFile, TrustError } from '../core/trust/index.js';
import { isHex } from '../core/identifiers/index.js';
import { MessageError, parseMessage, requestIdOf, TempIdsResponse, tempIdsRequestSchema, WIRE_SCHEMA_VERSION } from '../core/wire/index.js';
import type { GatewayRegistry } from './verify.js';

/** How long a batch lasts before the gateway should ask again (OpenTrace refreshes every 12 h). */
export const REFRESH_INTERVAL_S = 12 * 3600;
const MAX_REQUEST_BYTES = 4096;

export interface Issuer {
  key: Buffer;
  registry: GatewayRegistry | null;
}

/** The answer to one request on `<venue>/<gateway>/tempids/req`, or null when it has no id to answer to. */
export function answerTempIdRequest(issuer: Issuer, venue: string, gateway: string, payload: Buffer, nowS: number): TempIdsResponse | null {
  let request;
  try {
    request = parseMessage(payload, tempIdsRequestSchema, MAX_REQUEST_BYTES);
  } catch (err) {
    const id = requestIdOf(payload);
    return id ? { v: WIRE_SCHEMA_VERSION, id, error: (err as MessageError).message } : null;
  }
  const entry = issuer.registry?.lookup(gateway);
  const refuse = (error: string): TempIdsResponse => ({ v: WIRE_SCHEMA_VERSION, id: request.id, error });
  if (!entry) return refuse(`gateway "${gateway}" is not registered: add its registration record to the backend's registry`);
  if (entry.record.venue !== venue) return refuse(`gateway "${gateway}" is registered at venue "${entry.record.venue}", not "${venue}"`);
  const uid = entry.record.bluetraceUid;
  if (!uid) return refuse(`gateway "${gateway}" has no bluetraceUid in its registration record: provision it again, or add one`);
  return { v: WIRE_SCHEMA_VERSION, id: request.id, tempIds: issueTempIds(issuer.key, uid, nowS, request.count), refreshAt: nowS + REFRESH_INTERVAL_S };
}

/** The BlueTrace key from its file: 64 hex digits, readable by the backend's user only. */
export function loadBluetraceKey(path: string): Buffer {
  assertPrivateFile(path, 'BlueTrace key file');
  const text = readFileSync(path, 'utf8').trim();
  if (!isHex(text, TEMPID_KEY_BYTES)) throw new TrustError(`BlueTrace key file ${path}: expected 64 hex digits (the 32-byte AES-256-GCM key)`);
  return Buffer.from(text, 'hex');
}
