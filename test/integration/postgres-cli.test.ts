// vgw export, match and trace on a collector's PostgreSQL database: the same answers, byte for
// byte, as on an SQLite collector database holding the same batches.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { CollectorDb, PostgresCollectorStore } from '../../collector/index.js';
import { encryptTempId, newUid } from '../../core/bluetrace/index.js';
import type { WireEncounter } from '../../core/encounters/index.js';
import { deriveRpik, PROTOCOL_BLUETRACE, PROTOCOL_EN, rollingProximityIdentifier } from '../../core/protocols/index.js';
import type { Batch } from '../../core/wire/index.js';
import { usePostgres } from '../harness/postgres.js';
import { runVgw, writeJson } from '../harness/processes.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-pgcli-');
const postgres = usePostgres();

// EN Cryptography Specification v1.2 test vectors (google/exposure-notifications-internals):
// TEK, ENIntervalNumber 2642976, RPI and AEM (metadata 40080000: +8 dBm) of its first interval.
const TEK = '75c734c6dd1a782de7a965da5eb93125';
const RSIN = 2642976;
const RPI0 = Buffer.from('8be6cd371c5c891604bfbe49df845096', 'hex');
const AEM0 = Buffer.from('72033874', 'hex');
const T0 = RSIN * 600_000;
const btKey = Buffer.alloc(32, 9);
const alice = newUid();
const bob = newUid();

let id = 0;
function enc(protocol: number, tempId: Buffer, metadata: Buffer, firstSeen: number, durationS = 120, rssiMax = -60): WireEncounter {
  return {
    id: ++id, protocol, tempId, metadata, firstSeen, lastSeen: firstSeen + durationS * 1000, count: 40, rssiMin: -80, rssiMax,
    rssiMean: -70.4, attenuationS: [0, 60, 60, 0], clockSynced: true,
  };
}
const bt = (uid: string, fromMs: number, durationS: number) => {
  const s = Math.floor(fromMs / 1000);
  return enc(PROTOCOL_BLUETRACE, Buffer.from(encryptTempId(btKey, uid, s - 60, s + 840), 'base64'), Buffer.alloc(4), fromMs, durationS);
};

describe('export, match and trace on PostgreSQL', () => {
  it('answer as they do on SQLite, and name an unreachable server', async () => {
    const rpi5 = rollingProximityIdentifier(deriveRpik(Buffer.from(TEK, 'hex')), RSIN + 5);
    const life = ulid();
    const mall: WireEncounter[] = [
      enc(PROTOCOL_EN, RPI0, AEM0, T0 + 60_000, 120, -62),
      enc(PROTOCOL_EN, rpi5, Buffer.alloc(4), T0 + 5 * 600_000 - 2 * 3600_000 + 130_000),
      enc(PROTOCOL_EN, Buffer.alloc(16, 7), Buffer.alloc(4), T0),
      bt(alice, T0 + 1_000_000, 300),
      bt(bob, T0 + 1_100_000, 100),
    ];
    // the next day, at another venue: a second partition
    const market: WireEncounter[] = [bt(bob, T0 + 86_400_000, 60), enc(PROTOCOL_EN, Buffer.alloc(16, 8), Buffer.alloc(4), T0 + 86_400_000 + 5000)];
    const batches: Batch[] = [
      { kind: 'batch', id: ulid(), gateway: 'gw-mall', venue: 'mall', life, seq: 1, createdAt: T0, encounters: mall, hash: Buffer.alloc(32) },
      { kind: 'batch', id: ulid(), gateway: 'gw-market', venue: 'market', life, seq: 1, createdAt: T0, encounters: market, hash: Buffer.alloc(32) },
    ];
    const sqlitePath = join(dir, 'collector.db');
    const sqlite = new CollectorDb(sqlitePath);
    await sqlite.commit(batches.map((batch) => ({ batch, signer: null })));
    sqlite.close();
    const url = await postgres().database('cli');
    const pgStore = await PostgresCollectorStore.open(url);
    await pgStore.commit(batches.map((batch) => ({ batch, signer: null })));
    await pgStore.close();

    const keys = writeJson(join(dir, 'keys.json'), [{ key: Buffer.from(TEK, 'hex').toString('base64'), rollingStartIntervalNumber: RSIN, rollingPeriod: 144 }]);
    const keyFile = join(dir, 'bt.key');
    writeFileSync(keyFile, btKey.toString('hex') + '\n', { mode: 0o600 });
    const range = ['--from', String(T0 - 3_600_000), '--to', String(T0 + 2 * 86_400_000)];
    const commands: string[][] = [
      ['export', ...range, '--format', 'json'],
      ['export', ...range, '--format', 'csv'],
      ['export', '--from', String(T0 + 86_400_000), '--to', String(T0 + 2 * 86_400_000)],
      ['export', '--from', '0', '--to', '1000'], // nothing: []
      ['match', '--keys', keys, '--json'],
      ['trace', 'case', '--uid', alice, '--key-file', keyFile, '--json'],
    ];
    for (const args of commands) {
      const onSqlite = await runVgw([...args, '--db', sqlitePath]);
      const onPg = await runVgw([...args, '--db', url]);
      expect(onPg.stderr, args.join(' ')).toBe('');
      expect(onPg.status, args.join(' ')).toBe(0);
      expect(onPg.stdout, args.join(' ')).toBe(onSqlite.stdout);
    }
    const exported = JSON.parse((await runVgw(['export', ...range, '--db', url])).stdout);
    expect(exported).toHaveLength(6); // #2 was seen before the range
    expect(exported[0]).toMatchObject({ venue: 'mall', gateway: 'gw-mall', rssiMean: -70.4, durationS: 120 });
    const matched = JSON.parse((await runVgw(['match', '--keys', keys, '--json', '--db', url])).stdout);
    expect(matched.matches.map((m: { encounter: number }) => m.encounter)).toEqual([2, 1]);
    expect(matched.matches[1]).toMatchObject({ txPowerDbm: 8, attenuationDb: 70 });
    const traced = JSON.parse((await runVgw(['trace', 'case', '--uid', alice, '--key-file', keyFile, '--json', '--db', url])).stdout);
    expect(traced.visits).toHaveLength(1);
    expect(traced.visits[0].contacts.map((c: { uid: string }) => c.uid)).toEqual([bob]);

    const down = await runVgw(['export', ...range, '--db', 'postgres://vgw@127.0.0.1:1/none']);
    expect(down.status).toBe(2);
    expect(down.stderr).toMatch(/--db: cannot read postgres:\/\/vgw@127\.0\.0\.1:1\/none \(.*ECONNREFUSED/);
  });
});
