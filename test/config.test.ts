import { describe, expect, it } from 'vitest';
import { ConfigError, configDocs, parseConfig } from '../daemon/config/index.js';

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
    expect(c.topicPrefix).toBe('vgw/v1');
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

  it('documents every key from the schema', () => {
    const docs = configDocs();
    for (const key of ['gateway.id', 'broker.url', 'encounters.silenceS', 'store.checkpointS', 'uplink.batchMaxEncounters', 'collector.shareGroup']) {
      expect(docs).toContain(`\`${key}\``);
    }
  });
});
