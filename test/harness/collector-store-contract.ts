// One contract for every CollectorStore (as mqtt.js's abstract_store is for its stores): the
// SQLite file and PostgreSQL give the same answers to the same batches, the same reads, the same
// fleet views and the same retention. Each implementation's test file calls it with a factory.
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { type ArrivedBatch, type CollectorStore, DAY_MS, type EncounterSource, MAX_STATUS_BYTES, type StatusRow } from '../../collector/index.js';
import type { VenueEncounter, WireEncounter } from '../../core/encounters/index.js';
import type { Batch } from '../../core/wire/index.js';
import { control, newRollout, step } from '../../core/fleet/index.js';

export type ContractStore = CollectorStore & EncounterSource;

export interface ContractSubject {
  /** A new, empty store. */
  open(): Promise<ContractStore>;
  /** Sets every batch record's arrival time (what retention's grace counts from). */
  setReceivedAt(store: ContractStore, at: number): Promise<void>;
}

const DAY0 = Date.UTC(2026, 10, 20);
const SIGNER = Buffer.alloc(32, 1);
let tempIdSeed = 0;

function encounter(id: number, firstSeen: number, protocol = 0): WireEncounter {
  const tempId = Buffer.alloc(16, id & 0xff);
  tempId.writeUInt32BE(++tempIdSeed, 0);
  return {
    id, protocol, tempId, metadata: Buffer.from([0x40, 0xf4, 0, id & 0xff]), firstSeen, lastSeen: firstSeen + 120_000, count: 10 + id,
    rssiMin: -80, rssiMax: -55, rssiMean: -67.4, attenuationS: [1, 2, 3, id], clockSynced: id % 2 === 0,
  };
}

function batch(gateway: string, life: string, seq: number, encounters: WireEncounter[]): Batch {
  return { kind: 'batch', id: ulid(), gateway, venue: `venue-${gateway}`, life, seq, createdAt: DAY0, encounters, hash: Buffer.alloc(32), sig: Buffer.alloc(64, 7) };
}

const arrived = (b: Batch, signer: Buffer | null = SIGNER): ArrivedBatch => ({ batch: b, signer });

async function all(store: EncounterSource, from?: number, to?: number, only?: Parameters<EncounterSource['encounters']>[2]): Promise<VenueEncounter[]> {
  const out: VenueEncounter[] = [];
  for await (const e of store.encounters(from, to, only)) out.push(e);
  return out;
}

/** What the store must give back for an encounter of `b`: the wire's fields, with whose it is. */
const asStored = (b: Batch, e: WireEncounter): VenueEncounter => ({ ...e, gateway: b.gateway, venue: b.venue, life: b.life });

function status(gateway: string, state: 'online' | 'offline', receivedAt: number, document = JSON.stringify({ gateway, state, receivedAt })): StatusRow {
  return { gateway, venue: `venue-${gateway}`, state, reason: state === 'offline' ? 'connection lost' : null, since: receivedAt, receivedAt, document };
}

const byGateway = <T extends { gateway: string }>(rows: T[]) => [...rows].sort((a, b) => (a.gateway < b.gateway ? -1 : a.gateway > b.gateway ? 1 : 0));

