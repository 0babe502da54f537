// Signed commands to a running unit (issue 26, item 4): the log level raised from the backend
// for a while, answered with a reply the unit signs, and back to the configured level by itself;
// a bad command is answered with the field, an unsigned one not at all; doctor run on the unit as
// a technician would; a restart that stops cleanly, loses nothing and cannot be replayed.
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gatewayTopics } from '../../core/wire/index.js';
import { useLocalBroker } from '../harness/broker.js';
import { gatewayKeyOf, provisionTestGateway, signedRequest, testBackendKeyFile, unitDoc } from '../harness/identity.js';
import { runProcess, runVgw, spawnVgw, stopGracefully, waitFor, writeJson } from '../harness/processes.js';
import { unitProblems } from '../harness/protocol-schema.js';
import { tempDir } from '../harness/tmp.js';
import { simulatedUnitConfig } from '../harness/unit-config.js';

const dir = tempDir('vgw-commands-');
const broker = useLocalBroker(dir);
const prefix = 'commands/v3';

describe('signed commands', () => {
  it('logLevel: debug for a few seconds, then the configured level again; bad ones answered with the field, unsigned ones not at all', async () => {
    const identity = provisionTestGateway(dir, 'gw-cmd', 'venue-cmd');
    const to = { venue: 'venue-cmd', gateway: 'gw-cmd' };
    const topics = gatewayTopics(prefix, to.venue, to.gateway);
    const { config } = simulatedUnitConfig({ dir, identity, brokerUrl: broker().url, prefix, seed: 3, extra: { uplink: { statusIntervalS: 1 }, log: { level: 'info' } } });
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
    const py = await runProcess('/usr/bin/python3', [
      '-m', 'vgw_client', 'log-level', '--url', broker().url, '--prefix', prefix, '--venue', to.venue, '--gateway', to.gateway,
      '--level', 'warn', '--for-s', '60', '--control-key', testBackendKeyFile(dir), '--registry', registry,
    ], { cwd: join(__dirname, '../../clients/python'), timeoutMs: 30_000 });
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

  it('doctor answers with the checks `vgw doctor` prints on the unit; restart answers, stops cleanly with 75, loses nothing, and its replay is refused', async () => {
    const identity = provisionTestGateway(dir, 'gw-rst', 'venue-rst');
    const to = { venue: 'venue-rst', gateway: 'gw-rst' };
    const topics = gatewayTopics(prefix, to.venue, to.gateway);
    const { config, db } = simulatedUnitConfig({ dir, identity, brokerUrl: broker().url, prefix, seed: 5, extra: { uplink: { statusIntervalS: 1 } } });
    const registry = writeJson(join(dir, 'rst-registry.json'), [identity.record]);
    const collectorConfig = writeJson(join(dir, 'rst-collector.json'), {
      broker: { url: broker().url }, topicPrefix: prefix, collector: { database: join(dir, 'rst-collector.db'), registry, controlKeyFile: testBackendKeyFile(dir) },
    });
    const daemon = spawnVgw(['run', '-c', config]);
    const tool = await mqtt.connectAsync(broker().url, { protocolVersion: 5, clientId: 'backend-rst' });
    const replyTo = `${prefix}/replies/backend-rst`;
    const answers = new Map<string, Buffer>();
    tool.on('message', (_t, payload, packet) => answers.set(String(packet.properties?.correlationData), payload));
    await tool.subscribeAsync(replyTo, { qos: 1 });
    const ask = (corr: string, payload: Buffer) => tool.publishAsync(topics.request, payload, { qos: 1, properties: { correlationData: Buffer.from(corr) } });
    type Status = { counters: { store: { encountersStored: number } } };
    let probes = 0;
    const status = async (): Promise<Status> => {
      const corr = `status-${++probes}`;
      await ask(corr, signedRequest(to, replyTo, { op: 'status' }));
      return unitDoc<Status>(await waitFor('a status', () => answers.get(corr), 10_000), identity);
    };
    await waitFor('encounters stored', async () => (await status()).counters.store.encountersStored >= 5, 60_000);

    // doctor: the same checks, with the same verdicts, as the technician's command beside the unit
    await ask('doctor', signedRequest(to, replyTo, { op: 'doctor' }));
    const doctorReply = await waitFor('the doctor answer', () => answers.get('doctor'), 60_000);
    expect(unitProblems('command-reply', doctorReply, gatewayKeyOf(identity))).toEqual([]);
    const remote = unitDoc<{ ok: boolean; op: string; healthy: boolean; checks: Array<{ check: string; ok: boolean }> }>(doctorReply, identity);
    const local = JSON.parse((await runVgw(['doctor', '-c', config, '--json'])).stdout) as Array<{ check: string; ok: boolean }>;
    expect(remote).toMatchObject({ ok: true, op: 'doctor', healthy: local.every((c) => c.ok) });
    expect(remote.checks.map((c) => [c.check, c.ok])).toEqual(local.map((c) => [c.check, c.ok]));
    expect(remote.checks.map((c) => c.check)).toEqual(expect.arrayContaining(['config', 'secrets', 'daemon', 'broker', 'disk']));
    const cliDoctor = await runVgw(['command', 'doctor', '--venue', to.venue, '--gateway', to.gateway, '-c', collectorConfig, '--timeout', '60']);
    expect(cliDoctor.stderr).toBe('');
    expect(cliDoctor.status).toBe(remote.healthy ? 0 : 1);
    expect(JSON.parse(cliDoctor.stdout)).toMatchObject({ op: 'doctor', healthy: remote.healthy });

    // restart: the answer first, then a clean stop (the final commit) and exit 75 for the service
    const before = (await status()).counters.store.encountersStored;
    const restart = signedRequest(to, replyTo, { op: 'restart' });
    await ask('restart', restart);
    const restartReply = await waitFor('the restart answered', () => answers.get('restart'), 10_000);
    expect(unitProblems('command-reply', restartReply, gatewayKeyOf(identity))).toEqual([]);
    expect(unitDoc(restartReply, identity)).toMatchObject({ v: 3, ok: true, op: 'restart' });
    expect(await daemon.exited()).toBe(75);
    expect(daemon.output()).toContain('restart command: stopping cleanly to restart');
    expect(daemon.output()).toContain('daemon stopped'); // after the store's final commit
    const stored = new Database(db, { readonly: true });
    expect(stored.prepare('SELECT count(*) FROM encounters').pluck().get() as number).toBeGreaterThanOrEqual(before);
    stored.close();

    // what systemd does on 75: start it again; the replayed command is refused, the unit stays up
    const again = spawnVgw(['run', '-c', config]);
    await waitFor('the restarted unit answering', async () => (await status()).counters.store.encountersStored >= before, 30_000);
    await ask('replayed', restart);
    const replayed = unitDoc<{ error: string }>(await waitFor('the replay answered', () => answers.get('replayed'), 10_000), identity);
    expect(replayed.error).toMatch(/^nonce: .* was accepted already$/);
    await status();
    expect(again.proc.exitCode).toBeNull();

    // the Python client's restart: verified with the unit's registered key
    const py = await runProcess('/usr/bin/python3', [
      '-m', 'vgw_client', 'restart', '--url', broker().url, '--prefix', prefix, '--venue', to.venue, '--gateway', to.gateway,
      '--control-key', testBackendKeyFile(dir), '--registry', registry,
    ], { cwd: join(__dirname, '../../clients/python'), timeoutMs: 30_000 });
    expect(py.stderr).toBe('');
    expect(JSON.parse(py.stdout)).toMatchObject({ v: 3, ok: true, op: 'restart' });
    expect(await again.exited()).toBe(75);
    await tool.endAsync();
  });
});
