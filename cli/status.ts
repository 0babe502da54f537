// `vgw status`: what the running daemon says about itself, read from its local control socket
// (no broker credentials needed on the unit), plus the disk it writes to.
import { statfsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command } from 'commander';
import { loadConfig, requireGateway } from '../core/config/index.js';
import { controlSocketPath, readControlSocket } from '../daemon/health/index.js';
import { EXIT, fail } from './errors.js';

export interface DiskUsage {
  freeBytes: number;
  totalBytes: number;
  databaseBytes: number;
}

export function diskUsage(storePath: string): DiskUsage {
  const fs = statfsSync(dirname(resolve(storePath)));
  let databaseBytes = 0;
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      databaseBytes += statSync(storePath + suffix).size;
    } catch {
      // not there (yet)
    }
  }
  return { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize, databaseBytes };
}

const mb = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${(n / 1e6).toFixed(1)} MB`);
const ago = (ms: number) => {
  const s = Math.round((Date.now() - ms) / 1000);
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};
const when = (ms: unknown) => (typeof ms === 'number' ? `${new Date(ms).toISOString()} (${ago(ms)})` : 'never');

type Doc = Record<string, Record<string, unknown>>;

function databaseLine(d: Record<string, unknown> | undefined): string {
  if (!d) return '-';
  const e = d.lastEvent as { at: number; kind: string; detail: string } | null;
  const event = e ? `; LAST EVENT ${e.kind} at ${new Date(e.at).toISOString()}: ${e.detail}` : '; no events';
  return `${String(d.database)}, life ${String(d.life)} (${String(d.lives)} lives), ${String(d.serviceS)} s in service${d.error ? `; ERROR ${String(d.error)}` : ''}${event}`;
}

/** The status document as a technician reads it: one line per concern. */
export function formatStatus(status: Record<string, unknown>, disk: DiskUsage): string {
  const c = (status.counters ?? {}) as Doc;
  const local = (status.local ?? {}) as Record<string, unknown>;
  const radio = c.radio ?? {};
  const clock = c.clock ?? {};
  const beacon = c.beacon ?? {};
  const enc = c.encounters ?? {};
  const store = c.store ?? {};
  const uplink = c.uplink ?? {};
  const health = c.health ?? {};
  const watchdog = (health.watchdog ?? {}) as Record<string, unknown>;
  const lines = [
    ['gateway', `${String(status.gateway)} at ${String(status.venue)}, pid ${String(local.pid)}, up since ${String(status.startedAt)}, ${health.ready ? 'ready' : 'NOT READY'}`],
    ['radio', `${String(radio.state)} (${String(local.radio)})${radio.error ? `: ${String(radio.error)}` : ''}, ${String(radio.reports ?? 0)} reports, recovery level ${String(radio.recovery_level ?? 0)}`],
    ['clock', `${clock.synchronized ? 'synchronised' : 'NOT synchronised'} (${String(clock.source)}), ${String(clock.steps ?? 0)} steps seen`],
    ['beacon', beacon.state === 'disabled' ? 'disabled' : `${String(beacon.state)}, EID ${String(beacon.eid ?? '-')}, next rotation ${typeof beacon.nextRotationAt === 'number' ? new Date(beacon.nextRotationAt).toISOString() : '-'}`],
    ['encounters', `${String(enc.open ?? 0)} open, ${String(store.encounters_stored ?? 0)} stored since start`],
    ['backlog', `${String(store.outboxBatches ?? 0)} batches + ${String(store.unbatched ?? 0)} encounters not yet acknowledged; last ack ${when(store.lastAckAt)}`],
    ['broker', `${uplink.connected ? 'connected' : 'DISCONNECTED'} (${String(local.broker)}), ${String(uplink.connects ?? 0)} connects, ${String(uplink.inflight ?? 0)} batches in flight`],
    ['database', databaseLine(store.database as Record<string, unknown> | undefined)],
    ['disk', `${mb(disk.freeBytes)} free of ${mb(disk.totalBytes)}; database ${mb(disk.databaseBytes)}`],
    ['watchdog', watchdog.enabled ? `${String(watchdog.pings)} pings, ${String(watchdog.withheld)} withheld${watchdog.last_withheld_reason ? ` (last: ${String(watchdog.last_withheld_reason)})` : ''}` : 'not under a systemd watchdog'],
  ];
  return lines.map(([k, v]) => `${k.padEnd(11)}${v}`).join('\n') + '\n';
}

export function statusCommand(): Command {
  return new Command('status')
    .description('show the running daemon: radio, clock, beacon EID, open encounters, backlog, last ack, broker, disk')
    .requiredOption('-c, --config <file>', "the unit's config (it locates the daemon's control socket)")
    .option('--timeout <s>', 'seconds to wait for the daemon', '3')
    .option('--json', 'print the whole status document as JSON')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 2 bad arguments or config, 3 the daemon did not answer (not running?).\nExamples:\n  sudo vgw status -c /etc/venue-gateway/config.json\n  sudo vgw status -c /etc/venue-gateway/config.json --json | jq .counters.store',
    )
    .action(async (opts: { config: string; timeout: string; json?: boolean }) => {
      try {
        const config = loadConfig(opts.config);
        requireGateway(config);
        const socket = controlSocketPath(config);
        const status = await readControlSocket(socket, Number(opts.timeout) * 1000 || 3000);
        if (!status) {
          process.stderr.write(`vgw: no daemon answers on ${socket}: is it running? (systemctl status venue-gateway; journalctl -u venue-gateway)\n`);
          process.exit(EXIT.timeout);
        }
        const disk = diskUsage(config.store.path);
        if (opts.json) process.stdout.write(JSON.stringify({ ...status, disk }) + '\n');
        else process.stdout.write(formatStatus(status, disk));
      } catch (err) {
        fail(err);
      }
    });
}
