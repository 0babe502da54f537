// The CLI as a technician or a script uses it: spawned processes, output and exit codes.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { encodeBatch} from '../../core/wire/index.js';
import { toWire } from '../../core/encounters/index.js';
import { runVgw, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';
import { testBackendKeyFile } from '../harness/identity.js';

const dir = tempDir('vgw-cli-');

describe('vgw CLI', () => {
  it('lists run, collect, pull, decode and config', async () => {
    const r = await runVgw(['--help']);
    expect(r.status).toBe(0);
    for (const cmd of ['run', 'collect', 'pull', 'decode', 'config']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
  });

  it('every command and subcommand has --help with an example that starts with vgw, as the README says', async () => {
    const commandsOf = (help: string) => {
      // the Commands: block ends at the first blank line (examples follow it)
      const section = (help.split(/^Commands:$/m)[1] ?? '').split(/\n\s*\n/)[0];
      return [...section.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]).filter((c) => c !== 'help');
    };
    const leaves: string[][] = [];
    const visit = async (path: string[]) => {
      if (path.length > 3) throw new Error(`vgw ${path.join(' ')}: deeper than any command`);
      const help = await runVgw([...path, '--help']);
      expect(help.status, path.join(' ')).toBe(0);
      const subs = commandsOf(help.stdout);
      if (path.length > 0) {
        expect(help.stdout, `vgw ${path.join(' ')} --help`).toMatch(/^Examples?:\n {2}.*\bvgw /m);
        leaves.push(path);
      }
      for (const sub of subs) await visit([...path, sub]);
    };
    await visit([]);
    expect(leaves.map((p) => p.join(' '))).toEqual(expect.arrayContaining(['config', 'config check', 'config docs', 'config example', 'demo', 'run', 'trace case']));
  });

  it('config example is a config vgw run accepts: it names the secrets file vgw provision writes', async () => {
    const r = await runVgw(['config', 'example', '--gateway', 'gw-0042', '--venue', 'mall-01']);
    expect(r.status).toBe(0);
    const example = JSON.parse(r.stdout);
    expect(example.secretsFile).toBe('/etc/venue-gateway/secrets.json');
    expect((await runVgw(['config', 'check', writeJson(join(dir, 'example.json'), example)])).status).toBe(0);
  });

  it('config check accepts a valid file and prints defaults with --json', async () => {
    const file = writeJson(join(dir, 'ok.json'), { gateway: { id: 'gw-01', venue: 'mall-01' } });
    const r = await runVgw(['config', 'check', file]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('valid (gateway gw-01 at venue mall-01)');
    const j = await runVgw(['config', 'check', '--json', file]);
    expect(JSON.parse(j.stdout).store.checkpointS).toBe(60);
  });

  it('config check names the field and the fix, exit code 2', async () => {
    const file = writeJson(join(dir, 'bad.json'), { gateway: { id: 'gw 01', venue: 'mall-01' }, uplink: { batchMaxEncounters: 0 } });
    const r = await runVgw(['config', 'check', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/gateway\.id: must be 1-64 letters/);
    expect(r.stderr).toMatch(/uplink\.batchMaxEncounters: /);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"gateway": ');
    expect((await runVgw(['config', 'check', broken])).stderr).toMatch(/not valid JSON .*: fix the syntax/);
    expect((await runVgw(['config', 'check', join(dir, 'missing.json')])).stderr).toMatch(/cannot read the file \(ENOENT\): check the path/);
  });

  it('run refuses a config without a gateway section, naming it', async () => {
    const file = writeJson(join(dir, 'nogw.json'), {});
    const r = await runVgw(['run', '-c', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/gateway: required by `vgw run`/);
  });

  it('decode prints a published batch as JSON, from a file or hex on stdin', async () => {
    const tempId = Buffer.from('ebd8de78173abce46461dbc7a3e899fa', 'hex');
    const payload = encodeBatch(
      { kind: 'batch', id: ulid(), gateway: 'gw-01', venue: 'mall-01', life: ulid(), seq: 3, createdAt: Date.UTC(2026, 10, 22) },
      [toWire({ id: 41, protocol: 0, tempId, metadata: Buffer.from('cfd9dbfa', 'hex'), firstSeen: Date.UTC(2026, 10, 22, 9), lastSeen: Date.UTC(2026, 10, 22, 9, 4), count: 900, rssiMin: -80, rssiMax: -60, rssiSum: -900 * 74, rssiCount: 900, bucketMs: [0, 0, 100_000, 140_000], clockSynced: true })],
    );
    const file = join(dir, 'batch.cbor');
    writeFileSync(file, payload);
    const r = await runVgw(['decode', file]);
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout);
    expect(json).toMatchObject({ kind: 'batch', gateway: 'gw-01', venue: 'mall-01', seq: 3 });
    expect(json.encounters[0]).toMatchObject({ id: 41, tempId: tempId.toString('hex'), metadata: 'cfd9dbfa', count: 900, rssiMean: -74, attenuationS: [0, 0, 100, 140], firstSeen: '2026-11-22T09:00:00.000Z' });
    const hex = await runVgw(['decode', '--hex'], { input: payload.toString('hex') });
    expect(JSON.parse(hex.stdout).encounters[0].id).toBe(41);
  });

  it('decode rejects garbage with a clear message and exit code 2', async () => {
    const r = await runVgw(['decode'], { input: 'definitely not a batch' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^vgw: not a valid batch: payload: /);
    const h = await runVgw(['decode', '--hex'], { input: 'abc' });
    expect(h.stderr).toMatch(/--hex: the input is not an even number of hex digits/);
  });

  it('files that never end (/dev/zero) are refused after a limit, never read into memory', async () => {
    const decode = await runVgw(['decode', '/dev/zero']);
    expect(decode.status).toBe(2);
    expect(decode.stderr).toMatch(/file: larger than \d+ bytes, more than any batch/);
    const check = await runVgw(['config', 'check', '/dev/zero']);
    expect(check.status).toBe(2);
    expect(check.stderr).toMatch(/larger than 1048576 bytes/);
    const match = await runVgw(['match', '--keys', '/dev/zero', '--db', join(dir, 'none.db')]);
    expect(match.status).toBe(2);
    expect(match.stderr).toMatch(/--keys: \/dev\/zero is larger than/);
  });

  it('pull to a broker that does not answer exits 3 (no answer), naming the broker', async () => {
    const r = await runVgw(['pull', '--broker', 'mqtt://127.0.0.1:9', '--venue', 'v', '--gateway', 'g', '--from', '0', '--to', '1000', '--timeout', '3', '--control-key', testBackendKeyFile(dir)]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/cannot reach the broker at mqtt:\/\/127\.0\.0\.1:9/);
    // a gateway answers signed requests only: without a backend key there is nothing to send
    const unsigned = await runVgw(['pull', '--broker', 'mqtt://127.0.0.1:9', '--venue', 'v', '--gateway', 'g', '--from', '0', '--to', '1000']);
    expect([unsigned.status, unsigned.stderr]).toEqual([2, expect.stringMatching(/--control-key: required without a collector config/)]);
  });

  it('unknown commands and options exit 2', async () => {
    expect((await runVgw(['frobnicate'])).status).toBe(2);
    expect((await runVgw(['run', '--nope'])).status).toBe(2);
  });
});

describe('provisioning templates', () => {
  it.each(['gateway.example.json', 'collector.example.json'])('%s passes `vgw config check`', async (name) => {
    const r = await runVgw(['config', 'check', join(__dirname, '../..', 'provisioning', name)]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('vgw beacon', () => {
  // Eddystone-EID vector (RadiusNetworks/ephemeral_calc, from the Eddystone spec): K = 10.
  const key = '0102030405060708090a111213141516';

  it('eid prints the EID for a beacon time counter', async () => {
    const r = await runVgw(['beacon', 'eid', '--identity-key', key, '--exponent', '10', '--counter', '2000']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('4144413e45fefa58');
    const j = JSON.parse((await runVgw(['beacon', 'eid', '--identity-key', key, '--counter', '2000', '--json'])).stdout);
    expect(j).toEqual({ eid: '4144413e45fefa58', exponent: 10, counter: 2000, quantumStart: 1024, nextRotation: 2048 });
  });

  it('eid names the bad argument', async () => {
    const r = await runVgw(['beacon', 'eid', '--identity-key', key, '--exponent', '16', '--counter', '0']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--exponent: "16" must be a whole number from 0 to 15/);
  });

  it('resolve maps an EID seen at a time to its venue; unknown EIDs exit 1', async () => {
    const registry = writeJson(join(dir, 'registry.json'), [
      { venue: 'market-02', identityKey: 'f40d6f18e5882260e847e99ca33ac44f', exponent: 10 },
      { venue: 'mall-01', gateway: 'gw-01', identityKey: key, exponent: 10 },
    ]);
    const r = await runVgw(['beacon', 'resolve', '--eid', '4144413e45fefa58', '--time', '1500000', '--registry', registry]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ venue: 'mall-01', gateway: 'gw-01', drift: 0, counter: 1024 });
    const miss = await runVgw(['beacon', 'resolve', '--eid', '0000000000000000', '--time', '1500000', '--registry', registry]);
    expect(miss.status).toBe(1);
    expect(miss.stderr).toMatch(/no registered beacon sent 0000000000000000/);
    const bad = writeJson(join(dir, 'bad-registry.json'), [{ venue: 'x', identityKey: 'zz', exponent: 10 }]);
    const b = await runVgw(['beacon', 'resolve', '--eid', '4144413e45fefa58', '--time', '1500000', '--registry', bad]);
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/\[0\]\.identityKey: must be 32 hex digits/);
  });
});
