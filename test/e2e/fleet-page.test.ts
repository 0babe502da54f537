// The collector's fleet page in a real headless Chromium (Debian's): the page's own script loads
// the fleet and the venue chart from the running collector, and the test reads what Chromium
// rendered: the DOM it ended with, and the pixels of its screenshot (bar heights in proportion to
// the encounters stored, the offline gateway marked in red).
import { execFile } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';
import { ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { Collector, CollectorDb, CollectorHttp, HOUR_MS, type StatusRow } from '../../collector/index.js';
import { newRollout } from '../../core/fleet/index.js';
import type { WireEncounter } from '../../core/encounters/index.js';
import { createLogger } from '../../core/log/index.js';
import type { Batch } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { sampleEncounter } from '../harness/encounters.js';
import { testBroker } from '../harness/collector.js';
import { tempDir } from '../harness/tmp.js';
import { TEST_BACKEND } from '../harness/identity.js';

const dir = tempDir('vgw-page-');
const broker = useLocalBroker(dir);
const run = promisify(execFile);

/** Chromium as CI installs it (.ci/run); root (CI, containers) needs --no-sandbox. */
async function chromium(args: string[]): Promise<string> {
  const { stdout } = await run(
    'chromium',
    ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--force-device-scale-factor=1', '--window-size=1280,1100', '--virtual-time-budget=10000', ...args],
    { timeout: 90_000, maxBuffer: 16 << 20 },
  );
  return stdout;
}

const rgb = (hex: string) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

/** For each column x, how many pixels are exactly this colour. */
function columnsOf(png: PNG, hex: string): Map<number, number> {
  const [r, g, b] = rgb(hex);
  const cols = new Map<number, number>();
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) {
      const i = (y * png.width + x) * 4;
      if (png.data[i] === r && png.data[i + 1] === g && png.data[i + 2] === b) cols.set(x, (cols.get(x) ?? 0) + 1);
    }
  }
  return cols;
}

/** Runs of adjacent columns: [first x, last x, tallest column in it]. */
function runs(cols: Map<number, number>): Array<[number, number, number]> {
  const xs = [...cols.keys()].sort((a, b) => a - b);
  const out: Array<[number, number, number]> = [];
  for (const x of xs) {
    const last = out[out.length - 1];
    if (last && x === last[1] + 1) {
      last[1] = x;
      last[2] = Math.max(last[2], cols.get(x)!);
    } else out.push([x, x, cols.get(x)!]);
  }
  return out;
}

