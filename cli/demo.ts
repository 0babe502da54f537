import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import mqtt from 'mqtt';
import { gatewayTopics } from '../daemon/uplink/index.js';
import { fail } from './errors.js';
import { LocalBroker } from './local-broker.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

interface GatewayStatus {
  state?: string;
  counters?: {
    adverts?: { received?: number };
    encounters?: { open?: number };
    store?: { encounters_stored?: number; outboxBatches?: number; write_transactions?: number };
    uplink?: { batches_published?: number; connected?: boolean };
  };
}

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
    .description('run a private broker, the daemon on the simulated radio and the collector, and show encounters arriving live')
    .option('--speed <x>', 'simulated seconds per real second', '10')
    .option('--duration <s>', 'stop by itself after this many seconds (default: until Ctrl-C)')
    .option('--keep', 'keep the temporary folder (databases, logs) afterwards')
    .action(async (opts: { speed: string; duration?: string; keep?: boolean }) => {
      const dir = mkdtempSync(join(tmpdir(), 'vgw-demo-'));
      let broker: LocalBroker;
      try {
        broker = await LocalBroker.start(join(dir, 'broker'));
      } catch (err) {
        fail(err);
      }
      const venue = 'demo-venue';
      const gateway = 'demo-gw';
      const common = { broker: { url: broker.url }, log: { level: 'info' } };
      writeFileSync(
        join(dir, 'gateway.json'),
        JSON.stringify({
          ...common,
          gateway: { id: gateway, venue },
          radio: { simulated: { seed: 1, arrivalsPerMinute: 30, speed: Number(opts.speed) } },
          store: { path: join(dir, 'gateway.db') },
          uplink: { batchMaxAgeS: 3, statusIntervalS: 1 },
        }),
      );
      writeFileSync(join(dir, 'collector.json'), JSON.stringify({ ...common, collector: { db: join(dir, 'collector.db') } }));
      const collector = spawnVgw(['collect', '-c', join(dir, 'collector.json')], join(dir, 'collector.log'));
      const daemon = spawnVgw(['run', '-c', join(dir, 'gateway.json')], join(dir, 'gateway.log'));

      let status: GatewayStatus = {};
      const watcher = mqtt.connect(broker.url, { protocolVersion: 5, clientId: `vgw-demo-watch-${process.pid}` });
      watcher.on('connect', () => watcher.subscribe(gatewayTopics('vgw/v1', venue, gateway).status));
      watcher.on('message', (_t, payload) => {
        try {
          status = JSON.parse(payload.toString('utf8')) as GatewayStatus;
        } catch {
          // a torn status line is simply skipped
        }
      });

      const started = Date.now();
      const tty = process.stdout.isTTY === true;
      const render = () => {
        let rows: Array<{ gateway: string; id: number; first_seen: number; last_seen: number; count: number; rssi_min: number; rssi_max: number; rssi_mean: number }> = [];
        let total = 0;
        let batches = 0;
        try {
          const db = new Database(join(dir, 'collector.db'), { readonly: true, fileMustExist: true });
          total = db.prepare('SELECT count(*) FROM encounters').pluck().get() as number;
          batches = db.prepare('SELECT count(*) FROM batches').pluck().get() as number;
          rows = db.prepare('SELECT * FROM encounters ORDER BY id DESC LIMIT 8').all() as typeof rows;
          db.close();
        } catch {
          // the collector has not created its database yet
        }
        const c = status.counters ?? {};
        const line =
          `${Math.round((Date.now() - started) / 1000)}s  gateway ${status.state ?? 'starting'}` +
          `  adverts ${c.adverts?.received ?? 0}  open ${c.encounters?.open ?? 0}` +
          `  stored ${c.store?.encounters_stored ?? 0}  outbox ${c.store?.outboxBatches ?? 0}` +
          `  | collector: ${total} encounters in ${batches} batches`;
        if (!tty) {
          process.stdout.write(line + '\n');
          return;
        }
        const table = rows.map((r) =>
          `  #${String(r.id).padEnd(6)} ${new Date(r.first_seen).toISOString().slice(11, 19)}  ${String(Math.round((r.last_seen - r.first_seen) / 1000)).padStart(4)} s  ${String(r.count).padStart(5)} adverts  RSSI ${r.rssi_min}..${r.rssi_max} (mean ${r.rssi_mean})`,
        );
        process.stdout.write(
          '\x1b[2J\x1b[H' +
            `venue-gateway demo — broker ${broker.url}, speed ×${opts.speed}, folder ${dir}\n` +
            `${line}\n\nlatest encounters at the collector (simulated time):\n${table.join('\n') || '  (none yet: an encounter closes after 60 s of silence)'}\n\nCtrl-C stops everything.\n`,
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
