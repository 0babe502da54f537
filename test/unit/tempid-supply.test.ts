// The venue's temp ID supply with its time and timers passed in (fake ones): when it asks, how it
// retries, which ID it hands out when, what it keeps on disk, and what it says when the file it
// kept is damaged.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log/index.js';
import { type IssuedTempId, TEMPID_BYTES } from '../../core/bluetrace/index.js';
import { TempIdSupply, type TempIdSupplyOptions } from '../../daemon/bluetrace/tempid-supply.js';
import { FakeTimers } from '../harness/fake-timers.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-tempids-');
let n = 0;
const T = Date.UTC(2026, 11, 7, 10); // unix ms; IDs are in unix seconds
const S = T / 1000;
const QUARTER = 900;

/** `count` IDs of 15 minutes each from `fromS`, the i-th all bytes i + 1 (opaque to the unit: only the backend can read them). */
function issued(fromS: number, count: number): IssuedTempId[] {
  return Array.from({ length: count }, (_, i) => ({ tempId: Buffer.alloc(TEMPID_BYTES, i + 1).toString('base64'), start: fromS + i * QUARTER, expiry: fromS + (i + 1) * QUARTER }));
}

function supply(overrides: Partial<TempIdSupplyOptions> = {}) {
  const requests: Array<{ id: string; count: number }> = [];
  let brokerUp = true;
  let trusted = true;
  const s = new TempIdSupply({
    path: join(dir, `tempids-${n++}.json`), lowWater: 8, retryMs: 60_000, clockTrusted: () => trusted,
    request: (id, count) => brokerUp && requests.push({ id, count }) > 0, timers, ...overrides,
  }, createLogger('silent'));
  return {
    s, requests,
    setBroker: (up: boolean) => (brokerUp = up),
    setTrusted: (t: boolean) => (trusted = t),
  };
}

/** The supply's time and timers, passed in: each test starts at T. */
let timers: FakeTimers;
beforeEach(() => {
  timers = new FakeTimers(T);
});

