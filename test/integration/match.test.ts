// Exposure matching: diagnosis keys → RPIs → venue encounters, on a gateway's own database.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closeAll, ClosedEncounter, createAggregator, observe, sweep } from '../../core/encounters/index.js';
import { parseExportFile } from '../../core/matching/index.js';
import { decodeAdvertisement, deriveRpik, newDropCounters, rollingProximityIdentifier } from '../../core/protocols/index.js';
import { Crowd, CrowdOptions, phone, rotationAt } from '../../simulators/index.js';
import { Store } from '../../daemon/store/index.js';
import { runVgw, writeJson } from '../harness/processes.js';
import { FIXTURES_DIR } from '../harness/reference.js';
import { tempDir } from '../harness/tmp.js';
import { aggregatorOptions } from '../../core/config/index.js';

const dir = tempDir('vgw-match-');
let n = 0;

function gatewayDb(encounters: ClosedEncounter[]): string {
  const path = join(dir, `g${n++}.db`);
  const store = new Store({
    path, commitIntervalMs: 1000, retentionMs: 100 * 365 * 86_400_000, unackedMaxMs: 400 * 86_400_000, purgeBatchSize: 500,
    batchMaxEncounters: 256, batchMaxAgeMs: 30_000, maxPendingEncounters: 1_000_000,
  });
  store.addEncounters(encounters);
  store.close();
  return path;
}

function encounter(tempId: Buffer, metadata: Buffer, firstSeen: number, rssiMax = -60): ClosedEncounter {
  return {
    protocol: 0, tempId, metadata, firstSeen, lastSeen: firstSeen + 120_000, count: 500, rssiMin: -80, rssiMax,
    rssiSum: -70 * 500, rssiCount: 500, bucketMs: [0, 60_000, 60_000, 0], clockSynced: true, closeReason: 'silence',
  };
}

// EN Cryptography Specification v1.2 test vectors (google/exposure-notifications-internals):
// TEK, ENIntervalNumber 2642976, metadata 40080000 (+8 dBm), RPI/AEM of the first interval.
const TEK = '75c734c6dd1a782de7a965da5eb93125';
const RSIN = 2642976;

