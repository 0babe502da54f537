// The signed envelope of what the backend tells a unit: COSE_Sign1 checked against the COSE working
// group's own example, then the rules a unit applies (key, signature, kind, addressee, freshness).
import { describe, expect, it } from 'vitest';
import {
  CONTROL_AAD, ControlSigner, keyId, openControl, readCose, RequestWindow, signCose, toBeSigned, trustedKey, verifyCose,
} from '../../core/wire/index.js';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../harness/tmp.js';
import { loadBackendKeySeed, signBytes, signingKeyFromSeed, writeNewBackendKey } from '../../core/trust/index.js';

// cose-wg/Examples, eddsa-examples/eddsa-sig-01.json (public domain): "EdDSA - 25519 - sign0",
// the RFC 8032 test key 1, protected {1: -8, 3: 0}, kid "11" unprotected, no external data.
const EXAMPLE = {
  d: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
  x: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
  toBeSigned: '846A5369676E61747572653145A2012703004054546869732069732074686520636F6E74656E742E',
  cbor: 'D28445A201270300A10442313154546869732069732074686520636F6E74656E742E58407142FD2FF96D56DB85BEE905A76BA1D0B7321A95C8C4D3607C5781932B7AFB8711497DFA751BF40B58B3BCC32300B1487F3DB34085EEF013BF08F4A44D6FEF0D',
};

describe('COSE_Sign1 with EdDSA', () => {
  it("reads and verifies the COSE working group's example, and builds the same bytes to be signed and the same signature", () => {
    const read = readCose(Buffer.from(EXAMPLE.cbor, 'hex'));
    if (!read.ok) throw new Error(read.reason);
    expect(read.message.payload.toString()).toBe('This is the content.');
    expect(read.message.kid?.toString()).toBe('11');
    const tbs = toBeSigned(read.message.protectedBytes, Buffer.alloc(0), read.message.payload);
    expect(tbs.toString('hex').toUpperCase()).toBe(EXAMPLE.toBeSigned);
    expect(verifyCose(read.message, Buffer.from(EXAMPLE.x, 'hex'), Buffer.alloc(0))).toBe(true);
    const key = signingKeyFromSeed(Buffer.from(EXAMPLE.d, 'hex'));
    expect(key.publicKey.toString('hex')).toBe(EXAMPLE.x);
    expect(signBytes(key, tbs)).toEqual(read.message.signature);
    // the same signature under other external data does not verify
    expect(verifyCose(read.message, Buffer.from(EXAMPLE.x, 'hex'), CONTROL_AAD)).toBe(false);
  });

  it('what it signs, it reads back: tag 18, the key id in the protected header', () => {
    const key = signingKeyFromSeed(Buffer.alloc(32, 7));
    const bytes = signCose(key, Buffer.from('{"a":1}'), CONTROL_AAD);
    expect(bytes.subarray(0, 2).toString('hex')).toBe('d284');
    const read = readCose(bytes);
    if (!read.ok) throw new Error(read.reason);
    expect(read.message.kid).toEqual(keyId(key.publicKey));
    expect(read.message.protectedBytes.toString('hex')).toBe(`a201270448${keyId(key.publicKey).toString('hex')}`);
    expect(verifyCose(read.message, key.publicKey, CONTROL_AAD)).toBe(true);
  });

  it('never throws on junk', () => {
    for (const junk of ['', 'ff', 'd2', 'd28440404040', '84404040', 'd284a0a0a0a0', 'd28441ffa04040', '7b7d']) {
      expect(readCose(Buffer.from(junk, 'hex')).ok).toBe(false);
    }
  });
});