describe('the temp ID supply', () => {
  it('asks once at start when it has none, waits retryMs for an answer, then asks again', () => {
    const { s, requests } = supply();
    s.start();
    expect(requests).toHaveLength(1);
    expect(requests[0].count).toBe(100);
    expect(s.status()).toMatchObject({ state: 'out', left: 0, requests: 1, responses: 0 });
    timers.advance(55_000); // its 5-second checks: still waiting for the answer
    expect(requests).toHaveLength(1);
    timers.advance(5_000);
    expect(requests).toHaveLength(2);
    expect(requests[1].id).not.toBe(requests[0].id);
    s.stop();
  });

  it('with the broker down it does not count a request, and asks at its next check once it is back', () => {
    const { s, requests, setBroker } = supply();
    setBroker(false);
    s.start();
    expect(s.status().requests).toBe(0);
    setBroker(true);
    timers.advance(5_000);
    expect(requests).toHaveLength(1);
    s.stop();
  });

  it('takes the answer to its own request only, keeps it on disk (0600) and hands out the ID valid now', () => {
    const { s, requests } = supply();
    s.start();
    s.accept({ v: 3, id: '01JEXAMPLE0000000000000000', tempIds: issued(S, 20), refreshAt: S + 3600 });
    expect(s.status().responses).toBe(0); // not the id it asked with
    s.accept({ v: 3, id: requests[0].id, tempIds: issued(S - 60, 20), refreshAt: S + 3600 });
    expect(s.status()).toMatchObject({ state: 'ok', left: 20, responses: 1, lastError: null, refreshAt: (S + 3600) * 1000, lastsUntil: (S - 60 + 20 * QUARTER) * 1000 });
    expect(s.current()).toBe(issued(S - 60, 1)[0].tempId);
    timers.advance(QUARTER * 1000);
    expect(s.current()).toBe(issued(S - 60, 2)[1].tempId);
    const path = join(dir, `tempids-${n - 1}.json`);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect((JSON.parse(readFileSync(path, 'utf8')) as { tempIds: unknown[] }).tempIds).toHaveLength(20);
    // a restart while offline keeps the venue on the air
    const again = supply({ path });
    expect(again.s.current()).toBe(issued(S - 60, 2)[1].tempId);
    s.stop();
  });

  it('runs low, asks for more before it runs out, and says out (never an expired ID) when it does', () => {
    const { s, requests } = supply();
    s.start();
    s.accept({ v: 3, id: requests[0].id, tempIds: issued(S, 10), refreshAt: S + 86_400 });
    expect(s.status().state).toBe('ok');
    timers.advance(3 * QUARTER * 1000); // 7 left, under the low water mark of 8
    expect(s.status().state).toBe('low');
    expect(requests).toHaveLength(2);
    timers.advance(7 * QUARTER * 1000);
    expect(s.current()).toBeNull();
    expect(s.status()).toMatchObject({ state: 'out', left: 0, lastsUntil: null });
    s.stop();
  });

  it('hands out nothing on an untrusted clock, and says so', () => {
    const { s, requests, setTrusted } = supply();
    s.start();
    s.accept({ v: 3, id: requests[0].id, tempIds: issued(S, 20), refreshAt: S + 3600 });
    setTrusted(false);
    expect(s.current()).toBeNull();
    expect(s.status().state).toBe('clockUnsynced');
    s.stop();
  });

  it("counts the backend's refusal and shows its reason", () => {
    const { s, requests } = supply();
    s.start();
    s.accept({ v: 3, id: requests[0].id, error: 'gateway "gw" is not registered' });
    expect(s.status()).toMatchObject({ state: 'out', refused: 1, lastError: 'gateway "gw" is not registered' });
    s.stop();
  });

  it('refuses a signed answer that makes no sense (IDs valid an hour, IDs valid only in 2038, a refresh a year away), keeping the IDs it holds', () => {
    const { s, requests } = supply();
    s.start();
    s.accept({ v: 3, id: requests[0].id, tempIds: issued(S, 20), refreshAt: S + 60 }); // a refresh due soon: it asks again
    const held = s.current();
    const y2038 = Date.UTC(2038, 0, 1) / 1000;
    const answers = [
      { tempIds: issued(S, 5).map((t) => ({ ...t, expiry: t.start + 3600 })), refreshAt: S + 3600, error: /^answer refused: tempIds\.0\.expiry: valid 3600 s, more than the 1200 s/ },
      { tempIds: issued(y2038, 5), refreshAt: S + 3600, error: /^answer refused: tempIds\.0\.start: 2038-01-01T00:00:00\.000Z is not within a day before and two days after/ },
      { tempIds: issued(S, 5), refreshAt: S + 365 * 86_400, error: /^answer refused: refreshAt: .* is not within a day of this unit's clock/ },
    ];
    for (const [i, a] of answers.entries()) {
      const asked = requests.length;
      timers.advance(QUARTER * 1000); // the refresh is due: it asks again
      expect(requests.length).toBeGreaterThan(asked);
      const id = requests.at(-1)!.id;
      s.accept({ v: 3, id, tempIds: a.tempIds, refreshAt: a.refreshAt });
      expect(s.status()).toMatchObject({ refused: i + 1, lastError: expect.stringMatching(a.error) });
    }
    expect(s.status().left).toBe(20 - 3);
    expect(held).not.toBeNull();
    s.stop();
  });

  it('a damaged file is said in the status and fetched again, not taken for none', () => {
    const path = join(dir, 'damaged.json');
    writeFileSync(path, '{"v":1,"tempIds":[{"tempId":"AAAA');
    const { s, requests } = supply({ path });
    expect(s.status().lastError).toMatch(/^temp ID file .*damaged\.json unreadable \(.*JSON.*\): asking the backend again$/);
    s.start();
    expect(requests).toHaveLength(1);
    // entries that are not temp IDs are dropped and said too
    writeFileSync(path, JSON.stringify({ v: 1, refreshAt: S, tempIds: [...issued(S, 2), { tempId: 'not base64!', start: 'soon', expiry: 1 }] }));
    const partly = supply({ path });
    expect(partly.s.status()).toMatchObject({ left: 2, lastError: expect.stringMatching(/1 of 3 entries malformed/) });
    s.stop();
  });
});
