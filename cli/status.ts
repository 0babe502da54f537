// `vgw status`: what the running daemon says about itself, read from its local control socket
// (no broker credentials needed on the unit), plus the disk it writes to.
import { statfsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command } from 'commander';
import { loadConfig, requireGateway } from '../core/config/index.js';
import { controlSocketPath, readControlSocket } from '../daemon/health/index.js';
import { type DatabaseState, enabledBeacon, type LocalStatus, type StatusCounters } from '../core/wire/index.js';
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
const when = (ms: number | null) => (ms !== null ? `${new Date(ms).toISOString()} (${ago(ms)})` : 'never');

function databaseLine(d: DatabaseState): string {
  const e = d.lastEvent;
  const event = e ? `; LAST EVENT ${e.kind} at ${new Date(e.at).toISOString()}: ${e.detail}` : '; no events';
  return `${d.database}, life ${d.life} (${d.lives} lives), ${d.serviceS} s in service${d.error ? `; ERROR ${d.error}` : ''}${event}`;
}

function beaconLine(status: StatusCounters['beacon']): string {
  const beacon = enabledBeacon(status);
  if (!beacon) return 'disabled';
  return `${beacon.state}, EID ${beacon.eid ?? '-'}, next rotation ${beacon.nextRotationAt !== null ? new Date(beacon.nextRotationAt).toISOString() : '-'}`;
}

/** The status document as a technician reads it: one line per concern. */
export function formatStatus(status: LocalStatus, disk: DiskUsage): string {
  const { radio, clock, encounters, store, uplink, health } = status.counters;
  const { local } = status;
  const watchdog = health.watchdog;
  const lines = [
    ['gateway', `${status.gateway} at ${status.venue}, pid ${local.pid}, up since ${status.startedAt}, ${health.ready ? 'ready' : 'NOT READY'}`],
    ['software', `${status.software.version} (commit ${status.software.commit}), protocol ${status.v}; config ${status.config.version} (${status.config.source})`],
    ['radio', `${radio.state} (${local.radio})${radio.error ? `: ${radio.error}` : ''}, ${radio.reports ?? 0} reports, recovery level ${radio.recoveryLevel ?? 0}`],
    ['clock', `${clock.synchronized ? 'synchronised' : 'NOT synchronised'} (${clock.source}), ${clock.steps} steps seen`],
    ['beacon', beaconLine(status.counters.beacon)],
    ['encounters', `${encounters.open} open, ${store.encountersStored} stored since start`],
    ['backlog', `${store.outboxBatches} batches + ${store.unbatched} encounters not yet acknowledged; last ack ${when(store.lastAckAt)}`],
    ['broker', `${uplink.connected ? 'connected' : 'DISCONNECTED'} (${local.broker}), ${uplink.connects} connects, ${uplink.inflight} batches in flight`],
    ['database', databaseLine(store.database)],
    ['disk', `${mb(disk.freeBytes)} free of ${mb(disk.totalBytes)}; database ${mb(disk.databaseBytes)}`],
    ['watchdog', watchdog.enabled ? `${watchdog.pings} pings, ${watchdog.withheld} withheld${watchdog.lastWithheldReason ? ` (last: ${watchdog.lastWithheldReason})` : ''}` : 'not under a systemd watchdog'],
  ];
  return lines.map(([k, v]) => `${k.padEnd(11)}${v}`).join('\n') + '\n';
}

export function statusCommand(): Command {
  return new Command('status')
    .description('show the running daemon: radio, clock, beacon EID, open encounters, backlog, last ack, broker, disk')
    .requiredOption('-c, --config <file>', "the unit's config (it locates the daemon's control socket)")
    .option('--timeout <s>', 'seconds to wait for the daemon', '3')
    .option('--json', 'print as JSON the status document the unit publishes (docs/protocol.md, Status), plus `local` (pid, broker, database, radio transport) and `disk` (freeBytes, totalBytes, databaseBytes), which only the unit itself knows')
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
