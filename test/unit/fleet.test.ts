// The fleet listing and the venue chart, from rows and time alone: what needs a look comes first,
// missing batches are counted per life, and a status is read only for what it says.
import { describe, expect, it } from 'vitest';
import { fleetRows, fleetSummary, HOUR_MS, type LifeRow, type StatusRow, statusRow, venueChart } from '../../collector/fleet.js';

const T = Date.parse('2026-12-04T10:30:00Z');

function status(gateway: string, venue: string, state: 'online' | 'offline', extra: Record<string, unknown> = {}, receivedAt = T - 5000): StatusRow {
  const doc = { v: 3, state, gateway, venue, ...extra };
  return { gateway, venue, state, reason: typeof extra.reason === 'string' ? extra.reason : null, since: receivedAt - 60_000, receivedAt, document: JSON.stringify(doc) };
}

const online = {
  counters: {
    store: { pending: 17, outboxBatches: 2 },
    clock: { synchronized: false, source: 'none', steps: 1 },
    radio: { state: 'poweredOn' },
    beacon: { state: 'advertising', eid: '0011' },
  },
};

describe('fleetRows, what a unit runs', () => {
  it("says which of the backend's configuration versions is in effect, a last offer that did not apply, and a certificate about to expire", () => {
    const remote = { version: 5, state: 'committed', last: { version: 6, outcome: 'rolledBack', reason: 'not healthy within 180 s', at: T } };
    const rows = fleetRows([], [
      status('gw-r', 'v1', 'online', { config: { version: 'sha256:3f9a0c1d2e4b', source: 'remote', remote }, counters: { ...online.counters, tls: { certificates: [], warning: 'broker.cert expires in 9 days' } } }),
      status('gw-f', 'v1', 'online', { config: { version: 'sha256:0000000000aa', source: 'file', remote: { version: null, state: 'none', last: null } }, counters: online.counters }),
    ], T);
    expect(rows.map((r) => [r.gateway, r.config, r.certificateWarning])).toEqual([
      ['gw-f', 'sha256:0000000000aa file', null],
      ['gw-r', 'sha256:3f9a0c1d2e4b remote v5 committed; v6 rolledBack', 'broker.cert expires in 9 days'],
    ]);
  });
});

describe('fleetRows', () => {
  const lives: LifeRow[] = [
    { gateway: 'gw-a', life: 'L1', venue: 'v1', lastSeq: 10, batches: 10, lastBatchAt: T - 90_000 },
    { gateway: 'gw-b', life: 'L1', venue: 'v2', lastSeq: 40, batches: 37, lastBatchAt: T - 7_200_000 },
    // a second life of gw-b: its own sequence from 1, one missing
    { gateway: 'gw-b', life: 'L2', venue: 'v2', lastSeq: 5, batches: 4, lastBatchAt: T - 30_000 },
    { gateway: 'gw-c', life: 'L1', venue: 'v3', lastSeq: 3, batches: 3, lastBatchAt: T - 1000 },
  ];
  const statuses = [
    status('gw-a', 'v1', 'online', online),
    status('gw-b', 'v2', 'online', online),
    status('gw-d', 'v4', 'offline', { reason: 'connection lost' }),
  ];
  const rows = fleetRows(lives, statuses, T);

  it('puts offline first, then gateways without a status, then missing batches, then the rest by name', () => {
    expect(rows.map((r) => [r.gateway, r.state])).toEqual([
      ['gw-d', 'offline'],
      ['gw-c', 'unknown'],
      ['gw-b', 'online'],
      ['gw-a', 'online'],
    ]);
  });

  it('counts missing batches over every life, and the last batch of the newest', () => {
    const b = rows.find((r) => r.gateway === 'gw-b')!;
    expect(b.seqMissing).toBe(3 + 1);
    expect(b.lives).toBe(2);
    expect(b.lastBatchAt).toBe(new Date(T - 30_000).toISOString());
    expect(b.lastBatchAgoS).toBe(30);
    expect(rows.find((r) => r.gateway === 'gw-a')!.seqMissing).toBe(0);
  });

  it("reads backlog, clock, radio and beacon from an online status, and nothing of them from an offline one", () => {
    const a = rows.find((r) => r.gateway === 'gw-a')!;
    expect(a.backlog).toEqual({ pending: 17, outboxBatches: 2 });
    expect(a.clock).toEqual({ synchronized: false, source: 'none' });
    expect([a.radio, a.beacon]).toEqual(['poweredOn', 'advertising']);
    expect(a.since).toBe(new Date(T - 65_000).toISOString());
    const d = rows.find((r) => r.gateway === 'gw-d')!;
    expect([d.reason, d.backlog, d.clock, d.radio, d.lastBatchAt, d.lives]).toEqual(['connection lost', null, null, null, null, 0]);
    const c = rows.find((r) => r.gateway === 'gw-c')!;
    expect([c.venue, c.since, c.lastStatusAt]).toEqual(['v3', null, null]);
  });

  it('shows a status it cannot read as its state alone', () => {
    const odd = { ...status('gw-x', 'v9', 'online'), document: '{"counters":{"store":"full"}}' };
    const [x] = fleetRows([], [odd], T);
    expect([x.state, x.backlog, x.clock]).toEqual(['online', null, null]);
  });

  it('sums up, counting the units on each software version', () => {
    // these rows' statuses name no software
    expect(fleetSummary(rows)).toEqual({ gateways: 4, online: 2, offline: 1, unknown: 1, withMissingBatches: 1, versions: { unknown: 4 } });
    const on = (software: string | null) => ({ ...rows[0], software });
    expect(fleetSummary([on('0.2.0 1a2b3c4d5e6f'), on('0.2.0 1a2b3c4d5e6f'), on('0.1.9 abcdefabcdef'), on(null)]).versions).toEqual({ '0.2.0': 2, '0.1.9': 1, unknown: 1 });
  });
});

