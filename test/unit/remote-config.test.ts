// The pure side of remote configuration (core/config/remote.ts): the overlay, the keys only a
// technician may set, and what a unit does with each version through its starts and health gate.
import { describe, expect, it } from 'vitest';
import {
  boot, commit, ConfigError, emptyRemoteState, HISTORY, hotOnly, localOnlyPaths, MAX_TRIAL_BOOTS, offer, overlay, overriddenKeys, remoteConfig, remoteStatus, rollBack, setAside, type RemoteSettings,
} from '../../core/config/index.js';

const file = { gateway: { id: 'gw-1', venue: 'mall-01' }, secretsFile: '/etc/venue-gateway/secrets.json', broker: { url: 'mqtt://10.0.0.5:1883', reconnectS: 5 }, uplink: { statusIntervalS: 30 } };
const check = (s: RemoteSettings) => void remoteConfig(file, s.settings, s.version);

describe('remote configuration, pure', () => {
  it('lays settings over the file: objects merge, anything else replaces', () => {
    expect(overlay(file, { uplink: { statusIntervalS: 300 }, broker: { reconnectS: 1 } })).toEqual({ ...file, broker: { url: 'mqtt://10.0.0.5:1883', reconnectS: 1 }, uplink: { statusIntervalS: 300 } });
    expect(overlay({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
    const config = remoteConfig(file, { uplink: { statusIntervalS: 300 } }, 4);
    expect(config.uplink.statusIntervalS).toBe(300);
    expect(config.broker.url).toBe('mqtt://10.0.0.5:1883');
  });

  it("names, key by key, what the backend sets over the unit's own file: a technician's settings stay visible as such", () => {
    expect(overriddenKeys(file, { uplink: { statusIntervalS: 300 }, broker: { reconnectS: 5, keepaliveS: 20 }, log: { level: 'debug' } })).toEqual(['uplink.statusIntervalS', 'broker.keepaliveS', 'log.level']);
    expect(overriddenKeys(file, { uplink: { statusIntervalS: 30 } })).toEqual([]);
    expect(overriddenKeys({ a: [1, 2], b: 1 }, { a: [1, 2], b: { c: 1 } })).toEqual(['b']);
    const committed = commit(offer(emptyRemoteState(), { version: 2, settings: {} }, 0, check).state, 1);
    expect(remoteStatus(committed, null, ['uplink.statusIntervalS'])).toMatchObject({ version: 2, state: 'committed', overrides: ['uplink.statusIntervalS'] });
    expect(remoteStatus(emptyRemoteState(), null, ['x'])).not.toHaveProperty('overrides');
  });

  it('takes a version without a restart only when it changes nothing but log.level and uplink.statusIntervalS', () => {
    const running = remoteConfig(file, {}, 1);
    expect(hotOnly(running, remoteConfig(file, { uplink: { statusIntervalS: 300 }, log: { level: 'debug' } }, 2))).toBe(true);
    expect(hotOnly(running, remoteConfig(file, {}, 2))).toBe(true);
    expect(hotOnly(running, remoteConfig(file, { uplink: { statusIntervalS: 300, batchMaxAgeS: 5 } }, 2))).toBe(false);
    expect(hotOnly(running, remoteConfig(file, { broker: { url: 'mqtt://10.0.0.6:1883' } }, 2))).toBe(false);
  });

  it('refuses identity, keys and where data lives, and anything the schema refuses, naming the field', () => {
    expect(localOnlyPaths({ gateway: { id: 'x' }, broker: { key: '/k', url: 'mqtt://a' }, store: { path: '/x', retentionDays: 3 } })).toEqual(['gateway', 'broker.key', 'store.path']);
    expect(() => remoteConfig(file, { broker: { cert: '/tmp/other.crt' } }, 5)).toThrow(/broker\.cert: set on the unit only/);
    const err = (() => {
      try {
        remoteConfig(file, { uplink: { statusIntervalS: -1 } }, 6);
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems[0]).toMatch(/^uplink\.statusIntervalS: /);
    expect(err!.message).toContain('remote configuration version 6');
  });

  it('takes a higher version for a trial, refuses a bad one with its field, and ignores what is not newer', () => {
    let state = emptyRemoteState();
    const tried = offer(state, { version: 2, settings: { uplink: { statusIntervalS: 300 } } }, 1000, check);
    expect(tried.kind).toBe('try');
    state = tried.state;
    expect(state.trial).toMatchObject({ version: 2, since: 1000, boots: 0 });
    expect(offer(state, { version: 2, settings: {} }, 2000, check).kind).toBe('old'); // the retained message again
    expect(offer(state, { version: 1, settings: {} }, 2000, check).kind).toBe('old'); // a replay of an older one
    const refused = offer(state, { version: 3, settings: { uplink: { statusIntervalS: 'often' } } }, 3000, check);
    expect(refused.kind).toBe('refused');
    expect(refused.kind === 'refused' && refused.reason).toMatch(/^uplink\.statusIntervalS: /);
    expect(refused.state.trial).toEqual(state.trial); // what runs is unchanged
    expect(refused.state.highest).toBe(3);
    expect(refused.state.history.at(-1)).toMatchObject({ version: 3, outcome: 'refused' });
  });

  it('runs a trial until it passes the gate, then commits it; rolled back, the committed settings come back', () => {
    let state = offer(emptyRemoteState(), { version: 1, settings: { uplink: { statusIntervalS: 60 } } }, 0, check).state;
    const first = boot(state, 10);
    expect(first).toMatchObject({ kind: 'run', trial: true, settings: { version: 1 } });
    state = commit(first.state, 20);
    expect(state.committed).toEqual({ version: 1, settings: { uplink: { statusIntervalS: 60 } } });
    expect(state.trial).toBeNull();
    expect(boot(state, 30)).toMatchObject({ kind: 'run', trial: false, settings: { version: 1 } });

    state = offer(state, { version: 2, settings: { broker: { url: 'mqtt://nowhere.invalid:1883' } } }, 40, check).state;
    const back = rollBack(boot(state, 50).state, 'no broker connection within 120 s', 60);
    expect(back.settings).toEqual({ version: 1, settings: { uplink: { statusIntervalS: 60 } } });
    expect(back.state.trial).toBeNull();
    expect(back.state.history.at(-1)).toEqual({ version: 2, outcome: 'rolledBack', reason: 'no broker connection within 120 s', at: 60 });
    // and it is never offered again: the same version is old news
    expect(offer(back.state, { version: 2, settings: {} }, 70, check).kind).toBe('old');
  });

  it(`rolls a trial back by itself after ${MAX_TRIAL_BOOTS} starts that never passed the gate (a crash loop, power cuts)`, () => {
    let state = offer(emptyRemoteState(), { version: 9, settings: {} }, 0, check).state;
    for (let i = 0; i < MAX_TRIAL_BOOTS; i++) {
      const plan = boot(state, i);
      expect(plan).toMatchObject({ kind: 'run', trial: true });
      state = plan.state;
    }
    const plan = boot(state, 99);
    expect(plan.kind).toBe('rolledBack');
    expect(plan.settings).toBeNull(); // nothing committed: the file alone
    expect(plan.state.history.at(-1)).toMatchObject({ version: 9, outcome: 'rolledBack', reason: `started ${MAX_TRIAL_BOOTS} times without passing the health gate` });
  });

  it('sets aside settings the file no longer takes: the file alone, the version remembered as rolled back', () => {
    const committed = commit(boot(offer(emptyRemoteState(), { version: 3, settings: { uplink: { statusIntervalS: 60 } } }, 0, check).state, 1).state, 2);
    const aside = setAside(committed, committed.committed!, 'no longer valid over the config file: …', 5);
    expect(aside).toMatchObject({ committed: null, trial: null, highest: 3 });
    expect(aside.history.at(-1)).toEqual({ version: 3, outcome: 'rolledBack', reason: 'no longer valid over the config file: …', at: 5 });
    expect(boot(aside, 6)).toMatchObject({ kind: 'run', settings: null, trial: false });
  });

  it(`keeps the last ${HISTORY} outcomes`, () => {
    let state = emptyRemoteState();
    for (let v = 1; v <= HISTORY + 5; v++) state = offer(state, { version: v, settings: { uplink: { statusIntervalS: 'x' } } }, v, check).state;
    expect(state.history.map((h) => h.version)).toEqual(Array.from({ length: HISTORY }, (_, i) => i + 6));
  });
});
