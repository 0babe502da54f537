// A release's manifest (core/release/manifest.ts): signed with a release key and nothing else
// passes for it; versions order as semantic versions do; a unit refuses another architecture or
// Node ABI, and an older version unless told to downgrade.
import { describe, expect, it } from 'vitest';
import { compareVersions, openManifest, type ReleaseManifest, releaseRefusal, signManifest } from '../../core/release/index.js';
import { signingKeyFromSeed } from '../../core/trust/index.js';
import { ControlSigner } from '../../core/wire/index.js';

const key = signingKeyFromSeed(Buffer.alloc(32, 0x31));
const manifest: ReleaseManifest = {
  v: 1, name: 'venue-gateway', version: '0.2.0', commit: '1a2b3c4d5e6f', arch: 'arm64', platform: 'linux', nodeAbi: '115',
  artifact: { file: 'venue-gateway-0.2.0-linux-arm64.tar.gz', bytes: 1234, sha256: 'ab'.repeat(32) }, builtAt: '2026-12-07T00:00:00.000Z',
};

describe('release manifest', () => {
  it('opens only with a trusted release key, and never as a control message of the same key', () => {
    const signed = signManifest(key, manifest);
    expect(openManifest(signed, [key.publicKey])).toEqual({ ok: true, manifest });
    expect(openManifest(signed, [signingKeyFromSeed(Buffer.alloc(32, 0x32)).publicKey])).toMatchObject({ ok: false, reason: expect.stringMatching(/not a release key this unit trusts/) });
    // the same key signing the same JSON as a control message: another external AAD, so it does not verify
    const asControl = new ControlSigner(Buffer.alloc(32, 0x31)).sign({ kind: 'ack', venue: 'v', gateway: 'g', ...manifest } as never);
    expect(openManifest(asControl, [key.publicKey])).toMatchObject({ ok: false, reason: expect.stringMatching(/^manifest: the signature does not verify/) });
    expect(openManifest(Buffer.from('{}'), [key.publicKey])).toMatchObject({ ok: false, reason: expect.stringMatching(/^manifest: not a signed manifest/) });
    expect(() => signManifest(key, { ...manifest, arch: 'mips' as never })).toThrow();
  });

  it('orders versions, and refuses what this unit cannot or should not run', () => {
    expect([compareVersions('0.2.0', '0.10.0'), compareVersions('1.0.0', '1.0.0'), compareVersions('1.0.0-rc.1', '1.0.0'), compareVersions('1.0.1', '1.0.0')]).toEqual([-1, 0, -1, 1]);
    const unit = { arch: 'arm64', nodeAbi: '115', version: '0.1.0' };
    expect(releaseRefusal(manifest, unit)).toBeNull();
    expect(releaseRefusal(manifest, { ...unit, arch: 'x64' })).toBe('arch: the release is for linux-arm64, this unit is linux-x64');
    expect(releaseRefusal(manifest, { ...unit, nodeAbi: '127' })).toBe("nodeAbi: the release's native addons are for Node ABI 115, this unit runs 127");
    expect(releaseRefusal(manifest, { ...unit, version: '0.3.0' })).toBe('version: 0.2.0 is older than the running 0.3.0 (say downgrade to install it)');
    expect(releaseRefusal(manifest, { ...unit, version: '0.3.0' }, true)).toBeNull();
    expect(releaseRefusal(manifest, { ...unit, version: '0.2.0' })).toBeNull(); // the same version again (a re-install) is not a downgrade
  });
});
