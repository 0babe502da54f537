// The fleet section of `make bench`: `vgw fleet-sim` as an operator would run it — 1,000 gateways
// (own keys, client ids and sessions; the real uplink, codec and signing) at the venue mix for 10
// minutes, two `vgw collect` processes in one shared group on one PostgreSQL, and the broker
// stopped for 10 s at minute 7 while every gateway is connected. Everything runs on this machine.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetReport } from '../simulators/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const gateways = Number(process.argv[2] ?? 1000);
const minutes = Number(process.argv[3] ?? 10);
const restartAt = Math.round(minutes * 60 * 0.7);
const run = spawnSync(
  process.execPath,
  [join(here, '..', 'cli', 'main.js'), 'fleet-sim', '--gateways', String(gateways), '--minutes', String(minutes), '--collectors', '2', '--postgres',
    '--restart-broker-at', String(restartAt), '--broker-down-s', '10', '--json'],
  { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
);
if (run.status === null || run.stdout.trim() === '') throw new Error(`fleet-sim failed (${run.status}): ${run.stderr}`);
const r = JSON.parse(run.stdout) as FleetReport & { drained: boolean };
const report: Record<string, number> = {
  // sustained: every encounter of the run at the backend, none twice, the fleet drained
  fleet_gateways: r.drained && r.atBackend!.lost === 0 && r.atBackend!.duplicates === 0 && r.atBackend!.foreign === 0 ? r.gateways : 0,
  fleet_minutes: minutes,
  fleet_encounters: r.encountersMade,
  fleet_lost: r.atBackend!.lost,
  fleet_duplicates: r.atBackend!.duplicates,
  fleet_batches_published: r.batchesPublished,
  fleet_batches_resent: r.batchesResent,
  fleet_status_bytes: r.statusBytes,
  fleet_latency_p50_s: +(r.latencyMs!.p50 / 1000).toFixed(1),
  fleet_latency_p99_s: +(r.latencyMs!.p99 / 1000).toFixed(1),
  fleet_reconnect_backlog_batches: r.reconnect!.backlogBatches,
  fleet_reconnect_all_connected_s: r.reconnect!.allConnectedS ?? -1,
  fleet_reconnect_drain_s: r.reconnect!.drainS ?? -1,
};
process.stdout.write(JSON.stringify(report) + '\n');
