import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import mqtt from 'mqtt';
import { CollectedColumns, encounterFromCollected } from '../collector/index.js';
import type { VenueEncounter } from '../core/encounters/index.js';
import { newIdentity, writeNewBackendKey } from '../core/trust/index.js';
import { oneShotConnectOptions } from '../core/mqtt/index.js';
import { ControlSigner, enabledBeacon, GatewayStatus, gatewayTopics, openUnitMessage, parseStatus, StatusCounters, WIRE_SCHEMA_VERSION } from '../core/wire/index.js';
import { freePort, LocalBroker, VirtualController } from '../simulators/index.js';
import { fail } from './errors.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

function spawnVgw(args: string[], logFile: string): ChildProcess {
  const out = openSync(logFile, 'a');
  return spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', out, out] });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('run a private broker, a virtual controller, the daemon (noble + bleno) and the collector, and show encounters arriving live')
    .option('--radio <kind>', '"virtual": noble and bleno on the virtual controller; "simulated": the crowd without HCI', 'virtual')
    .option('--speed <x>', 'simulated seconds per real second (--radio simulated only)', '10')
    .option('--duration <s>', 'stop by itself after this many seconds (default: until Ctrl-C)')
    .option('--keep', 'keep the temporary folder (databases, logs) afterwards')
    .addHelpText('after', '\nExit codes: 0 stopped cleanly (Ctrl-C or --duration), 1 a part failed (its log is named), 2 bad arguments.\nExamples:\n  vgw demo\n  vgw demo --radio simulated --speed 30 --duration 60')
    .action(async (opts: { radio: string; speed: string; duration?: string; keep?: boolean }) => {
      const dir = mkdtempSync(join(tmpdir(), 'vgw-demo-'));
      let broker: LocalBroker;
      const virtual = opts.radio !== 'simulated';
      const socketPath = join(dir, 'controller.sock');
      // A crowd walking past at life speed; an encounter closes after 5 s of silence.
      const vc = virtual
        ? new VirtualController({ socketPath, crowd: { seed: 1, phones: 0, arrivalsPerMinute: 40, minDwellS: 8, maxDwellS: 40, anchor: Date.now() } })
        : null;
      try {
        broker = await LocalBroker.start(join(dir, 'broker'));
        await vc?.start();
      } catch (err) {
        fail(err);
      }
      const venue = 'demo-venue';
      const gateway = 'demo-gw';
      const common = { broker: { url: broker.url }, log: { level: 'info' } };
      // Provisioned as a real unit is: signed batches, verified by the collector.
      const backendKeyFile = join(dir, 'backend.key');
      const backend = new ControlSigner(writeNewBackendKey(backendKeyFile));
      const { secrets, record } = newIdentity({ gateway, venue, beacon: { exponent: 4, epochS: 0, txPowerDbm: -20 }, backendKeys: [backend.key.publicKey] });
      writeFileSync(join(dir, 'secrets.json'), JSON.stringify(secrets), { mode: 0o600 });
      writeFileSync(join(dir, 'registry.json'), JSON.stringify([record]));
      writeFileSync(
        join(dir, 'gateway.json'),
        JSON.stringify({
          ...common,
          gateway: { id: gateway, venue },
          secretsFile: join(dir, 'secrets.json'),
          ...(virtual
            ? {
                radio: { kind: 'hci', scanner: { transport: `unix:${socketPath}`, deviceId: 0 } },
                beacon: { enabled: true, transport: `unix:${socketPath}`, deviceId: 1, exponent: 4 },
                clock: { syncCheck: 'assume-synced' },
                encounters: { silenceS: 5 },
              }
            : { radio: { simulated: { seed: 1, arrivalsPerMinute: 30, speed: Number(opts.speed) } } }),
          store: { path: join(dir, 'gateway.db'), checkpointS: 2 },
          uplink: { batchMaxAgeS: 3, statusIntervalS: 1 },
        }),
      );
      const httpPort = await freePort();
      writeFileSync(
        join(dir, 'collector.json'),
        JSON.stringify({ ...common, collector: { database: join(dir, 'collector.db'), registry: join(dir, 'registry.json'), controlKeyFile: backendKeyFile, http: { port: httpPort } } }),
      );
      const collector = spawnVgw(['collect', '-c', join(dir, 'collector.json')], join(dir, 'collector.log'));
      const daemon = spawnVgw(['run', '-c', join(dir, 'gateway.json')], join(dir, 'gateway.log'));

      let status: GatewayStatus | null = null;
      const watcher = mqtt.connect(broker.url, oneShotConnectOptions({ url: broker.url, clientId: `vgw-demo-watch-${process.pid}`, keepaliveS: 30, connectTimeoutS: 5, reconnectS: 1 }));
      watcher.on('connect', () => watcher.subscribe(gatewayTopics(`vgw/v${WIRE_SCHEMA_VERSION}`, venue, gateway).status));
      watcher.on('message', (_t, payload) => {
        // signed by the unit's key, as every status is; a torn or foreign one is simply skipped
        const opened = openUnitMessage(payload, Buffer.from(record.signingKey, 'hex'));
        if (!opened.ok) return;
        try {
          status = parseStatus(opened.doc, 'the status topic');
        } catch {
          // not a status document: skipped too
        }
      });

      const started = Date.now();
      const tty = process.stdout.isTTY === true;
      const render = () => {
        let rows: VenueEncounter[] = [];
        let total = 0;
        let batches = 0;
        try {
          const db = new Database(join(dir, 'collector.db'), { readonly: true, fileMustExist: true });
          total = db.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
          batches = db.prepare('SELECT count(*) FROM batches').pluck().get() as number;
          rows = (db.prepare('SELECT * FROM encounters ORDER BY id DESC LIMIT 8').all() as CollectedColumns[]).map(encounterFromCollected);
          db.close();
        } catch {
          // the collector has not created its database yet
        }
        const c: Partial<StatusCounters> = status?.state === 'online' ? status.counters : {};
        const b = enabledBeacon(c.beacon);
        const beaconLine = b?.eid ? `  beacon EID ${b.eid} (next ${b.nextRotationAt ? new Date(b.nextRotationAt).toISOString().slice(11, 19) : '-'})` : '';
        const line =
          `${Math.round((Date.now() - started) / 1000)}s  gateway ${status?.state ?? 'starting'}${c.radio?.state ? ` (radio ${c.radio.state})` : ''}` +
          `  adverts ${c.adverts?.received ?? 0}  open ${c.encounters?.open ?? 0}` +
          `  stored ${c.store?.encountersStored ?? 0}  outbox ${c.store?.outboxBatches ?? 0}` +
          `  | collector: ${total} encounters in ${batches} batches`;
        if (!tty) {
          process.stdout.write(line + '\n');
          return;
        }
        const table = rows.map((r) =>
          `  #${String(r.id).padEnd(6)} ${new Date(r.firstSeen).toISOString().slice(11, 19)}  ${String(Math.round((r.lastSeen - r.firstSeen) / 1000)).padStart(4)} s  ${String(r.count).padStart(5)} adverts  RSSI ${r.rssiMin}..${r.rssiMax} (mean ${r.rssiMean})`,
        );
        process.stdout.write(
          '\x1b[2J\x1b[H' +
            `venue-gateway demo — broker ${broker.url}, ${virtual ? `noble + bleno on a virtual controller (${socketPath})` : `simulated radio ×${opts.speed}`}, folder ${dir}\n` +
            `${line}\n${beaconLine}\nfleet page and metrics: http://127.0.0.1:${httpPort}/ (/metrics, /healthz)\n\nlatest encounters at the collector:\n${table.join('\n') || `  (none yet: an encounter closes after ${virtual ? 5 : 60} s of silence)`}\n\nCtrl-C stops everything.\n`,
        );
      };
      const timer = setInterval(render, 1000);

      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        clearInterval(timer);
        watcher.end(true);
        await Promise.all([stopChild(daemon), stopChild(collector)]);
        await vc?.stop();
        await broker.stop();
        render();
        if (!opts.keep) rmSync(dir, { recursive: true, force: true });
        process.stdout.write(`stopped cleanly${opts.keep ? `; files kept in ${dir}` : ''}\n`);
        process.exit(0);
      };
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
      for (const child of [daemon, collector]) {
        child.once('exit', (code) => {
          if (!stopping) {
            process.stderr.write(`vgw demo: a child exited early (code ${code}); logs are in ${dir}\n`);
            opts.keep = true;
            void stop();
          }
        });
      }
      if (opts.duration) setTimeout(() => void stop(), Number(opts.duration) * 1000);
    });
}