describe('statusRow', () => {
  const doc = (o: Record<string, unknown>) => Buffer.from(JSON.stringify(o));

  it('keeps since while the state is unchanged and restarts it when it changes', () => {
    const first = statusRow(doc({ state: 'online', gateway: 'g', venue: 'v' }), 1000, undefined)!;
    expect(first.since).toBe(1000);
    const again = statusRow(doc({ state: 'online', gateway: 'g', venue: 'v' }), 31_000, first)!;
    expect(again.since).toBe(1000);
    const gone = statusRow(doc({ state: 'offline', reason: 'connection lost', gateway: 'g', venue: 'v' }), 40_000, again)!;
    expect([gone.state, gone.reason, gone.since, gone.receivedAt]).toEqual(['offline', 'connection lost', 40_000, 40_000]);
  });

  it('refuses what is not a status document', () => {
    for (const payload of ['not json', 'null', '[]', '{"state":"online","venue":"v"}', '{"state":"sleeping","gateway":"g","venue":"v"}', '{"state":"online","gateway":7,"venue":"v"}']) {
      expect(statusRow(Buffer.from(payload), 1, undefined)).toBeNull();
    }
  });
});

describe('venueChart', () => {
  const h0 = Math.floor(T / HOUR_MS) * HOUR_MS;
  const rows = [
    { venue: 'mall', hour: h0, encounters: 300 },
    { venue: 'mall', hour: h0 - HOUR_MS, encounters: 100 },
    { venue: 'shop', hour: h0 - 2 * HOUR_MS, encounters: 5 },
    { venue: 'cafe', hour: h0, encounters: 20 },
    { venue: 'kiosk', hour: h0, encounters: 1 },
    // outside the window: before it, and in an hour to come
    { venue: 'mall', hour: h0 - 3 * HOUR_MS, encounters: 999 },
    { venue: 'mall', hour: h0 + HOUR_MS, encounters: 999 },
  ];

  it('shows the busiest venues per hour, the rest summed, and each hour’s total', () => {
    const c = venueChart(rows, T, 3, 2);
    expect(c.hours).toEqual([h0 - 2 * HOUR_MS, h0 - HOUR_MS, h0]);
    expect(c.venues).toEqual([
      { venue: 'mall', total: 400, perHour: [0, 100, 300] },
      { venue: 'cafe', total: 20, perHour: [0, 0, 20] },
    ]);
    expect(c.others).toEqual([5, 0, 1]);
    expect(c.othersVenues).toBe(2);
    expect(c.total).toEqual([5, 100, 321]);
  });
});
