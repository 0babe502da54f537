// The rules of a gateway's signing-key rotation (core/trust/gateway-key.ts): the unit makes a key
// only for an order above what it has, switches only to the key it made once the backend accepted
// it as the successor of the key in use; the backend accepts a key's predecessor until the new key
// has been in use for the overlap, and ignores rows that do not chain from the registry's key.
import { describe, expect, it } from 'vitest';
import { acceptedKeys, type GatewayKeyRow, KEY_OVERLAP_MS, onSigningKeyMessage, signingKeyFromSeed, signingSeedAtStart } from '../../core/trust/index.js';

const SEED_0 = '01'.repeat(32);
const SEED_1 = '02'.repeat(32);
const SEED_2 = '03'.repeat(32);
const pub = (seed: string) => signingKeyFromSeed(Buffer.from(seed, 'hex')).publicKey.toString('hex');

describe('gateway signing key, the unit', () => {
  it('makes a key for a new order, asks again for a repeated one, switches only to its own key for the key in use, and ignores the old', () => {
    const seeds = [SEED_1, SEED_2];
    const newSeed = () => seeds.shift()!;
    const start = signingSeedAtStart(null, 'gw-1', SEED_0);
    expect(start.seed).toBe(SEED_0);
    let state = start.state;
    const step = (m: Parameters<typeof onSigningKeyMessage>[1], current = pub(SEED_0)) => onSigningKeyMessage(state, m, current, pub, newSeed, () => 'ID', 100);

    const ordered = step({ version: 1 });
    expect(ordered).toMatchObject({ kind: 'request', state: { version: 0, offered: 1, pending: { version: 1, seed: SEED_1, id: 'ID' } } });
    state = ordered.kind === 'request' ? ordered.state : state;
    // the retained order again (a reconnection): the same key asked for again, none made
    expect(step({ version: 1 })).toEqual({ kind: 'request', state });
    expect(seeds).toEqual([SEED_2]);
    // an acceptance of another key, or for another previous key, is refused and drops the pending key
    expect(step({ version: 1, key: pub(SEED_2), previous: pub(SEED_0) })).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/^key: the backend accepted .*not the key this unit made for rotation 1/) });
    expect(step({ version: 1, key: pub(SEED_1), previous: pub(SEED_2) })).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/^previous: .* is not the key this unit signs with/) });
    // the right one: switch
    const switched = step({ version: 1, key: pub(SEED_1), previous: pub(SEED_0) });
    expect(switched).toMatchObject({ kind: 'switch', state: { version: 1, seed: SEED_1, pending: null, last: { version: 1, outcome: 'applied', at: 100 } } });
    state = switched.kind === 'switch' ? switched.state : state;
    // after the switch: every message of rotation 1 again changes nothing
    expect(step({ version: 1 }, pub(SEED_1)).kind).toBe('none');
    expect(step({ version: 1, key: pub(SEED_1), previous: pub(SEED_0) }, pub(SEED_1)).kind).toBe('none');
    // a refusal of a rotation it asked for is said; of one it did not ask for, ignored
    const second = step({ version: 2 }, pub(SEED_1));
    state = second.kind === 'request' ? second.state : state;
    expect(step({ version: 3, error: 'no' }, pub(SEED_1)).kind).toBe('none');
    expect(step({ version: 2, error: 'pop: does not verify' }, pub(SEED_1))).toMatchObject({ kind: 'refused', state: { version: 1, pending: null, last: { version: 2, outcome: 'refused', reason: 'the backend refused the new key: pop: does not verify' } } });
    // an acceptance nobody asked for, above what it has, is refused (said), not followed
    expect(step({ version: 5, key: pub(SEED_2), previous: pub(SEED_1) }, pub(SEED_1))).toMatchObject({ kind: 'refused', reason: expect.stringMatching(/which this unit never asked for/) });
  });

  it('starts from the rotated key while the secrets file holds the key it grew from; a new secrets file wins', () => {
    const rotated = { ...signingSeedAtStart(null, 'gw-1', SEED_0).state, version: 1, seed: SEED_1 };
    expect(signingSeedAtStart(rotated, 'gw-1', SEED_0).seed).toBe(SEED_1);
    expect(signingSeedAtStart(rotated, 'gw-1', SEED_2)).toMatchObject({ seed: SEED_2, state: { version: 0, seed: null } });
    expect(signingSeedAtStart(rotated, 'gw-2', SEED_0).seed).toBe(SEED_0);
  });
});

describe('gateway signing key, the backend', () => {
  const row = (key: string, previous: string, version: number, firstUsedAt: number | null): GatewayKeyRow => ({ gateway: 'gw-1', key, previous, version, acceptedAt: 0, firstUsedAt });
  const [A, B, C, X] = [SEED_0, SEED_1, SEED_2, '04'.repeat(32)].map(pub);

  it('accepts the registry key and its successors, the predecessor until its successor was used for the overlap', () => {
    expect(acceptedKeys(A, [], 0)).toEqual({ current: A, keys: [A], version: 0 });
    expect(acceptedKeys(A, [row(B, A, 1, null)], 10 * KEY_OVERLAP_MS)).toEqual({ current: B, keys: [A, B], version: 1 });
    expect(acceptedKeys(A, [row(B, A, 1, 1000)], 1000 + KEY_OVERLAP_MS - 1)).toEqual({ current: B, keys: [A, B], version: 1 });
    expect(acceptedKeys(A, [row(B, A, 1, 1000)], 1000 + KEY_OVERLAP_MS)).toEqual({ current: B, keys: [B], version: 1 });
    expect(acceptedKeys(A, [row(C, B, 2, null), row(B, A, 1, 0)], KEY_OVERLAP_MS)).toEqual({ current: C, keys: [B, C], version: 2 });
    // rows that do not chain from the registry's key (a unit provisioned again with X) are ignored
    expect(acceptedKeys(X, [row(B, A, 1, 0), row(C, B, 2, 0)], KEY_OVERLAP_MS)).toEqual({ current: X, keys: [X], version: 0 });
    // a cycle cannot loop: each step must raise the rotation
    expect(acceptedKeys(A, [row(B, A, 1, null), row(A, B, 1, null)], 0)).toEqual({ current: B, keys: [A, B], version: 1 });
  });
});
