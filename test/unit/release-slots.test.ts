// Which release a unit starts (core/release/slots.ts, daemon/release-slots.ts, daemon/updater.ts):
// a trial counted at every start and rolled back after three; the guard mending every state a
// power cut can leave between installing, writing the trial and moving `current`; the health gate
// of a trial on fake time; and schema migrations that keep a rollback possible (expand, then
// contract).
import { mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import {
  adoptRelease, beginTrial, commitTrial, emptySlotState, failTrial, guardBoot, MAX_RELEASE_TRIAL_BOOTS, parseSlotState, refuseRelease, releasesKept, trialRefusal,
} from '../../core/release/index.js';
import { migrate, type Migration } from '../../core/sqlite/index.js';
import { guard, linkedVersion, pointLink, readSlotState, writeSlotState } from '../../daemon/index.js';
import { Updater } from '../../daemon/updater.js';
import { FakeTimers } from '../harness/fake-timers.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-slots-');
let n = 0;
const silent = pino({ level: 'silent' });

/** An install root with the given releases on disk (each a dist/cli/main.js) and `current`/`committed` pointing at `at`. */
function installRoot(versions: string[], at: string | null): string {
  const root = join(dir, `root${n++}`);
  for (const v of versions) {
    mkdirSync(join(root, 'releases', v, 'dist/cli'), { recursive: true });
    writeFileSync(join(root, 'releases', v, 'dist/cli/main.js'), '');
  }
  mkdirSync(join(root, 'releases'), { recursive: true });
  if (at) {
    symlinkSync(join('releases', at), join(root, 'current'));
    symlinkSync(join('releases', at), join(root, 'committed'));
  }
  return root;
}

describe('release slots, pure', () => {
  it('counts every start of a trial and rolls it back after three without passing the gate; the version is never tried again', () => {
    let s = beginTrial(emptySlotState('1.0.0'), '1.1.0', 10);
    for (let boot = 1; boot <= MAX_RELEASE_TRIAL_BOOTS; boot++) {
      const plan = guardBoot(s, 20);
      expect(plan).toMatchObject({ kind: 'run', run: '1.1.0', trial: true });
      s = plan.state;
      expect(s.trial?.boots).toBe(boot);
    }
    const back = guardBoot(s, 30);
    expect(back).toMatchObject({ kind: 'rolledBack', run: '1.0.0', trial: false });
    expect(back.state).toMatchObject({ committed: '1.0.0', trial: null, failed: ['1.1.0'] });
    expect(back.state.history.at(-1)).toMatchObject({ version: '1.1.0', outcome: 'rolledBack', reason: expect.stringMatching(/^started 3 times/) });
    expect(trialRefusal(back.state, '1.1.0')).toMatch(/was rolled back on this unit before/);
    expect(trialRefusal(back.state, '1.2.0')).toBeNull();
    expect(trialRefusal(back.state, '1.0.0')).toMatch(/is the release this unit runs/);
  });

  it('a trial that passes is committed; the one before is kept, a trial under way refuses another; by hand, a failed one is forgiven', () => {
    const committed = commitTrial(beginTrial(emptySlotState('1.0.0'), '1.1.0', 1), 2);
    expect(committed).toMatchObject({ committed: '1.1.0', previous: '1.0.0', trial: null });
    expect(releasesKept(committed)).toEqual(['1.1.0', '1.0.0']);
    expect(trialRefusal(beginTrial(committed, '1.2.0', 3), '1.3.0')).toMatch(/1\.2\.0 is on trial/);
    const failed = failTrial(beginTrial(committed, '1.2.0', 3), 'x', 4);
    expect(adoptRelease(failed, '1.2.0', 5)).toMatchObject({ committed: '1.2.0', previous: '1.1.0', failed: [] });
    expect(refuseRelease(committed, '9.0.0', 'manifest: bad', 6).history.at(-1)).toEqual({ version: '9.0.0', outcome: 'refused', reason: 'manifest: bad', at: 6 });
    expect(parseSlotState(JSON.stringify(committed))).toEqual(committed);
    expect(parseSlotState('{"v":2}')).toBeNull();
    expect(parseSlotState('not json')).toBeNull();
  });
});

