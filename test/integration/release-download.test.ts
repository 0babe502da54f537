// The updater's download against a real HTTPS server (daemon/updater.ts): a tarball whose hash is
// not the one its signed manifest names is fetched once more from the first byte (what a power cut
// may leave in the tail of a kept part), then refused, with nothing installed or switched.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { emptySlotState, signManifest } from '../../core/release/index.js';
import { signingKeyFromSeed } from '../../core/trust/index.js';
import { linkedVersion, writeSlotState } from '../../daemon/index.js';
import { Updater } from '../../daemon/updater.js';
import { releaseManifest, releaseTarball } from '../../simulators/release-builds.js';
import { type ReleaseServer, startReleaseServer } from '../../simulators/release-server.js';
import { waitFor } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-release-download-');
let server: ReleaseServer | undefined;
afterAll(async () => {
  await server?.close();
});

describe('the updater\'s download', () => {
  it('fetches a tarball whose hash is wrong once more from the first byte, then refuses it and changes nothing', async () => {
    const root = join(dir, 'root');
    mkdirSync(join(root, 'releases/1.0.0/dist/cli'), { recursive: true });
    writeFileSync(join(root, 'releases/1.0.0/dist/cli/main.js'), '');
    symlinkSync('releases/1.0.0', join(root, 'current'));
    writeSlotState(root, emptySlotState('1.0.0'));
    // served: bytes of the right size that are not the release the manifest names
    const served = join(dir, 'served');
    mkdirSync(served);
    const real = randomBytes(200_000);
    const altered = Buffer.from(real);
    altered[1000] ^= 1;
    writeFileSync(join(served, releaseTarball('1.1.0')), altered);
    const key = signingKeyFromSeed(randomBytes(32));
    writeFileSync(join(served, releaseManifest('1.1.0')), signManifest(key, {
      v: 1, name: 'venue-gateway', version: '1.1.0', commit: 'abcdef1', arch: process.arch as 'x64', platform: 'linux', nodeAbi: process.versions.modules,
      artifact: { file: releaseTarball('1.1.0'), bytes: real.length, sha256: createHash('sha256').update(real).digest('hex') }, builtAt: new Date().toISOString(),
    }));
    server = await startReleaseServer(served, join(dir, 'pki'));
    let restarts = 0;
    const updater = new Updater({
      root, releaseKeys: [key.publicKey], ca: readFileSync(server.ca), running: { version: '1.0.0', arch: process.arch, nodeAbi: process.versions.modules }, slot: '1.0.0',
      healthGateMs: 60_000, healthy: () => true, restart: () => restarts++, onChange: () => {}, log: pino({ level: 'silent' }),
    });
    expect(updater.requested({ v: 3, op: 'update', manifest: `${server.url}${releaseManifest('1.1.0')}`, version: '1.1.0' })).toBeNull();
    const last = await waitFor('the outcome', () => updater.status().last?.version === '1.1.0' && updater.status().last, 30_000);
    expect(last).toMatchObject({ outcome: 'refused', reason: 'artifact.sha256: the tarball downloaded is not the one the manifest names (altered on the server or on the way)' });
    expect(server.requests.filter((r) => r.file === releaseTarball('1.1.0')).map((r) => [r.status, r.range])).toEqual([[200, null], [200, null]]);
    expect(existsSync(join(root, 'releases/1.1.0'))).toBe(false);
    expect(existsSync(join(root, 'downloads', `${releaseTarball('1.1.0')}.part`))).toBe(false);
    expect([linkedVersion(root, 'current'), restarts, updater.status().state]).toEqual(['1.0.0', 0, 'idle']);
  });
});
