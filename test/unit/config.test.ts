import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configDocs, configDocsPage, loadConfig, parseConfig } from '../../core/config/index.js';

function problems(input: unknown): string[] {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('config schema', () => {
  it('fills every default from an empty gateway section', () => {
    const c = parseConfig({ gateway: { id: 'gw-01', venue: 'mall-01' } });
    expect(c.encounters.silenceS).toBe(60);
    expect(c.store.checkpointS).toBe(60);
    expect(c.store.retentionDays).toBe(14);
    expect(c.broker.url).toBe('mqtt://127.0.0.1:1883');
    expect(c.topicPrefix).toBe('vgw/v3');
  });

  it('names each bad field and how to fix it', () => {
    const p = problems({
      gateway: { id: 'bad id/with slash', venue: 'v' },
      broker: { url: 'http://x' },
      encounters: { silenceS: 0, attenuationThresholdsDb: [70, 60] },
      store: { retentionDays: 'fourteen' },
      colector: {},
    });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^gateway\.id: must be 1-64 letters/),
        expect.stringMatching(/^broker\.url: must be a URL starting mqtt:\/\//),
        expect.stringMatching(/^encounters\.silenceS: must be greater than 0/),
        expect.stringMatching(/^encounters\.attenuationThresholdsDb: thresholds must be ascending/),
        expect.stringMatching(/^store\.retentionDays: /),
        expect.stringMatching(/unknown key\(s\) "colector": remove them or check the spelling/),
      ]),
    );
  });

  it('refuses values no runtime honours, naming the limit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vgw-config-'));
    const p = problems({
      uplink: { resendMaxS: 3_000_000 }, // Node timers stop at 2^31-1 ms
      broker: { keepaliveS: 70_000 }, // MQTT keepalive is 16 bits
      store: { retentionDays: 1e-9, path: dir, unackedMaxDays: 2 },
    });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^uplink\.resendMaxS: at most 2147483 s/),
        expect.stringMatching(/^broker\.keepaliveS: at most 65535/),
        expect.stringMatching(/^store\.retentionDays: at least 1 day/),
        expect.stringMatching(/^store\.path: is a directory: name the database file inside it/),
      ]),
    );
    expect(problems({ store: { retentionDays: 14, unackedMaxDays: 7 } })).toEqual([expect.stringMatching(/^store\.unackedMaxDays: must be at least retentionDays/)]);
    expect(problems({ store: { checkpointS: 120 } })).toEqual([expect.stringMatching(/^store\.checkpointS: at most 60 s/)]);
    // A control socket path past the 107 bytes of sockaddr_un, derived or given.
    const deep = `/var/lib/${'x'.repeat(100)}/gateway.db`;
    expect(problems({ store: { path: deep } })).toEqual([expect.stringMatching(/^store\.path: the control socket .* longer than the 107 .* set health\.controlSocket to a shorter path/)]);
    expect(() => parseConfig({ store: { path: deep }, health: { controlSocket: '/run/vgw.sock' } })).not.toThrow();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses what the red team tried: a crowd no radio can play, a broker-reserved prefix, a config nested 100,000 deep', () => {
    expect(problems({ radio: { simulated: { arrivalsPerMinute: 1e9 } } })).toEqual([expect.stringMatching(/^radio\.simulated\.arrivalsPerMinute: arrivalsPerMinute × speed must be at most 60000/)]);
    expect(problems({ radio: { simulated: { arrivalsPerMinute: 600, speed: 101 } } })).toEqual([expect.stringMatching(/^radio\.simulated\.arrivalsPerMinute: /)]);
    expect(() => parseConfig({ radio: { simulated: { arrivalsPerMinute: 600, speed: 60 } } })).not.toThrow();
    expect(problems({ topicPrefix: '$SYS/x' })).toEqual([expect.stringMatching(/^topicPrefix: must not start with "\$"/)]);
    const dir = mkdtempSync(join(tmpdir(), 'vgw-config-'));
    const file = join(dir, 'deep.json');
    writeFileSync(file, `{"x": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    expect(() => loadConfig(file)).toThrow(ConfigError);
    expect(() => loadConfig(file)).toThrow(/nested 100001 levels deep; a config is at most 32/);
    // brackets inside strings are text, not nesting
    writeFileSync(file, JSON.stringify({ gateway: { id: 'gw-[[[[', venue: '{'.repeat(40) } }));
    expect(() => loadConfig(file)).toThrow(/gateway\.venue/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('names a number too large for JSON (1e400) instead of calling it null', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vgw-config-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, '{"store": {"retentionDays": 1e400}}');
    expect(() => loadConfig(file)).toThrow(/store\.retentionDays: the number is too large/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('documents every key from the schema', () => {
    const docs = configDocs();
    for (const key of ['gateway.id', 'broker.url', 'encounters.silenceS', 'store.checkpointS', 'uplink.batchMaxEncounters', 'collector.shareGroup']) {
      expect(docs).toContain(`\`${key}\``);
    }
  });

  it('docs/configuration.md is the page `vgw config docs` prints from the schema, key for key', () => {
    const file = resolve(__dirname, '../../docs/configuration.md');
    expect(readFileSync(file, 'utf8'), 'docs/configuration.md and the schema disagree: run `make docs`').toBe(configDocsPage());
  });
});
