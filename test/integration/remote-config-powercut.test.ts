// A power cut at any moment of a remote configuration's apply (issue 26, item 3): a unit with
// version 1 committed takes version 2 (the trial written down), restarts into it (or, for a change
// a running unit takes, does not) and commits it once healthy, all under the power-cut recorder. Every state a cut could leave, with the unsynced
// writes lost or some kept, must start: the state file reads, and the unit runs version 1 or
// version 2, never neither, never the file alone.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type RemoteConfigState } from '../../core/config/index.js';
import { prepareRemoteStart } from '../../daemon/index.js';
import { buildRecorder, buildState, readRecord, recorderEnv } from '../harness/powercut.js';
import { runProcess, writeJson } from '../harness/processes.js';
import { seeded } from '../harness/random.js';
import { requirePackage } from '../harness/system-packages.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-remote-powercut-');
const lib = buildRecorder(dir);
const DIST = join(process.cwd(), 'dist');

const configFor = (storeDir: string, name: string) =>
  writeJson(join(dir, `${name}.json`), {
    gateway: { id: 'gw-pc', venue: 'venue-pc' },
    secretsFile: join(dir, 'secrets.json'),
    broker: { url: 'mqtt://127.0.0.1:1' },
    store: { path: join(storeDir, 'gw.db') },
    uplink: { statusIntervalS: 30 },
  });

const committedV1: RemoteConfigState = {
  v: 1, committed: { version: 1, settings: { uplink: { statusIntervalS: 60 } } }, trial: null, highest: 1,
  history: [{ version: 1, outcome: 'applied', at: 1 }],
};

describe('a power cut during a remote configuration apply', () => {
  beforeAll(() => requirePackage(lib !== null, 'gcc (compiles the power-cut recorder)', 'gcc'));

  // restart: version 2 changes what needs a restart; hot: only what a running unit takes (no restart, the same gate)
  it.each(['restart', 'hot'] as const)('leaves, at every cut, a unit that starts with the old version or the new (%s)', async (apply) => {
    const watched = join(dir, `watched-${apply}`);
    mkdirSync(watched);
    const stateFile = join(watched, 'remote-config.json');
    const initial = JSON.stringify(committedV1);
    writeFileSync(stateFile, initial);
    const config = configFor(watched, `recorded-${apply}`);
    const log = join(dir, `record-${apply}.log`);
    // Offered version 2, restarted into it, healthy at once, committed: the apply as the daemon does it.
    const script = `
      import pino from 'pino';
      import { loadConfig } from ${JSON.stringify(join(DIST, 'core/config/index.js'))};
      import { prepareRemoteStart, RemoteConfiguration } from ${JSON.stringify(join(DIST, 'daemon/remote-config.js'))};
      const log = pino({ level: 'silent' });
      const file = loadConfig(${JSON.stringify(config)});
      const hot = ${JSON.stringify(apply === 'hot')};
      const before = new RemoteConfiguration({ start: prepareRemoteStart(file, log), healthGateMs: 60000, healthy: () => true, restart: () => {}, log, ...(hot ? { applyHot: () => {} } : {}) });
      before.offered({ v: 3, kind: 'config', venue: 'venue-pc', gateway: 'gw-pc', version: 2, issuedAt: Date.now(), settings: { uplink: { statusIntervalS: 300 } } });
      const after = hot ? before : new RemoteConfiguration({ start: prepareRemoteStart(file, log), healthGateMs: 60000, healthy: () => true, restart: () => {}, log });
      if (!hot) after.start();
      setTimeout(() => { after.stop(); process.exit(after.status().state === 'committed' ? 0 : 1); }, 1500);
    `;
    const run = await runProcess(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), env: recorderEnv(lib!, watched, log) });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const ops = readRecord(log);
    // the trial, its start counted (after a restart only), its commit
    expect(ops.filter((o) => o.kind === 'rename').length).toBe(apply === 'hot' ? 2 : 3);

    const random = seeded(11);
    const seen = new Set<string>();
    const failures: string[] = [];
    let states = 0;
    for (let cut = 0; cut <= ops.length; cut++) {
      for (const variant of ['synced', 'some unsynced'] as const) {
        const out = join(dir, `state-${apply}-${states++}`);
        buildState(ops, cut, watched, out, variant === 'synced' ? () => false : () => random(0, 1) < 0.5, new Map([[stateFile, Buffer.from(initial)]]));
        const errors: string[] = [];
        const logger = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
        try {
          const start = prepareRemoteStart(loadConfig(configFor(out, `state-${apply}-${states}`)), logger);
          const interval = start.config.uplink.statusIntervalS;
          seen.add(`${interval}/${start.trial ?? 'committed'}`);
          if (interval !== 60 && interval !== 300) failures.push(`cut ${cut} (${variant}): runs statusIntervalS ${interval}, neither version`);
          if (errors.length > 0) failures.push(`cut ${cut} (${variant}): ${errors.join(' ')}`);
          JSON.parse(readFileSync(join(out, 'remote-config.json'), 'utf8'));
        } catch (err) {
          failures.push(`cut ${cut} (${variant}): does not start: ${(err as Error).message}`);
        }
      }
    }
    expect(failures).toEqual([]);
    // the cuts fell before, during and after the apply: version 1, version 2 on trial, version 2 committed
    expect([...seen].sort()).toEqual(['300/2', '300/committed', '60/committed']);
  });
});
