// The rules of backend key rotation (core/trust/backend-keys.ts): a set is taken only above the
// last version and only when it keeps the key that signed it; a technician's new secrets file wins.
import { describe, expect, it } from 'vitest';
import { announceKeys, trustedAtStart } from '../../core/trust/index.js';

const OLD = 'a'.repeat(64);
const NEW = 'b'.repeat(64);

describe('backend keys, pure', () => {
  it('takes a newer set that keeps its signer; refuses one that drops it, or is empty, too big or not keys; ignores old versions', () => {
    const start = trustedAtStart(null, 'gw-1', [OLD]);
    expect(start.keys).toEqual([OLD]);
    let state = start.state;
    const overlap = announceKeys(state, 1, [OLD, NEW, NEW], OLD, 10);
    expect(overlap).toMatchObject({ kind: 'applied', state: { version: 1, keys: [OLD, NEW], last: { version: 1, outcome: 'applied', at: 10 } } });
    state = overlap.state;
    expect(announceKeys(state, 1, [NEW], NEW, 11).kind).toBe('old');
    expect(announceKeys(state, 2, [OLD], NEW, 12)).toMatchObject({ kind: 'refused', state: { version: 2, keys: [OLD, NEW] }, reason: expect.stringMatching(/^keys: the set leaves out the key that signed it \(bbbbbbbbbbbbbbbb…\)/) });
    expect(announceKeys(state, 3, [], OLD, 12)).toMatchObject({ kind: 'refused', reason: 'keys: 0 keys; a unit trusts 1 to 8' });
    expect(announceKeys(state, 3, Array.from({ length: 9 }, (_, i) => String(i).repeat(64)), OLD, 12)).toMatchObject({ kind: 'refused', reason: 'keys: 9 keys; a unit trusts 1 to 8' });
    expect(announceKeys(state, 3, [OLD, 'xyz'], OLD, 12)).toMatchObject({ kind: 'refused', reason: 'keys: each is an Ed25519 public key, 64 hex digits' });
    const retired = announceKeys(state, 4, [NEW.toUpperCase()], NEW, 13);
    expect(retired).toMatchObject({ kind: 'applied', state: { version: 4, keys: [NEW] } });
    // at the next start the announced set holds, unless the secrets file changed since
    expect(trustedAtStart(retired.state, 'gw-1', [OLD]).keys).toEqual([NEW]);
    expect(trustedAtStart(retired.state, 'gw-1', [NEW, OLD]).keys).toEqual([NEW, OLD]);
    expect(trustedAtStart(retired.state, 'gw-2', [OLD]).keys).toEqual([OLD]);
  });
});