describe('vgw match', () => {
  it('finds the encounter of a confirmed key (spec vectors), decrypts its TX power, and honours the ±2 h tolerance', async () => {
    const rpi0 = Buffer.from('8be6cd371c5c891604bfbe49df845096', 'hex');
    const aem0 = Buffer.from('72033874', 'hex');
    const t0 = RSIN * 600_000;
    const rpi5 = rollingProximityIdentifier(deriveRpik(Buffer.from(TEK, 'hex')), RSIN + 5);
    const db = gatewayDb([
      encounter(rpi0, aem0, t0 + 60_000, -62), // matches, TX +8 dBm → attenuation 70 dB
      encounter(rpi5, Buffer.alloc(4), t0 + 5 * 600_000 - 2 * 3600_000 + 130_000), // just inside the tolerance
      encounter(rpi5, Buffer.alloc(4), t0 + 5 * 600_000 + 600_000 + 2 * 3600_000 + 1000), // seen too late: no
      encounter(Buffer.alloc(16, 7), Buffer.alloc(4), t0), // another phone
    ]);
    const keys = writeJson(join(dir, 'keys.json'), [{ key: Buffer.from(TEK, 'hex').toString('base64'), rollingStartIntervalNumber: RSIN, rollingPeriod: 144 }]);
    const r = await runVgw(['match', '--keys', keys, '--db', db, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.keys).toBe(1);
    // sorted by time: #2 was seen two hours before its interval, #1 in it
    expect(out.matches.map((m: { encounter: number }) => m.encounter)).toEqual([2, 1]);
    expect(out.matches[1]).toMatchObject({ encounter: 1, intervalNumber: RSIN, txPowerDbm: 8, attenuationDb: 70, adverts: 500, rssiMax: -62 });
    const text = await runVgw(['match', '--keys', keys, '--db', db]);
    expect(text.stdout).toMatch(/^1 diagnosis keys, 2 matching encounters/);
    expect(text.stdout).toContain('TX 8 dBm  attenuation 70 dB');
  });

  it('names bad key files and databases (exit 2)', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ key: 'abc', rollingStartIntervalNumber: 1 }]));
    const r = await runVgw(['match', '--keys', bad, '--db', join(dir, 'none.db')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--keys: \[0\]\.key: must be 16 bytes/);
    const ok = writeJson(join(dir, 'ok.json'), []);
    const nodb = await runVgw(['match', '--keys', ok, '--db', join(dir, 'none.db')]);
    expect(nodb.status).toBe(2);
    expect(nodb.stderr).toMatch(/--db: .* is not a venue-gateway database/);
  });

  it('reads the real EN export files of test/fixtures (format only)', () => {
    const files = readdirSync(join(FIXTURES_DIR, 'en_export'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const keys = parseExportFile(readFileSync(join(FIXTURES_DIR, 'en_export', f)));
      expect(keys.length, f).toBeGreaterThan(0);
      for (const k of keys) {
        expect(k.key).toHaveLength(16);
        expect(k.rollingPeriod).toBeGreaterThan(0);
        expect(k.rollingPeriod).toBeLessThanOrEqual(144);
        expect(k.rollingStartIntervalNumber).toBeGreaterThan(2_600_000); // 2019 onwards
      }
    }
  });

  it('on a crowd whose TEKs are known: every encounter of the confirmed phones, none of the others', async () => {
    const anchor = Date.UTC(2026, 10, 22, 9);
    const crowd: CrowdOptions = { seed: 77, phones: 40, arrivalsPerMinute: 4, minDwellS: 120, maxDwellS: 900, anchor };
    const c = new Crowd(crowd);
    const state = createAggregator({ ...aggregatorOptions(), maxOpen: 10_000 });
    const closed: ClosedEncounter[] = [];
    const drops = newDropCounters();
    for (let t = anchor; !c.done(); t += 1000) {
      c.advance(t - 1000, t, (data, rssi, address, time) => {
        const s = decodeAdvertisement(data, rssi, address, time, drops);
        if (s) observe(state, s, closed);
      });
      sweep(state, t, closed);
    }
    closeAll(state, closed);
    const db = gatewayDb(closed);
    const confirmed = [3, 17, 29];
    // each phone's key covers the day of its walk-by (and the next, in case it crossed midnight)
    const keys = confirmed.flatMap((i) => {
      const p = phone(crowd, i);
      const day = Math.floor(rotationAt(p, p.arrival) / 144) * 144;
      return [day, day + 144].map((rsin) => ({ key: p.tek.toString('hex'), rollingStartIntervalNumber: rsin, rollingPeriod: 144 }));
    });
    const expected = new Set<string>();
    for (const i of confirmed) {
      const p = phone(crowd, i);
      const rpik = deriveRpik(p.tek);
      for (let t = p.arrival; t < p.departure; t += 1000) expected.add(rollingProximityIdentifier(rpik, rotationAt(p, t)).toString('hex'));
    }
    const wanted = closed.map((e, i) => ({ id: i + 1, rpi: e.tempId.toString('hex') })).filter((e) => expected.has(e.rpi)).map((e) => e.id);
    expect(wanted.length).toBeGreaterThanOrEqual(confirmed.length);
    const r = await runVgw(['match', '--keys', writeJson(join(dir, 'crowd-keys.json'), keys), '--db', db, '--json']);
    expect(r.status).toBe(0);
    const got = (JSON.parse(r.stdout).matches as Array<{ encounter: number; txPowerDbm: number }>);
    expect(got.map((m) => m.encounter).sort((a, b) => a - b)).toEqual(wanted);
    // the AEM of the crowd's phones decrypts to the TX power each one advertised
    for (const m of got) expect(m.txPowerDbm).toBeGreaterThanOrEqual(-8);
  });
});

