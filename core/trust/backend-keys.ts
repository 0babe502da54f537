// Rotating the backend keys a unit trusts (issue 26, item 5), with an overlap: the backend
// announces the new set in a message signed with a key the unit trusts now, bound to the unit,
// retained, versioned like a configuration (a unit offline for a month gets the latest). A set
// must keep the key that signed it, so a wrong new key can never lock a unit out: add the new key
// (signed by the old), move the collectors to it, then drop the old (signed by the new). Pure: the
// daemon keeps the state file and hands the keys to its control gate.
import { createHash } from 'node:crypto';

export interface BackendKeysState {
  v: 1;
  gateway: string;
  /** Digest of the secrets file's backendKeys when this state was made: a technician's new file wins. */
  provisioned: string;
  /** The highest version announced so far. */
  version: number;
  /** Raw public keys, hex. */
  keys: string[];
  last: { at: number; version: number; outcome: 'applied' | 'refused'; reason?: string } | null;
}

export const MAX_BACKEND_KEYS = 8;

export function provisionedDigest(keys: readonly string[]): string {
  return createHash('sha256').update([...keys].sort().join(',')).digest('hex').slice(0, 16);
}

/** The keys a start trusts: the announced set while the secrets file's keys are the ones it started from, else the file's. */
export function trustedAtStart(state: BackendKeysState | null, gateway: string, provisioned: readonly string[]): { keys: string[]; state: BackendKeysState } {
  const digest = provisionedDigest(provisioned);
  if (state && state.gateway === gateway && state.provisioned === digest && state.keys.length > 0) return { keys: state.keys, state };
  return { keys: [...provisioned], state: { v: 1, gateway, provisioned: digest, version: 0, keys: [...provisioned], last: null } };
}

export type KeysVerdict =
  | { kind: 'old'; state: BackendKeysState }
  | { kind: 'refused'; state: BackendKeysState; reason: string }
  | { kind: 'applied'; state: BackendKeysState };

/** What a unit does with announcement `version` of `keys`, signed by `signer` (hex, a key it trusts). */
export function announceKeys(state: BackendKeysState, version: number, keys: readonly string[], signer: string, now: number): KeysVerdict {
  if (version <= state.version) return { kind: 'old', state };
  const refuse = (reason: string): KeysVerdict => ({ kind: 'refused', reason, state: { ...state, version, last: { at: now, version, outcome: 'refused', reason } } });
  const set = [...new Set(keys.map((k) => k.toLowerCase()))];
  if (set.length === 0 || set.length > MAX_BACKEND_KEYS) return refuse(`keys: ${set.length} keys; a unit trusts 1 to ${MAX_BACKEND_KEYS}`);
  if (set.some((k) => !/^[0-9a-f]{64}$/.test(k))) return refuse('keys: each is an Ed25519 public key, 64 hex digits');
  if (!set.includes(signer.toLowerCase())) return refuse(`keys: the set leaves out the key that signed it (${signer.slice(0, 16)}…): sign the announcement with a key it keeps`);
  return { kind: 'applied', state: { ...state, version, keys: set, last: { at: now, version, outcome: 'applied' } } };
}
