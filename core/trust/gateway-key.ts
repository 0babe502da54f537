// Rotating a gateway's signing key with an overlap (issue 26, item 5). The backend orders rotation
// N (signed, retained on `<base>/key`); the unit makes a new Ed25519 key, keeps it beside its
// database, and asks for it to be registered with a request signed by its current key and a proof
// the new key signs. The backend registers it as that key's successor and says so, retained; only
// then does the unit sign with it. The backend accepts both keys until it has seen the new one in
// use for a while (`KEY_OVERLAP_MS`), so nothing in flight at the switch is refused. Pure: the
// daemon keeps the state file and the collector the database rows.
import { createHash } from 'node:crypto';

// ---- the unit's side ----------------------------------------------------------------------

/** Kept beside the database, mode 0600 (it holds private seeds), replaced whole. */
export interface SigningKeyState {
  v: 1;
  gateway: string;
  /** Digest of the secrets file's signingKey this state grew from: a technician's new file wins. */
  provisioned: string;
  /** The rotation in use (0: the provisioned key). */
  version: number;
  /** The seed in use after a rotation (hex); null: the secrets file's. */
  seed: string | null;
  /** The highest rotation the backend ordered or answered: an older message changes nothing. */
  offered: number;
  /** A key made for rotation `version`, awaiting the backend's acceptance. */
  pending: { version: number; seed: string; id: string } | null;
  last: { at: number; version: number; outcome: 'applied' | 'refused'; reason?: string } | null;
}

export function seedDigest(seedHex: string): string {
  return createHash('sha256').update(seedHex.toLowerCase()).digest('hex').slice(0, 16);
}

/** The seed a start signs with: the rotated one while the secrets file still holds the seed it grew from. */
export function signingSeedAtStart(state: SigningKeyState | null, gateway: string, provisionedSeed: string): { seed: string; state: SigningKeyState } {
  const digest = seedDigest(provisionedSeed);
  if (state && state.gateway === gateway && state.provisioned === digest) return { seed: state.seed ?? provisionedSeed, state };
  return { seed: provisionedSeed, state: { v: 1, gateway, provisioned: digest, version: 0, seed: null, offered: 0, pending: null, last: null } };
}

export type SigningKeyStep =
  /** Nothing to do: an old or repeated message. */
  | { kind: 'none' }
  /** Ask the backend to register the pending key (keep the state first). */
  | { kind: 'request'; state: SigningKeyState }
  /** Sign with the pending key from now on (keep the state, then restart). */
  | { kind: 'switch'; state: SigningKeyState }
  /** The backend refused, or accepted a key that is not ours: said in the status. */
  | { kind: 'refused'; state: SigningKeyState; reason: string };

/**
 * What the unit does with a signed message on `<base>/key`. `currentPublic` and `publicOf` are
 * the keys as hex; `newSeed` and `newId` make a key and a request id when an order needs them.
 */
export function onSigningKeyMessage(
  state: SigningKeyState,
  message: { version: number; key?: string; previous?: string; error?: string },
  currentPublic: string, publicOf: (seed: string) => string, newSeed: () => string, newId: () => string, now: number,
): SigningKeyStep {
  const refuse = (reason: string): SigningKeyStep => ({ kind: 'refused', reason, state: { ...state, offered: Math.max(state.offered, message.version), pending: null, last: { at: now, version: message.version, outcome: 'refused', reason } } });
  if (message.version <= state.version) return { kind: 'none' };
  const pending = state.pending;
  if (message.error !== undefined) {
    if (!pending || pending.version !== message.version) return { kind: 'none' };
    return refuse(`the backend refused the new key: ${message.error}`);
  }
  if (message.key === undefined) {
    // An order. Repeated (a restart, a reconnection): ask again for the key already made.
    if (pending && pending.version === message.version) return { kind: 'request', state };
    if (message.version <= state.offered) return { kind: 'none' };
    return { kind: 'request', state: { ...state, offered: message.version, pending: { version: message.version, seed: newSeed(), id: newId() } } };
  }
  if (!pending || pending.version !== message.version) {
    if (message.version <= state.offered) return { kind: 'none' };
    return refuse(`key: the backend accepted ${message.key.slice(0, 16)}… for rotation ${message.version}, which this unit never asked for`);
  }
  if (message.key !== publicOf(pending.seed)) return refuse(`key: the backend accepted ${message.key.slice(0, 16)}…, not the key this unit made for rotation ${message.version}`);
  if (message.previous !== currentPublic) return refuse(`previous: ${String(message.previous).slice(0, 16)}… is not the key this unit signs with`);
  return { kind: 'switch', state: { ...state, version: pending.version, seed: pending.seed, offered: Math.max(state.offered, pending.version), pending: null, last: { at: now, version: pending.version, outcome: 'applied' } } };
}

// ---- the backend's side -------------------------------------------------------------------

/** A key the backend registered as a gateway's successor to `previous`. */
export interface GatewayKeyRow {
  gateway: string;
  /** Raw Ed25519 public keys, hex. */
  key: string;
  previous: string;
  version: number;
  acceptedAt: number;
  /** When a batch or status signed with it was first seen (null: not yet). */
  firstUsedAt: number | null;
}

/** How long the key before a rotation is still accepted once the new one is in use. */
export const KEY_OVERLAP_MS = 3_600_000;

/**
 * The keys a gateway's messages may be signed with: the registry's key and its successors, in
 * order, the last one current; a key is dropped once its successor has been in use for the overlap.
 * Rows that do not chain from the registry's key (a unit provisioned again) are ignored.
 */
export function acceptedKeys(registered: string, rows: readonly GatewayKeyRow[], now: number, overlapMs = KEY_OVERLAP_MS): { current: string; keys: string[]; version: number } {
  const keys = [registered];
  let current = registered;
  let version = 0;
  for (let guard = 0; guard <= rows.length; guard++) {
    const next = rows.filter((r) => r.previous === current && r.version > version).sort((a, b) => a.version - b.version)[0];
    if (!next) break;
    if (next.firstUsedAt !== null && now - next.firstUsedAt >= overlapMs) keys.splice(keys.indexOf(current), 1);
    keys.push(next.key);
    current = next.key;
    version = next.version;
  }
  return { current, keys, version };
}