describe('the guard, at every state a power cut can leave an update in', () => {
  it('before the trial is written (the new release unpacked or half unpacked): the committed release starts', () => {
    const root = installRoot(['1.0.0', '1.1.0'], '1.0.0');
    mkdirSync(join(root, 'releases', '.staging-1.2.0', 'venue-gateway-1.2.0'), { recursive: true });
    writeSlotState(root, emptySlotState('1.0.0'));
    expect(guard(root, 1)).toMatchObject({ kind: 'run', run: '1.0.0', trial: false });
    expect(linkedVersion(root, 'current')).toBe('1.0.0');
  });

  it('the trial written, `current` not yet moved (or its new link left beside it): the guard moves it and counts the start', () => {
    const root = installRoot(['1.0.0', '1.1.0'], '1.0.0');
    writeSlotState(root, beginTrial(emptySlotState('1.0.0'), '1.1.0', 1));
    symlinkSync('releases/1.1.0', join(root, '.current.new'));
    expect(guard(root, 2)).toMatchObject({ kind: 'run', run: '1.1.0', trial: true });
    expect([linkedVersion(root, 'current'), linkedVersion(root, 'committed')]).toEqual(['1.1.0', '1.0.0']);
    expect(readSlotState(root).state.trial?.boots).toBe(1);
  });

  it('a state file that does not read: the unit goes on from the links, and says so', () => {
    const root = installRoot(['1.0.0'], '1.0.0');
    writeFileSync(join(root, 'update-state.json'), '{"v":1,"comm');
    const plan = guard(root, 1);
    expect(plan).toMatchObject({ run: '1.0.0', problem: expect.stringContaining('is not an update state') });
    expect(JSON.parse(readFileSync(join(root, 'update-state.json'), 'utf8'))).toMatchObject({ committed: '1.0.0' });
  });

  it('a committed release missing from the disk is an error that names the fix, not a start of nothing', () => {
    const root = installRoot([], null);
    writeSlotState(root, emptySlotState('1.0.0'));
    expect(() => guard(root, 1)).toThrow(/release 1\.0\.0 is not installed under .*: install a release/);
    pointLink(installRoot(['2.0.0'], null), 'current', '2.0.0');
  });
});