describe('control messages', () => {
  const backend = new ControlSigner(Buffer.alloc(32, 1));
  const other = new ControlSigner(Buffer.alloc(32, 2));
  const trusted = [trustedKey(backend.key.publicKey)];
  const to = { venue: 'mall-01', gateway: 'gw-01' };
  const ack = { kind: 'ack' as const, ...to, acks: ['01JDZ8Q4M7W6T9N3V2X5Y8Z0AB'] };

  it('accepts a message signed by a trusted key, for this unit, of the kind expected', () => {
    const opened = openControl(backend.sign(ack), 'ack', to, trusted, 65_536);
    expect(opened).toEqual({ ok: true, kid: backend.kid.toString('hex'), message: { v: 3, ...ack } });
  });

  it.each([
    ['unsigned JSON', Buffer.from(JSON.stringify({ v: 3, ...ack })), 'unsigned', /^payload: a bare JSON object/],
    ['not CBOR', Buffer.from('d2ff', 'hex'), 'malformed', /not CBOR|COSE_Sign1/],
    ['an unknown key', other.sign(ack), 'unknownKey', /^kid: [0-9a-f]{16} is not a backend key this unit trusts/],
    ['meant for another unit', backend.sign({ ...ack, gateway: 'gw-02' }), 'wrongGateway', /^gateway: meant for mall-01\/gw-02, not mall-01\/gw-01/],
    ['another kind', backend.sign({ kind: 'tempIds', ...to, id: '01JDZ8Q4M7W6T9N3V2X5Y8Z0AB', error: 'x' }), 'wrongKind', /^kind: "tempIds" where "ack" belongs/],
    ['a bad field', backend.sign({ ...ack, acks: ['nope'] }), 'invalid', /^acks\.0: must be a ULID/],
  ] as const)('refuses %s, by name', (_what, bytes, reason, detail) => {
    const opened = openControl(bytes, 'ack', to, trusted, 65_536);
    expect(opened.ok).toBe(false);
    if (opened.ok) return;
    expect(opened.reason).toBe(reason);
    expect(opened.detail).toMatch(detail);
  });

  it('refuses a message whose payload was changed after signing', () => {
    const bytes = backend.sign(ack);
    const at = bytes.indexOf(Buffer.from('mall-01'));
    bytes[at] = 'n'.charCodeAt(0);
    expect(openControl(bytes, 'ack', to, trusted, 65_536)).toMatchObject({ ok: false, reason: 'badSignature' });
  });

  it('a request: accepted once within the window, refused when replayed or stale, and says whose clock may be wrong', () => {
    const window = new RequestWindow(300_000);
    const now = Date.UTC(2026, 11, 7, 9);
    const request = { issuedAt: now - 10_000, nonce: 'AAAAAAAAAAAAAAAAAAAAAA' };
    expect(window.check(request, now, true)).toEqual({ ok: true });
    expect(window.check(request, now + 1000, true)).toMatchObject({ ok: false, reason: 'replayed' });
    expect(window.check({ ...request, nonce: 'BBBBBBBBBBBBBBBBBBBBBB' }, now + 290_001, true)).toMatchObject({ ok: false, reason: 'stale' });
    expect(window.check({ issuedAt: now + 400_000, nonce: 'CCCCCCCCCCCCCCCCCCCCCC' }, now, false)).toMatchObject({
      ok: false, reason: 'stale', detail: expect.stringMatching(/400 s ahead of this unit's clock \(this unit's clock is not synchronised/),
    });
  });

  it('a request window forgets what has gone stale, and holds at most its capacity', () => {
    const window = new RequestWindow(1000, 3);
    for (let i = 0; i < 10; i++) expect(window.check({ issuedAt: i * 10, nonce: `nonce-number-${String(i).padStart(4, '0')}` }, i * 10, true).ok).toBe(true);
    expect(window.entries().length).toBeLessThanOrEqual(3);
  });

  it('a request window restored from what a previous run accepted refuses those nonces again, and forgets the expired ones', () => {
    const now = Date.UTC(2026, 11, 7, 9);
    const before = new RequestWindow(300_000);
    const request = { issuedAt: now - 10_000, nonce: 'DDDDDDDDDDDDDDDDDDDDDD' };
    expect(before.check(request, now, true).ok).toBe(true);
    const restored = new RequestWindow(300_000, undefined, JSON.parse(JSON.stringify(before.entries())) as Array<[string, number]>);
    expect(restored.check(request, now + 5000, true)).toMatchObject({ ok: false, reason: 'replayed' });
    // past its expiry the entry goes (the request itself would be stale by then)
    const later = now + 300_001;
    expect(restored.check({ issuedAt: later, nonce: 'EEEEEEEEEEEEEEEEEEEEEE' }, later, true).ok).toBe(true);
    expect(restored.entries().map(([n]) => n)).toEqual(['EEEEEEEEEEEEEEEEEEEEEE']);
  });

  it('a request names where its answer goes, inside the signature', () => {
    const request = { kind: 'request' as const, ...to, issuedAt: 1, nonce: 'AAAAAAAAAAAAAAAAAAAAAA', replyTo: 'vgw/v3/replies/tool', op: 'status' };
    const opened = openControl(backend.sign(request), 'request', to, trusted, 65_536);
    expect(opened).toMatchObject({ ok: true, message: { replyTo: 'vgw/v3/replies/tool', op: 'status' } });
  });
});

describe('the backend key file', () => {
  const dir = tempDir('vgw-backend-key-');
  it('is read only when its owner alone may read it, holds 64 hex digits, and says how to make one when missing', () => {
    const path = join(dir, 'backend.key');
    const seed = writeNewBackendKey(path);
    expect(loadBackendKeySeed(path)).toEqual(seed);
    expect(() => writeNewBackendKey(path)).toThrow(/EEXIST/); // never overwritten: units trust it
    chmodSync(path, 0o640);
    expect(() => loadBackendKeySeed(path)).toThrow(/^backend key file .*backend\.key is readable by others \(mode 640\): run `chmod 600 /);
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, 'not a key\n', { mode: 0o600 });
    expect(() => loadBackendKeySeed(bad)).toThrow(/^backend key file .*bad\.key: expected 64 hex digits/);
    expect(() => loadBackendKeySeed(join(dir, 'none.key'))).toThrow(/cannot read it \(ENOENT\): check the path, or make one with `vgw backend-key --out /);
  });
});