describe('vgw export', () => {
  it('writes the encounters overlapping a range as JSON or CSV', async () => {
    const t = Date.UTC(2026, 10, 22, 10);
    const db = gatewayDb([
      encounter(Buffer.alloc(16, 1), Buffer.alloc(4), t - 3600_000),
      encounter(Buffer.alloc(16, 2), Buffer.alloc(4), t - 60_000), // overlaps the start
      encounter(Buffer.alloc(16, 3), Buffer.alloc(4), t + 600_000),
      encounter(Buffer.alloc(16, 4), Buffer.alloc(4), t + 3600_000), // starts at the end: excluded
    ]);
    const args = ['export', '--db', db, '--from', new Date(t).toISOString(), '--to', String(t + 3600_000)];
    const json = await runVgw(args);
    expect(json.status).toBe(0);
    const rows = JSON.parse(json.stdout) as Array<{ encounter: number; tempId: string; durationS: number; rssiMean: number }>;
    expect(rows.map((r) => r.encounter)).toEqual([2, 3]);
    expect(rows[0]).toMatchObject({ tempId: '02'.repeat(16), durationS: 120, rssiMean: -70 });
    // the encounter's identity (gateway, life, id) and every settled field the wire carries
    expect(rows[0]).toMatchObject({ venue: null, gateway: null, life: expect.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/), protocol: 'exposureNotification', metadata: '00000000' });
    expect(Object.keys(rows[0])).toEqual(expect.arrayContaining(['attenuationS', 'clockSynced']));
    const csv = await runVgw([...args, '--format', 'csv']);
    const lines = csv.stdout.trim().split('\n');
    expect(lines[0]).toBe('venue,gateway,life,encounter,protocol,tempId,metadata,firstSeen,lastSeen,durationS,adverts,rssiMin,rssiMax,rssiMean,attenuationS,clockSynced');
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^,,[0-9A-Z]{26},2,exposureNotification,0202\S+,00000000,/);
    expect(lines[1]).toMatch(/,\d+;\d+;\d+;\d+,(true|false)$/);
    const bad = await runVgw([...args.slice(0, 5), '--to', '0']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--to: must be after --from/);
    // a technician on the unit names the config instead of the file
    const config = writeJson(join(dir, 'export-gateway.json'), { gateway: { id: 'gw-x', venue: 'v-x' }, store: { path: db } });
    const viaConfig = await runVgw(['export', '-c', config, ...args.slice(3)]);
    expect(viaConfig.status).toBe(0);
    expect(JSON.parse(viaConfig.stdout)).toEqual(rows.map((r) => ({ ...r, venue: 'v-x', gateway: 'gw-x' })));
    const neither = await runVgw(['export', '--from', '0', '--to', '1']);
    expect(neither.status).toBe(2);
    expect(neither.stderr).toMatch(/give either --db FILE or --config FILE/);
  });

  it("applies the range to a gateway file's encounters at the wire's whole seconds, as a collector's would", async () => {
    const t = Date.UTC(2026, 10, 22, 12);
    const db = gatewayDb([
      // stored last seen 400 ms before --from; on the wire (and in a collector) it ends at --from
      encounter(Buffer.alloc(16, 5), Buffer.alloc(4), t - 120_400),
      // stored last seen 1.4 s before --from: it ends a whole second before, on the wire too
      encounter(Buffer.alloc(16, 6), Buffer.alloc(4), t - 121_400),
      // stored first seen 300 ms after --to: whole seconds put it at --to, which the range excludes
      encounter(Buffer.alloc(16, 7), Buffer.alloc(4), t + 60_300),
    ]);
    const r = await runVgw(['export', '--db', db, '--from', String(t), '--to', String(t + 60_000)]);
    expect(r.status, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<{ encounter: number; lastSeen: string }>;
    expect(rows.map((e) => [e.encounter, e.lastSeen])).toEqual([[1, new Date(t).toISOString()]]);
  });
});