export function collectorStoreContract(name: string, subject: () => ContractSubject): void {
  const withStore = async (fn: (store: ContractStore) => Promise<void>) => {
    const store = await subject().open();
    try {
      await fn(store);
    } finally {
      await store.close();
    }
  };

  describe(`CollectorStore contract: ${name}`, () => {
    it('stores a batch once: a re-send is a duplicate, a new id on a held sequence number is out of sequence, a batch twice in one group is stored once', () =>
      withStore(async (store) => {
        const life = ulid();
        const b1 = batch('gw-a', life, 1, [encounter(1, DAY0), encounter(2, DAY0 + 1000)]);
        const b2 = batch('gw-a', life, 2, [encounter(3, DAY0 + 2000)]);
        expect(await store.commit([arrived(b1), arrived(b2), arrived(b2)])).toEqual([
          { outcome: 'stored', stored: 2 }, { outcome: 'stored', stored: 1 }, { outcome: 'duplicate', stored: 0 },
        ]);
        expect(await store.commit([arrived(b1)])).toEqual([{ outcome: 'duplicate', stored: 0 }]);
        const forged = batch('gw-a', life, 1, [encounter(9, DAY0)]);
        expect(await store.commit([arrived(forged)])).toEqual([{ outcome: 'out_of_sequence', stored: 0, heldBy: b1.id }]);
        // the same sequence number in another life is that life's own
        expect(await store.commit([arrived(batch('gw-a', ulid(), 1, [encounter(1, DAY0)]))])).toEqual([{ outcome: 'stored', stored: 1 }]);
        // unverified batches (no signer) carry no sequence guarantee
        expect(await store.commit([arrived(batch('gw-u', life, 1, [encounter(1, DAY0)]), null), arrived(batch('gw-u', life, 1, [encounter(2, DAY0)]), null)]))
          .toEqual([{ outcome: 'stored', stored: 1 }, { outcome: 'stored', stored: 1 }]);
        expect(await all(store)).toHaveLength(3 + 1 + 2);
      }));

    it('reads back every field as it arrived, by time range (overlap), protocol, venue, and temp ID', () =>
      withStore(async (store) => {
        const la = ulid();
        const a = batch('gw-a', la, 1, [encounter(1, DAY0), encounter(2, DAY0 + 3_600_000, 1), encounter(3, DAY0 + 7_200_000)]);
        const b = batch('gw-b', ulid(), 1, [encounter(1, DAY0 + 60_000)]);
        await store.commit([arrived(a), arrived(b)]);
        const expected = [asStored(a, a.encounters[0]), asStored(b, b.encounters[0]), asStored(a, a.encounters[1]), asStored(a, a.encounters[2])];
        expect(await all(store)).toEqual(expected);
        // [from, to): an encounter overlapping the start counts; one starting at `to` does not
        expect((await all(store, DAY0 + 100_000, DAY0 + 7_200_000)).map((e) => [e.gateway, e.id])).toEqual([['gw-a', 1], ['gw-b', 1], ['gw-a', 2]]);
        expect((await all(store, 0, Number.MAX_SAFE_INTEGER, { protocol: 1 })).map((e) => e.id)).toEqual([2]);
        expect((await all(store, 0, Number.MAX_SAFE_INTEGER, { venue: 'venue-gw-b' })).map((e) => e.gateway)).toEqual(['gw-b']);
        const found = await store.withTempIds([a.encounters[2].tempId, b.encounters[0].tempId, Buffer.alloc(16)]);
        expect(found).toEqual([asStored(b, b.encounters[0]), asStored(a, a.encounters[2])]);
        // a confirmed case brings thousands of RPIs: more than one query's worth
        const many = [...Array.from({ length: 1500 }, (_, i) => Buffer.alloc(16, i % 251)), a.encounters[0].tempId];
        expect((await store.withTempIds(many)).map((e) => e.id)).toEqual([1]);
      }));

    it('counts each life of each gateway: batches held and the last sequence number, so gaps show', () =>
      withStore(async (store) => {
        const l1 = ulid();
        const l2 = ulid();
        await store.commit([1, 2, 4].map((seq) => arrived(batch('gw-a', l1, seq, [encounter(seq, DAY0)]))));
        await store.commit([arrived(batch('gw-a', l2, 3, [encounter(1, DAY0)])), arrived(batch('gw-b', l1, 1, [encounter(1, DAY0)]))]);
        const lives = (await store.lives()).map(({ lastBatchAt, ...rest }) => (expect(lastBatchAt).toBeGreaterThan(0), rest));
        expect(lives).toHaveLength(3);
        expect(lives).toEqual(expect.arrayContaining([
          { gateway: 'gw-a', life: l1, venue: 'venue-gw-a', lastSeq: 4, batches: 3 },
          { gateway: 'gw-a', life: l2, venue: 'venue-gw-a', lastSeq: 3, batches: 1 },
          { gateway: 'gw-b', life: l1, venue: 'venue-gw-b', lastSeq: 1, batches: 1 },
        ]));
      }));

    it("keeps each gateway's newest status, since unchanged while its state is, and never hands back an oversized document", () =>
      withStore(async (store) => {
        await store.saveStatuses([status('gw-1', 'online', 1000), status('gw-2', 'online', 1000)]);
        await store.saveStatuses([status('gw-1', 'online', 31_000), status('gw-2', 'offline', 40_000)]);
        await store.saveStatuses([status('gw-1', 'offline', 20_000)]); // older than what is held: ignored
        await store.saveStatuses([status('gw-3', 'online', 5000, JSON.stringify({ pad: 'x'.repeat(MAX_STATUS_BYTES) }))]);
        const held = byGateway(await store.statuses());
        expect(held.map((s) => [s.gateway, s.state, s.reason, s.since, s.receivedAt])).toEqual([
          ['gw-1', 'online', null, 1000, 31_000], ['gw-2', 'offline', 'connection lost', 40_000, 40_000], ['gw-3', 'online', null, 5000, 5000],
        ]);
        expect(JSON.parse(held[0].document)).toEqual({ gateway: 'gw-1', state: 'online', receivedAt: 31_000 });
        expect(held[2].document).toBe('{}');
      }));

    it('counts encounters per venue per hour once each, re-sends included, for the hours asked', () =>
      withStore(async (store) => {
        const life = ulid();
        const b = batch('gw-a', life, 1, [encounter(1, DAY0 + 10), encounter(2, DAY0 + 20), encounter(3, DAY0 + 3_600_000)]);
        await store.commit([arrived(b)]);
        await store.commit([arrived(b)]);
        await store.commit([arrived(batch('gw-b', life, 1, [encounter(1, DAY0 + 30)]))]);
        const hours = (await store.venueHours(DAY0, DAY0 + 2 * 3_600_000)).sort((x, y) => x.hour - y.hour || (x.venue < y.venue ? -1 : 1));
        expect(hours).toEqual([
          { venue: 'venue-gw-a', hour: DAY0, encounters: 2 }, { venue: 'venue-gw-b', hour: DAY0, encounters: 1 }, { venue: 'venue-gw-a', hour: DAY0 + 3_600_000, encounters: 1 },
        ]);
        expect(await store.venueHours(DAY0 + 3_600_000, DAY0 + 2 * 3_600_000)).toEqual([{ venue: 'venue-gw-a', hour: DAY0 + 3_600_000, encounters: 1 }]);
      }));

    it('retention removes whole days and their hours; a batch id dedupes through the grace, then its record goes too', async () => {
      const s = subject();
      const store = await s.open();
      try {
        const life = ulid();
        const days = [0, 1, 2, 5];
        const batches = days.map((d, i) => batch('gw-r', life, i + 1, [encounter(10 * d + 1, DAY0 + d * DAY_MS + 3_600_000), encounter(10 * d + 2, DAY0 + d * DAY_MS + 7_200_000)]));
        await store.commit(batches.map((b) => arrived(b)));
        // 14 days of retention, seen from day 16 + 1 h: days 0 and 1 ended 14 days ago
        const now = DAY0 + 16 * DAY_MS + 3_600_000;
        expect(await store.purgeExpired(now, 14)).toEqual({ days: 2, batchesDeleted: 0 });
        expect((await all(store)).map((e) => e.id)).toEqual([21, 22, 51, 52]);
        expect((await store.venueHours(DAY0 - DAY_MS, DAY0 + 10 * DAY_MS)).every((h) => h.hour >= DAY0 + 2 * DAY_MS)).toBe(true);
        // a re-send of a purged day's batch is still known by its id: acked again, not stored again
        expect(await store.commit([arrived(batches[0])])).toEqual([{ outcome: 'duplicate', stored: 0 }]);
        expect((await all(store)).map((e) => e.id)).toEqual([21, 22, 51, 52]);
        await s.setReceivedAt(store, DAY0);
        // a fleet whose gateways keep unacknowledged batches 100 days: its collector keeps the records that long
        expect(await store.purgeExpired(DAY0 + (14 + 31) * DAY_MS + 1, 14, 101)).toMatchObject({ batchesDeleted: 0 });
        // the default: a day more than the gateways' default of 30
        expect(await store.purgeExpired(DAY0 + (14 + 31) * DAY_MS - 1, 14)).toMatchObject({ batchesDeleted: 0 });
        expect(await store.purgeExpired(DAY0 + (14 + 31) * DAY_MS + 1, 14)).toMatchObject({ batchesDeleted: 4 });
        await store.ping();
      } finally {
        await store.close();
      }
      await expect(store.ping()).rejects.toThrow();
    });

    it('keeps configuration layers by version, supersedes a running rollout of the same layer, and carries requests and the lease', () =>
      withStore(async (store) => {
        const plan = { canary: 1, ratePerMinute: 60, abortAfter: 2, settleMs: 60_000 };
        const units = [{ gateway: 'gw-a', venue: 'v-a', online: true }, { gateway: 'gw-b', venue: 'v-b', online: true }];
        const make = (id: string) => (layer: { scope: 'fleet' | 'group' | 'gateway'; name: string; version: number }) =>
          newRollout(id, `${layer.scope} ${layer.name} version ${layer.version}`, { scope: layer.scope, name: layer.name, version: layer.version }, units, plan, DAY0);
        expect(await store.layers()).toEqual([]);
        const first = await store.changeLayer('group', 'city-kl', { uplink: { statusIntervalS: 300 } }, DAY0, make('01A'));
        expect(first.layer).toEqual({ scope: 'group', name: 'city-kl', version: 1, settings: { uplink: { statusIntervalS: 300 } }, updatedAt: DAY0 });
        await store.changeLayer('fleet', '', { uplink: { statusIntervalS: 120 } }, DAY0 + 1, make('01B'));
        const second = await store.changeLayer('group', 'city-kl', { uplink: { statusIntervalS: 600 } }, DAY0 + 2, make('01C'));
        expect(second.layer.version).toBe(2);
        expect((await store.layers()).map((l) => [l.scope, l.name, l.version, l.settings])).toEqual([
          ['fleet', '', 1, { uplink: { statusIntervalS: 120 } }], ['group', 'city-kl', 2, { uplink: { statusIntervalS: 600 } }],
        ]);
        // newest first; the older rollout of the same layer stopped, the fleet's runs on
        const listed = await store.rollouts();
        expect(listed.map((r) => [r.rollout.id, r.rollout.state, r.rollout.reason ?? null])).toEqual([
          ['01C', 'running', null], ['01B', 'running', null], ['01A', 'aborted', 'superseded by rollout 01C'],
        ]);
        expect(await store.rollouts(0)).toHaveLength(2);
        // an aborted change is taken back, only while the layer is still at its version
        expect(await store.restoreLayer('group', 'city-kl', 1, { uplink: { statusIntervalS: 300 } }, DAY0 + 3)).toBe(false);
        expect(await store.restoreLayer('group', 'city-kl', 2, { uplink: { statusIntervalS: 300 } }, DAY0 + 3)).toBe(true);
        expect(await store.restoreLayer('fleet', '', 1, null, DAY0 + 4)).toBe(true);
        expect((await store.layers()).map((l) => [l.scope, l.version, l.settings])).toEqual([['fleet', 2, {}], ['group', 3, { uplink: { statusIntervalS: 300 } }]]);
        // a request waits for the driver; a save that carried it out clears it, one that did not keeps it
        expect(await store.requestRollout('01B', 'pause')).toBe(true);
        expect(await store.requestRollout('nope', 'pause')).toBe(false);
        const held = (await store.rollouts()).find((r) => r.rollout.id === '01B')!;
        expect(held.requested).toBe('pause');
        const stepped = step(held.rollout, DAY0 + 10, () => ({ online: true, version: null, state: 'none', last: null }), () => 1).rollout;
        await store.saveRollout(stepped, null);
        expect((await store.rollouts()).find((r) => r.rollout.id === '01B')).toMatchObject({ requested: 'pause', rollout: { units: [{ state: 'sent', version: 1 }, { state: 'pending' }] } });
        await store.saveRollout(control(stepped, 'pause', DAY0 + 11), 'pause');
        expect((await store.rollouts()).find((r) => r.rollout.id === '01B')).toMatchObject({ requested: null, rollout: { state: 'paused' } });
        // one driver at a time: the lease is renewed by its holder and taken over once it lapsed
        expect(await store.leaseRollouts('collector-1', DAY0, 10_000)).toBe(true);
        expect(await store.leaseRollouts('collector-2', DAY0 + 5_000, 10_000)).toBe(false);
        expect(await store.leaseRollouts('collector-1', DAY0 + 9_000, 10_000)).toBe(true);
        expect(await store.leaseRollouts('collector-2', DAY0 + 18_000, 10_000)).toBe(false);
        expect(await store.leaseRollouts('collector-2', DAY0 + 19_001, 10_000)).toBe(true);
        expect(await store.leaseRollouts('collector-1', DAY0 + 19_002, 10_000)).toBe(false);
      }));

    it("keeps gateways' rotated keys: a key registered once, a repeat returns the row held, its first use recorded once", () =>
      withStore(async (store) => {
        const [a, b, c] = ['a', 'b', 'c'].map((x) => x.repeat(64));
        expect(await store.gatewayKeys()).toEqual([]);
        const row = { gateway: 'gw-a', key: b, previous: a, version: 1, acceptedAt: DAY0, firstUsedAt: null };
        expect(await store.addGatewayKey(row)).toEqual(row);
        // the same key again (a repeated request, another collector): the row first registered
        expect(await store.addGatewayKey({ ...row, previous: c, version: 7, acceptedAt: DAY0 + 5 })).toEqual(row);
        await store.addGatewayKey({ gateway: 'gw-a', key: c, previous: b, version: 2, acceptedAt: DAY0 + 10, firstUsedAt: null });
        await store.addGatewayKey({ gateway: 'gw-0', key: a, previous: c, version: 1, acceptedAt: DAY0 + 20, firstUsedAt: null });
        await store.markGatewayKeyUsed('gw-a', b, DAY0 + 100);
        await store.markGatewayKeyUsed('gw-a', b, DAY0 + 200);
        expect((await store.gatewayKeys()).map((r) => [r.gateway, r.key[0], r.previous[0], r.version, r.acceptedAt, r.firstUsedAt])).toEqual([
          ['gw-0', 'a', 'c', 1, DAY0 + 20, null], ['gw-a', 'b', 'a', 1, DAY0, DAY0 + 100], ['gw-a', 'c', 'b', 2, DAY0 + 10, null],
        ]);
      }));
  });
}
