// The power-cut simulator checked on SQLite alone: a process commits rows and says so after
// each commit; every state a cut could leave must open, pass integrity_check and hold every
// row whose commit had returned. With synchronous = NORMAL it must not (WAL commits are not
// synced): the simulator can fail, as the collector's acks did while it ran NORMAL.
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildRecorder, buildState, Op, readRecord, recorderEnv } from '../harness/powercut.js';
import { seeded } from '../harness/random.js';
import { tempDir } from '../harness/tmp.js';
import { requirePackage } from '../harness/system-packages.js';

const dir = tempDir('vgw-powercut-');
const lib = buildRecorder(dir);

/** Runs `rows` commits under the recorder; after each, one byte goes to `committed`. */
function record(name: string, synchronous: 'FULL' | 'NORMAL', rows: number): { ops: Op[]; watched: string } {
  const watched = join(dir, name);
  mkdirSync(watched);
  const log = join(dir, `${name}.log`);
  const script = `
    import { openDatabase } from ${JSON.stringify(join(process.cwd(), 'dist/core/sqlite/index.js'))};
    import { openSync, writeSync } from 'node:fs';
    const db = openDatabase(${JSON.stringify(join(watched, 'x.db'))});
    db.pragma('synchronous = ${synchronous}');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    const said = openSync(${JSON.stringify(join(watched, 'committed'))}, 'w');
    for (let i = 1; i <= ${rows}; i++) {
      db.prepare('INSERT INTO t VALUES (?, randomblob(300))').run(i);
      writeSync(said, Buffer.from([i]));
    }
    process.exit(0); // no close: the last commits stay in the WAL
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...recorderEnv(lib!, watched, log) }, encoding: 'utf8' });
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  return { ops: readRecord(log), watched };
}

/** Cut states checked: [states, failures]. A state fails if it loses a row said committed. */
function check(ops: Op[], watched: string, name: string): { states: number; failures: string[] } {
  const random = seeded(7);
  const failures: string[] = [];
  let states = 0;
  const said = ops.find((o) => o.kind === 'open' && o.path.endsWith('/committed'));
  const saidFile = said?.kind === 'open' ? said.file : -1;
  const saidAt = ops.flatMap((op, i) => (op.kind === 'write' && op.file === saidFile ? [{ i, row: op.data[0] }] : []));
  for (const { i, row } of saidAt) {
    for (const variant of ['synced', 'some unsynced'] as const) {
      const out = join(dir, `${name}-state-${states++}`);
      buildState(ops, i + 1, watched, out, variant === 'synced' ? () => false : () => random(0, 1) < 0.5);
      const db = new Database(join(out, 'x.db'));
      const ok = db.pragma('integrity_check', { simple: true });
      const kept = (db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 't'").pluck().get() as number) === 1
        ? (db.prepare('SELECT count(*) FROM t WHERE id <= ?').pluck().get(row) as number) : 0;
      db.close();
      if (ok !== 'ok' || kept !== row) failures.push(`cut after row ${row} said committed (${variant}): integrity ${ok}, ${kept} of ${row} rows`);
    }
  }
  return { states, failures };
}

describe('power-cut simulator', () => {
  beforeAll(() => requirePackage(lib !== null, 'gcc (compiles the power-cut recorder)', 'gcc'));
  it('SQLite with synchronous = FULL (the gateway and the collector): every cut state holds every commit that returned', () => {
    const { ops, watched } = record('full', 'FULL', 12);
    const { states, failures } = check(ops, watched, 'full');
    expect(states).toBe(24);
    expect(failures).toEqual([]);
  });

  it('with synchronous = NORMAL a cut loses commits that had returned: the simulator sees it', () => {
    const { ops, watched } = record('normal', 'NORMAL', 12);
    const { failures } = check(ops, watched, 'normal');
    expect(failures.length).toBeGreaterThan(0);
  });
});
