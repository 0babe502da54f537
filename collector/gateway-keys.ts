// The backend's half of a gateway's signing-key rotation (docs/protocol.md, "Gateway keys"): a unit
// asks on `<base>/key/req`, signed with the key it uses now, to register a new key it proves it
// holds; the collector registers it in the database as that key's successor and answers, signed and
// retained on `<base>/key`, so the unit switches even when it was away when the answer went out.
import type { GatewayKeyRow } from '../core/trust/index.js';
import { publicKeyObject, verifyBytes } from '../core/trust/index.js';
import { type MessageError, parseMessage, requestVersionOf, signingKeyProofBytes, signingKeyRequestSchema } from '../core/wire/index.js';
import type { GovernanceStore } from './store.js';
import type { GatewayRegistry } from './verify.js';

const MAX_REQUEST_BYTES = 4096;

/** What goes back on `<base>/key` (to be signed): the key registered, or why not; null when there is nothing to answer. */
export type SigningKeyAnswer = { version: number; previous: string; key: string } | { version: number; error: string };

/**
 * Registers the key a gateway asks for. `signer` is the key that signed the request (its
 * signature already checked against the gateway's accepted keys): it must be the one in use now,
 * or, for a request repeated after it was registered, the key the new one succeeds.
 */
export async function answerSigningKeyRequest(
  store: Pick<GovernanceStore, 'addGatewayKey'>, registry: GatewayRegistry, venue: string, gateway: string, signer: Buffer, payload: Buffer, now: number,
): Promise<{ answer: SigningKeyAnswer; registered: GatewayKeyRow | null } | null> {
  let request;
  try {
    request = parseMessage(payload, signingKeyRequestSchema, MAX_REQUEST_BYTES);
  } catch (err) {
    const version = requestVersionOf(payload);
    return version === null ? null : { answer: { version, error: (err as MessageError).message }, registered: null };
  }
  const refuse = (error: string) => ({ answer: { version: request.version, error }, registered: null });
  const entry = registry.lookup(gateway);
  if (!entry) return refuse(`gateway "${gateway}" is not registered`);
  const previous = signer.toString('hex');
  const proof = signingKeyProofBytes(venue, gateway, request.version, previous, request.key);
  if (!verifyBytes(publicKeyObject(Buffer.from(request.key, 'hex')), proof, Buffer.from(request.pop, 'hex'))) {
    return refuse('pop: does not verify with the new key over this unit, rotation, previous key and key (docs/protocol.md, "Gateway keys")');
  }
  const current = entry.signer.toString('hex');
  const repeated = request.key === current && entry.keys.some((k) => k.signer.equals(signer));
  if (!repeated && previous !== current) return refuse('signed with a key this unit no longer uses: sign the request with the current key');
  if (!repeated && request.version <= entry.version) return refuse(`version: rotation ${request.version} is not above the unit's current rotation ${entry.version}`);
  if (request.key === previous) return refuse('key: the new key is the key in use');
  const row = await store.addGatewayKey({ gateway, key: request.key, previous, version: request.version, acceptedAt: now, firstUsedAt: null });
  if (row.previous !== previous || row.version !== request.version) return refuse('key: already registered for this unit at another rotation; make a new key');
  return { answer: { version: row.version, previous: row.previous, key: row.key }, registered: row };
}
