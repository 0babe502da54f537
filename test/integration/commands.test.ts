// Signed commands to a running unit (issue 26, item 4): the log level raised from the backend
// for a while, answered with a reply the unit signs, and back to the configured level by itself;
// a bad command is answered with the field, an unsigned one not at all.
import mqtt from 'mqtt';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gatewayTopics } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { gatewayKeyOf, provisionTestGateway, signedRequest, testBackendKeyFile, unitDoc } from '../harness/identity.js';
import { runVgw, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { unitProblems } from '../harness/protocol-schema.js';
import { tempDir } from '../harness/tmp.js';

const dir = tempDir('vgw-commands-');
const broker = useLocalBroker(dir);
const prefix = 'commands/v3';

describe('signed commands', () => {
  it('logLevel: debug for a few seconds, then the configured level again; bad ones answered with the field, unsigned ones not at all', async () => {
    const identity = provisionTestGateway(dir, 'gw-cmd', 'venue-cmd');
    const to = { venue: 'venue-cmd', gateway: 'gw-cmd' };
    const topics = gatewayTopics(prefix, to.venue, to.gateway);
    const config = writeJson(join(dir, 'cmd.json'), {
      gateway: { id: to.gateway, venue: to.venue },
      secretsFile: identity.secretsFile,
      broker: { url: broker().url, reconnectS: 0.3 },
      topicPrefix: prefix,
      radio: { simulated: { seed: 3, phones: 0, arrivalsPerMinute: 120, minDwellS: 10, maxDwellS: 30, speed: 40, anchor: Date.now() } },
      clock: { syncCheck: 'assume-synced' },
      store: { path: join(dir, 'cmd.db'), checkpointS: 0.25 },
      health: { controlSocket: join(dir, 'cmd.sock') },
      uplink: { statusIntervalS: 1 },
      log: { level: 'info' },
    });
    const daemon = spawnVgw(['run', '-c', config]);
    const tool = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'backend-tool' });
    const replyTo = `${prefix}/replies/backend-tool`;
    const answers = new Map<string, Buffer>();
    tool.on('message', (_t, payload, packet) => answers.set(String(packet.properties?.correlationData), payload));
    await tool.subscribeAsync(replyTo, { qos: 1 });
    const ask = async (corr: string, payload: Buffer | string) => {
      await tool.publishAsync(topics.request, payload, { qos: 1, properties: { correlationData: Buffer.from(corr) } });
    };
    let probes = 0;
    await waitFor('the unit answering', async () => {
      await ask(`probe-${++probes}`, signedRequest(to, replyTo, { op: 'status' }));
      return [...answers.keys()].some((k) => k.startsWith('probe-'));
    }, 20_000);
    const debugLines = () => daemon.output().split('\n').filter((l) => l.includes('"msg":"committed"'));
    expect(debugLines()).toEqual([]); // configured at info

    const raise = signedRequest(to, replyTo, { op: 'logLevel', level: 'debug', forS: 3 });
    await ask('raise', raise);
    const reply = await waitFor('the command answered', () => answers.get('raise'), 10_000);
    expect(unitProblems('command-reply', reply, gatewayKeyOf(identity))).toEqual([]);
    const doc = unitDoc<{ ok: boolean; level: string; until: string }>(reply, identity);
    expect(doc).toMatchObject({ ok: true, op: 'logLevel', level: 'debug' });
    expect(Date.parse(doc.until) - Date.now()).toBeGreaterThan(1000);
    expect(Date.parse(doc.until) - Date.now()).toBeLessThanOrEqual(3000);
    await waitFor('debug lines in the log', () => debugLines().length > 0, 10_000);
    await waitFor('the level back by itself', () => daemon.output().includes('log level back to the configured one'), 10_000);

    // after the fall-back the unit keeps committing, at info: no more debug lines
    const fallenBackAt = daemon.output().indexOf('log level back to the configured one');
    const commits = async (): Promise<number> => {
      const corr = `count-${Math.random()}`;
      await ask(corr, signedRequest(to, replyTo, { op: 'status' }));
      const status = unitDoc<{ counters: { store: { writeTransactions: number } } }>(await waitFor('a status', () => answers.get(corr), 10_000), identity);
      return status.counters.store.writeTransactions;
    };
    const then = await commits();
    await waitFor('three more commits', async () => (await commits()) >= then + 3, 20_000);
    expect(daemon.output().slice(fallenBackAt).includes('"msg":"committed"')).toBe(false);

    // a bad level, too long a window, and an unsigned command
    await ask('loud', signedRequest(to, replyTo, { op: 'logLevel', level: 'loud', forS: 60 }));
    await ask('long', signedRequest(to, replyTo, { op: 'logLevel', level: 'debug', forS: 100_000 }));
    await ask('unsigned', JSON.stringify({ v: 3, kind: 'request', ...to, op: 'logLevel', level: 'trace', forS: 60, replyTo }));
    const loud = unitDoc<{ error: string }>(await waitFor('the bad level answered', () => answers.get('loud'), 10_000), identity);
    expect(loud.error).toBe('level: must be one of fatal, error, warn, info, debug, trace');
    const long = unitDoc<{ error: string }>(await waitFor('the long window answered', () => answers.get('long'), 10_000), identity);
    expect(long.error).toBe('forS: at most 86400 (a day): the level falls back by itself');
    const counted = unitDoc<{ counters: { control: { refused: { unsigned: number } } } }>(
      await waitFor('the unsigned one counted', async () => {
        const corr = `after-${Math.random()}`;
        await ask(corr, signedRequest(to, replyTo, { op: 'status' }));
        const a = await waitFor('a status', () => answers.get(corr), 10_000);
        return unitDoc<{ counters: { control: { refused: { unsigned: number } } } }>(a, identity).counters.control.refused.unsigned === 1 ? a : undefined;
      }, 10_000),
      identity,
    );
    expect(counted.counters.control.refused.unsigned).toBe(1);
    expect(answers.has('unsigned')).toBe(false);
    expect(daemon.output()).not.toContain('"level":10'); // trace never took effect

    // the Python client sends the same command and checks the answer with the unit's registered key
    const registry = writeJson(join(dir, 'registry.json'), [identity.record]);
    const py = spawnSync('/usr/bin/python3', [
      '-m', 'vgw_client', 'log-level', '--url', broker().url, '--prefix', prefix, '--venue', to.venue, '--gateway', to.gateway,
      '--level', 'warn', '--for-s', '60', '--control-key', testBackendKeyFile(dir), '--registry', registry,
    ], { cwd: join(__dirname, '../../clients/python'), encoding: 'utf8', timeout: 30_000 });
    expect(py.stderr).toBe('');
    expect(JSON.parse(py.stdout)).toMatchObject({ v: 3, ok: true, op: 'logLevel', level: 'warn' });

    // and so does the backend's CLI, with a collector's config (its broker, backend key and registry)
    const collectorConfig = writeJson(join(dir, 'collector.json'), {
      broker: { url: broker().url }, topicPrefix: prefix, collector: { database: join(dir, 'collector.db'), registry, controlKeyFile: testBackendKeyFile(dir) },
    });
    const cli = await runVgw(['command', 'log-level', '--venue', to.venue, '--gateway', to.gateway, '--level', 'info', '--for', '60', '-c', collectorConfig]);
    expect(cli.stderr).toBe('');
    expect(JSON.parse(cli.stdout)).toMatchObject({ v: 3, ok: true, op: 'logLevel', level: 'info' });
    for (const [args, message] of [
      [['--level', 'loud', '--for', '60'], /--level: "loud" is not one of fatal, error, warn, info, debug, trace/],
      [['--level', 'debug', '--for', '0'], /--for: "0" must be whole seconds from 1 to 86400/],
    ] as const) {
      const bad = await runVgw(['command', 'log-level', '--venue', to.venue, '--gateway', to.gateway, ...args, '-c', collectorConfig]);
      expect([bad.status, bad.stderr]).toEqual([2, expect.stringMatching(message)]);
    }
    expect(await stopGracefully(daemon)).toBe(0);

    // restarted, the unit still knows the nonces it accepted: the command replayed is refused
    const again = spawnVgw(['run', '-c', config]);
    await waitFor('the restarted unit answering', async () => {
      await ask(`again-${++probes}`, signedRequest(to, replyTo, { op: 'status' }));
      return [...answers.keys()].some((k) => k.startsWith('again-'));
    }, 20_000);
    await ask('replayed', raise);
    const replayed = unitDoc<{ error: string }>(await waitFor('the replay answered', () => answers.get('replayed'), 10_000), identity);
    expect(replayed.error).toMatch(/^nonce: .* was accepted already$/);
    expect(again.output()).not.toContain('log level set by a signed command');
    await tool.endAsync();
    expect(await stopGracefully(again)).toBe(0);
  });
});