describe('the health gate of a release on trial', () => {
  const updater = (root: string, healthy: () => boolean, timers: FakeTimers, restarts: { n: number }) =>
    new Updater({
      root, releaseKeys: [Buffer.alloc(32, 1)], running: { version: '1.1.0', arch: process.arch, nodeAbi: process.versions.modules }, slot: '1.1.0',
      healthGateMs: 60_000, healthy, restart: () => restarts.n++, onChange: () => {}, timers, log: silent,
    });

  it('commits a trial once healthy, and removes releases no longer kept', () => {
    const root = installRoot(['0.9.0', '1.0.0', '1.1.0'], '1.0.0');
    writeSlotState(root, guardBoot(beginTrial({ ...emptySlotState('1.0.0'), previous: '0.9.0' }, '1.1.0', 0), 0).state);
    pointLink(root, 'current', '1.1.0');
    const timers = new FakeTimers(1_000);
    let healthy = false;
    const restarts = { n: 0 };
    const u = updater(root, () => healthy, timers, restarts);
    u.start();
    expect(u.status()).toMatchObject({ state: 'trial', running: '1.1.0', committed: '1.0.0' });
    timers.advance(30_000);
    healthy = true;
    timers.advance(1_000);
    expect(u.status()).toMatchObject({ state: 'idle', committed: '1.1.0', last: { version: '1.1.0', outcome: 'applied' } });
    expect(readlinkSync(join(root, 'committed'))).toBe('releases/1.1.0');
    expect(readSlotState(root).state).toMatchObject({ committed: '1.1.0', previous: '1.0.0', trial: null });
    expect(linkedVersion(root, 'current')).toBe('1.1.0');
    expect(() => readlinkSync(join(root, 'releases/0.9.0'))).toThrow(); // removed
    expect(restarts.n).toBe(0);
    u.stop();
  });

  it('rolls a trial back when it is not healthy within the gate: the committed release, a restart, the version remembered', () => {
    const root = installRoot(['1.0.0', '1.1.0'], '1.0.0');
    writeSlotState(root, guardBoot(beginTrial(emptySlotState('1.0.0'), '1.1.0', 0), 0).state);
    pointLink(root, 'current', '1.1.0');
    const timers = new FakeTimers(1_000);
    const restarts = { n: 0 };
    const u = updater(root, () => false, timers, restarts);
    u.start();
    timers.advance(59_000);
    expect(restarts.n).toBe(0);
    timers.advance(2_000);
    expect(restarts.n).toBe(1);
    expect(linkedVersion(root, 'current')).toBe('1.0.0');
    expect(readSlotState(root).state).toMatchObject({ committed: '1.0.0', trial: null, failed: ['1.1.0'] });
    expect(u.status().last).toMatchObject({ version: '1.1.0', outcome: 'rolledBack', reason: 'not healthy within 60 s (broker connected, radio on, a store commit)' });
  });

  it('refuses at once what it cannot take: no release key, not running from a release, http, older without downgrade', () => {
    const root = installRoot(['1.1.0'], '1.1.0');
    const base = { root, running: { version: '1.1.0', arch: process.arch, nodeAbi: process.versions.modules }, healthGateMs: 60_000, healthy: () => true, restart: () => {}, onChange: () => {}, log: silent };
    const req = { v: 3 as const, op: 'update' as const, manifest: 'https://r.example/venue-gateway-1.2.0-linux-x64.manifest.cose', version: '1.2.0' };
    expect(new Updater({ ...base, releaseKeys: [], slot: '1.1.0' }).requested(req)).toMatch(/^update\.releaseKeys: empty/);
    expect(new Updater({ ...base, releaseKeys: [Buffer.alloc(32)], slot: null }).requested(req)).toMatch(/^update\.root: this unit does not run from a release under/);
    const u = new Updater({ ...base, releaseKeys: [Buffer.alloc(32)], slot: '1.1.0' });
    expect(u.requested({ ...req, manifest: 'http://r.example/x.manifest.cose' })).toMatch(/^manifest: http:\/\/ is not allowed/);
    expect(u.requested({ ...req, version: '1.0.0' })).toBe('version: 1.0.0 is older than the running 1.1.0 (say downgrade to install it)');
    expect(u.status().state).toBe('idle');
  });
});

describe('schema migrations that keep a rollback possible', () => {
  const base: Migration[] = ['CREATE TABLE a (x)', 'CREATE TABLE b (x)'];
  const expand: Migration = { sql: 'CREATE TABLE c (x)', keepsOlder: true };
  const contract = 'DROP TABLE a';
  const expandAgain: Migration = { sql: 'CREATE TABLE d (x)', keepsOlder: true };

  it('an older release runs on a database a newer one only expanded, and is refused one it contracted, with the reason', () => {
    const db = new Database(':memory:');
    expect(migrate(db, base)).toEqual({ version: 2, applied: 2, deferred: 0, newerKept: false });
    expect(migrate(db, [...base, expand])).toMatchObject({ version: 3, applied: 1 });
    expect(migrate(db, base)).toEqual({ version: 3, applied: 0, deferred: 0, newerKept: true });
    expect(migrate(db, [...base, expand, contract])).toMatchObject({ version: 4, applied: 1 });
    expect(() => migrate(db, base)).toThrow(/schema version 4 is newer than this software \(2\) and needs software that knows at least 4 migrations/);
  });

  it('on trial, a migration that would strand the release it rolls back to waits until the release is committed', () => {
    const db = new Database(':memory:');
    migrate(db, base);
    expect(migrate(db, [...base, expand, contract, expandAgain], { deferBreaking: true })).toEqual({ version: 3, applied: 1, deferred: 2, newerKept: false });
    expect(migrate(db, base)).toMatchObject({ newerKept: true }); // the rollback runs
    expect(migrate(db, [...base, expand, contract, expandAgain])).toMatchObject({ version: 5, applied: 2 });
    // a new database strands no one: all of it at once, even on trial
    expect(migrate(new Database(':memory:'), [...base, expand, contract], { deferBreaking: true })).toMatchObject({ version: 4, deferred: 0 });
  });
});