describe('fleet page in headless Chromium', () => {
  it('shows the gateways that need a look first and encounters per hour per venue as bars in proportion', async () => {
    const database = join(dir, 'collector.db');
    const now = Date.now();
    const h = Math.floor(now / HOUR_MS) * HOUR_MS;
    // ground truth: mall-a 40 encounters two hours ago and 20 an hour ago; shop-b 10 an hour ago
    const store = new CollectorDb(database);
    const lifeA = ulid();
    const lifeB = ulid();
    const batch = (gateway: string, venue: string, life: string, seq: number, encounters: WireEncounter[]): Batch =>
      ({ kind: 'batch', id: ulid(), gateway, venue, life, seq, createdAt: now, encounters, hash: Buffer.alloc(32) });
    let id = 0;
    const at = (n: number, hour: number) => Array.from({ length: n }, () => sampleEncounter(++id, hour + 60_000 + id * 1000));
    await store.commit([
      { batch: batch('gw-mall', 'mall-a', lifeA, 1, at(40, h - 2 * HOUR_MS)), signer: null },
      { batch: batch('gw-mall', 'mall-a', lifeA, 2, at(20, h - HOUR_MS)), signer: null },
      // gw-shop's batch 2 never arrived
      { batch: batch('gw-shop', 'shop-b', lifeB, 1, at(6, h - HOUR_MS)), signer: null },
      { batch: batch('gw-shop', 'shop-b', lifeB, 3, at(4, h - HOUR_MS)), signer: null },
    ]);
    const status = (gateway: string, venue: string, doc: Record<string, unknown>): StatusRow => ({
      gateway, venue, state: doc.state as 'online' | 'offline', reason: (doc.reason as string) ?? null, since: now - 600_000, receivedAt: now - 5000,
      document: JSON.stringify({ v: 3, gateway, venue, software: { version: '0.1.0', commit: gateway === 'gw-shop' ? '0123456789ab-dirty' : '8ed102a1b2c3' }, config: { version: 'sha256:3f9a0c1d2e4b', source: 'file' }, ...doc }),
    });
    const counters = { store: { pending: 3, outboxBatches: 1 }, clock: { synchronized: true, source: 'timesyncd', steps: 0 }, radio: { state: 'poweredOn' }, beacon: { state: 'advertising' } };
    await store.saveStatuses([
      status('gw-mall', 'mall-a', { state: 'online', counters }),
      status('gw-shop', 'shop-b', { state: 'online', counters }),
      status('gw-gone', 'kiosk-c', { state: 'offline', reason: 'connection lost' }),
    ]);
    // a rollout that stopped itself: two units applied it, one rolled it back
    await store.changeLayer('fleet', '', { uplink: { statusIntervalS: 300 } }, now - 60_000, (layer) => {
      const r = newRollout('01ROLLOUT', `fleet version ${layer.version}`, { scope: 'fleet', name: '', version: layer.version }, ['gw-mall', 'gw-shop', 'gw-gone'].map((g) => ({ gateway: g, venue: 'v', online: true })), { canary: 3, ratePerMinute: 60, abortAfter: 1, settleMs: 600_000 }, now - 60_000);
      const settled = (state: 'applied' | 'failed', reason?: string) => ({ state, version: 1, sentAt: now - 50_000, settledAt: now - 20_000, ...(reason ? { reason } : {}) });
      return {
        ...r, state: 'aborted', reason: '1 units failed (the rollout stops at 1)',
        units: r.units.map((u) => ({ ...u, ...(u.gateway === 'gw-gone' ? settled('failed', 'rolled back version 1: not healthy within 180 s') : settled('applied')) })),
      };
    });
    store.close();

    const log = createLogger('error');
    const collector = new Collector({ control: TEST_BACKEND, broker: testBroker(broker().url, 'page-collector'), prefix: 'page/v2', database, registry: null }, log);
    await collector.start();
    const http = new CollectorHttp(collector, { host: '127.0.0.1', port: 0 }, log);
    await http.start();
    const url = `http://127.0.0.1:${http.port}/`;
    try {
      const dom = await chromium(['--dump-dom', url]);
      expect(dom).toContain('data-loaded="yes"');
      const rowIds = [...dom.matchAll(/<tr class="row-(\w+)" data-gateway="([^"]+)">/g)].map((m) => [m[2], m[1]]);
      expect(rowIds).toEqual([['gw-gone', 'offline'], ['gw-shop', 'online'], ['gw-mall', 'online']]);
      expect(dom).toContain('offline (connection lost)');
      const rollout = /<tr class="row-offline" data-rollout="01ROLLOUT">(.*?)<\/tr>/.exec(dom)?.[1];
      expect(rollout).toContain('<td>fleet version 1</td><td class="rollout-state">aborted</td>');
      expect(rollout).toContain('<td>3</td><td>3</td><td class="rollout-applied">2</td><td>0</td><td>0</td><td class="missing">1</td><td>0</td>');
      expect(rollout).toContain('1 units failed (the rollout stops at 1); gw-gone: rolled back version 1: not healthy within 180 s');
      expect(dom).toMatch(/<td class="missing">1<\/td>/);
      expect(dom).toContain('3 / 1');
      expect(dom).toContain('synced (timesyncd)');
      for (const chip of ['3 gateways', '2 online', '1 offline', '0 no status', '1 with missing batches']) expect(dom).toContain(`>${chip}<`);
      expect(dom).toMatch(/<\/i>mall-a: 60<\/span>/);
      expect(dom).toMatch(/<\/i>shop-b: 10<\/span>/);
      expect(dom).toContain('<title>mall-a: 40</title>');

      const shot = join(dir, 'fleet-page.png');
      await chromium([`--screenshot=${shot}`, url]);
      const png = PNG.sync.read(readFileSync(shot));
      expect([png.width, png.height]).toEqual([1280, 1100]);
      // the chart: mall-a's bars (palette 0) two hours ago and one hour ago, 40 : 20; shop-b's (palette 1) stacked on the second, 10
      const mall = runs(columnsOf(png, '#0969da')).filter(([a, b]) => b - a >= 15); // bars (28 px), not the 10 px legend swatch
      const shop = runs(columnsOf(png, '#8250df')).filter(([a, b]) => b - a >= 15);
      expect(mall).toHaveLength(2);
      expect(shop).toHaveLength(1);
      const [older, newer] = mall;
      expect(older[2]).toBeGreaterThan(150); // the tallest bar fills most of the 208 px plot
      expect(older[2] / newer[2]).toBeCloseTo(2, 1);
      expect(shop[0][2] / newer[2]).toBeCloseTo(0.5, 1);
      expect([shop[0][0], shop[0][1]]).toEqual([newer[0], newer[1]]); // stacked on the same hour
      expect(newer[0]).toBeGreaterThan(older[1]); // time runs left to right
      // the offline gateway: its row tinted, its state in red
      expect(columnsOf(png, '#ffebe9').size).toBeGreaterThan(500);
      expect(columnsOf(png, '#cf222e').size).toBeGreaterThan(40);
      // online is a green badge, not a green row: only the chip and the two badges are green
      const green = [...columnsOf(png, '#1a7f37').values()].reduce((a, b) => a + b, 0);
      expect(green).toBeGreaterThan(500);
      expect(green).toBeLessThan(6000);
      // the last columns are filled from the status too: the beacon, and what each unit runs
      expect(dom).toContain('<td>advertising</td>');
      expect(dom).toContain('<td>0.1.0 8ed102a1b2c3</td>');
      expect(dom).toContain('<td>0.1.0 0123456789ab-dirty</td>');
      expect(dom.match(/<td>sha256:3f9a0c1d2e4b file<\/td>/g)).toHaveLength(3); // offline units say it too
      if (process.env.VGW_KEEP_SCREENSHOT) copyFileSync(shot, process.env.VGW_KEEP_SCREENSHOT);
    } finally {
      await http.stop();
      await collector.stop();
    }
  }, 180_000);
});
