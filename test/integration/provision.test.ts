// `vgw provision` as a technician runs it: prompts answered through stdin (a wrong answer is
// asked again), or flags alone; files, modes, keys and the registration record checked.
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { computeEid, identityKeyForResolver, x25519PublicFromPrivate } from '../../core/protocols/index.js';
import { registrationSchema, secretsSchema, signingKeyFromSeed } from '../../core/trust/index.js';
import { runVgw } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { TEST_BACKEND } from '../harness/identity.js';

const dir = tempDir('vgw-provision-');
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

describe('vgw provision', () => {
  it('interactive: asks with defaults, asks again after a bad answer, writes config, a 0600 secrets file and the registration record', async () => {
    const etc = join(dir, 'a-etc');
    const answers = [
      'gw-0042', // gateway id
      'mall 01', // not a valid id: asked again
      'mall-01',
      '', // broker: default mqtts://broker.example.org:8883
      '', // CA: none
      '', // client certificate: none
      'vgw-gw-0042', // user name
      's3cret', // password
      '', // scanner [hci:0]
      'hci:1',
      '12', // exponent
      '', // resolver key: none, random identity key
      'not-a-key', // backend key: asked again
      TEST_BACKEND.key.publicKey.toString('hex'),
      'abc', // release key: asked again
      'AB'.repeat(32), // release key
      '', // check-in URL default
    ].join('\n') + '\n';
    const r = await runVgw(['provision', '--config-dir', etc, '--data-dir', join(dir, 'a-var')], { input: answers });
    expect(r.stderr).toContain('Venue id:   ✗ use 1-64 letters');
    expect(r.stderr).toContain('Broker URL [mqtts://broker.example.org:8883]:');
    expect(r.status).toBe(0);
    expect(mode(join(etc, 'secrets.json'))).toBe('600');
    expect(mode(join(etc, 'config.json'))).toBe('640');
    // no resolver key: the record carries the identity key, so it is secret as well
    expect(mode(join(etc, 'registration.json'))).toBe('600');
    const secrets = secretsSchema.parse(readJson(join(etc, 'secrets.json')));
    const record = registrationSchema.parse(readJson(join(etc, 'registration.json')));
    expect(record).toMatchObject({ gateway: 'gw-0042', venue: 'mall-01', beacon: { exponent: 12, identityKey: secrets.beaconIdentityKey } });
    expect(signingKeyFromSeed(Buffer.from(secrets.signingKey, 'hex')).publicKey.toString('hex')).toBe(record.signingKey);
    expect(secrets.brokerPassword).toBe('s3cret');
    expect(r.stderr).toContain('✗ 64 hex digits, the public key `vgw backend-key` prints');
    expect(secrets.backendKeys).toEqual([{ publicKey: TEST_BACKEND.key.publicKey.toString('hex') }]);
    const config = readJson(join(etc, 'config.json'));
    expect(JSON.stringify(config)).not.toContain('s3cret');
    expect(config).toMatchObject({ broker: { url: 'mqtts://broker.example.org:8883', username: 'vgw-gw-0042' }, beacon: { enabled: true, transport: 'hci:1', exponent: 12 } });
    // releases over the air: signed by that key only
    expect(r.stderr).toContain('✗ 64 hex digits, the public key `vgw release key --show` prints, or blank');
    expect(config).toMatchObject({ update: { releaseKeys: ['ab'.repeat(32)] } });
    expect((await runVgw(['config', 'check', join(etc, 'config.json')])).status).toBe(0);
    // the registration record and a QR code of the check-in URL on stdout
    expect(r.stdout).toContain('"signingKey"');
    expect(r.stdout).toContain('Check-in fallback for phones without BLE: https://checkin.example.org/venue/mall-01');
    expect(r.stdout).toMatch(/█ ▄▄▄▄▄ █/);
  });

  it('refuses to provision again without --force (new keys need a new registration)', async () => {
    const etc = join(dir, 'a-etc');
    const args = ['provision', '-y', '--gateway', 'gw-0042', '--venue', 'mall-01', '--backend-key', TEST_BACKEND.key.publicKey.toString('hex'), '--config-dir', etc, '--data-dir', join(dir, 'a-var')];
    const again = await runVgw(args);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/secrets\.json exists: this unit is provisioned.*pass --force/);
    const before = readJson(join(etc, 'secrets.json')).signingKey;
    expect((await runVgw([...args, '--force'])).status).toBe(0);
    expect(readJson(join(etc, 'secrets.json')).signingKey).not.toBe(before);
  });

  it('non-interactive with a resolver key: registers the identity key per the Eddystone spec (ECDH + HKDF), prints JSON', async () => {
    const etc = join(dir, 'b-etc');
    const resolverPrivate = randomBytes(32);
    const resolverPublic = x25519PublicFromPrivate(resolverPrivate).toString('hex');
    const r = await runVgw([
      'provision', '--non-interactive', '--json', '--gateway', 'gw-7', '--venue', 'market-02', '--broker', 'mqtt://10.0.0.5:1883',
      '--resolver-public-key', resolverPublic, '--backend-key', TEST_BACKEND.key.publicKey.toString('hex'), '--checkin-url', 'https://check.in/{venue}?src=ble', '--config-dir', etc, '--data-dir', join(dir, 'b-var'),
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readJson(join(etc, 'config.json'))).not.toHaveProperty('update'); // no release key given: updated by hand only
    const out = JSON.parse(r.stdout) as { registration: unknown; checkinUrl: string; registrationIsSecret: boolean };
    const record = registrationSchema.parse(out.registration);
    expect(out.checkinUrl).toBe('https://check.in/market-02?src=ble');
    expect(out.registrationIsSecret).toBe(false);
    expect(record.beacon?.identityKey).toBeUndefined();
    expect(mode(join(etc, 'registration.json'))).toBe('644');
    const secrets = secretsSchema.parse(readJson(join(etc, 'secrets.json')));
    // The resolver, holding only its private key and the record, derives the same identity key.
    expect(identityKeyForResolver(resolverPrivate, Buffer.from(record.beacon!.publicKey!, 'hex')).toString('hex')).toBe(secrets.beaconIdentityKey);
    // ...and `vgw beacon resolve` does it from the registration file: an EID the unit sends resolves to its venue.
    const seenAt = 1_795_000_000;
    const eid = computeEid(Buffer.from(secrets.beaconIdentityKey!, 'hex'), 10, seenAt).toString('hex');
    const args = ['beacon', 'resolve', '--eid', eid, '--time', String(seenAt * 1000), '--registry', join(etc, 'registration.json')];
    const resolved = await runVgw([...args, '--resolver-private-key', resolverPrivate.toString('hex')]);
    expect(resolved.status).toBe(0);
    expect(JSON.parse(resolved.stdout)).toMatchObject({ venue: 'market-02', gateway: 'gw-7' });
    const noKey = await runVgw(args);
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toMatch(/record 0 \(gw-7\) was registered with a resolver key: give --resolver-private-key/);
  });

  it('non-interactive: names the missing or bad flag (exit 2)', async () => {
    const base = ['provision', '-y', '--config-dir', join(dir, 'c-etc'), '--data-dir', join(dir, 'c-var')];
    const missing = await runVgw([...base, '--venue', 'mall-01']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--gateway is required with --non-interactive/);
    const noBackendKey = await runVgw([...base, '--gateway', 'gw-1', '--venue', 'mall-01']);
    expect([noBackendKey.status, noBackendKey.stderr]).toEqual([2, expect.stringMatching(/--backend-key is required with --non-interactive \(backend public key/)]);
    const badBroker = await runVgw([...base, '--gateway', 'gw-1', '--venue', 'mall-01', '--broker', 'http://x']);
    expect(badBroker.status).toBe(2);
    expect(badBroker.stderr).toMatch(/--broker: "http:\/\/x": give a URL such as mqtts:/);
    const badScanner = await runVgw([...base, '--gateway', 'gw-1', '--venue', 'mall-01', '--scanner', 'bluetooth0']);
    expect(badScanner.status).toBe(2);
    expect(badScanner.stderr).toMatch(/--scanner: "bluetooth0"/);
    const certNoKey = await runVgw([...base, '--gateway', 'gw-1', '--venue', 'mall-01', '--broker', 'mqtts://b:8883', '--cert', '/etc/hostname']);
    expect(certNoKey.status).toBe(2);
    expect(certNoKey.stderr).toMatch(/--key is required/);
    const ended = await runVgw(['provision', '--config-dir', join(dir, 'd-etc'), '--data-dir', join(dir, 'd-var')], { input: 'gw-1\n' });
    expect(ended.status).toBe(2);
    expect(ended.stderr).toMatch(/input ended before "Venue id" was answered/);
  });
});
