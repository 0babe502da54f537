// The collector's Prometheus metrics (prom-client), one registry per collector: what it stored,
// refused and why, how long its database takes, and each gateway's lag and missing batches.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LifeRow, StatusRow } from './fleet.js';
import { counts, type Rollout } from '../core/fleet/index.js';
import { UNIT_MESSAGE_REFUSALS, type RefusalCode } from './verify.js';

/** Why a batch was refused: what verification says, or that its topic names another gateway. */
export type RefusalReason = RefusalCode | 'wrong_topic';
const REFUSAL_REASONS: readonly RefusalReason[] = ['malformed', 'wrong_topic', 'unregistered', 'wrong_venue', 'unsigned', 'bad_signature', 'out_of_sequence'];

export class CollectorMetrics {
  readonly registry = new Registry();
  readonly batches: Counter<'outcome'>;
  readonly encounters: Counter<'outcome'>;
  readonly refusals: Counter<'reason'>;
  readonly acks: Counter;
  readonly commitSeconds: Histogram;
  readonly commitFailures: Counter;
  readonly connectionErrors: Counter;
  readonly statusMessages: Counter;
  readonly unitMessageRefusals: Counter<'reason'>;
  readonly gatewayLag: Gauge<'gateway'>;

  /** `lives` is read at each scrape for the per-gateway sequence gaps. */
  constructor(
    lives: () => Promise<LifeRow[]>, defaultMetrics = true, rollouts: () => readonly Rollout[] = () => [],
    statuses: () => Promise<readonly StatusRow[]> = async () => [],
  ) {
    const registers = [this.registry];
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'vgw_collector_' });
    this.batches = new Counter({ name: 'vgw_collector_batches_total', help: 'Batches by outcome: stored, duplicate (re-sent, acknowledged again), refused', labelNames: ['outcome'], registers });
    this.encounters = new Counter({ name: 'vgw_collector_encounters_total', help: 'Encounters by outcome: stored, duplicate (already held)', labelNames: ['outcome'], registers });
    this.refusals = new Counter({ name: 'vgw_collector_refusals_total', help: 'Batches refused, by reason (none of them is acknowledged)', labelNames: ['reason'], registers });
    for (const r of REFUSAL_REASONS) this.refusals.inc({ reason: r }, 0);
    this.acks = new Counter({ name: 'vgw_collector_acks_total', help: 'Batch ids acknowledged (each after its commit)', registers });
    this.commitSeconds = new Histogram({
      name: 'vgw_collector_db_commit_seconds', help: 'Time to commit one group of batches (one transaction)', registers,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    });
    this.commitFailures = new Counter({ name: 'vgw_collector_db_commit_failures_total', help: 'Group commits that failed (nothing acknowledged; the gateways re-send)', registers });
    this.connectionErrors = new Counter({ name: 'vgw_collector_db_connection_errors_total', help: 'Idle database connections that failed (the server restarted or went away); the pool opens new ones', registers });
    this.statusMessages = new Counter({ name: 'vgw_collector_status_messages_total', help: 'Gateway status messages kept', registers });
    this.unitMessageRefusals = new Counter({
      name: 'vgw_collector_unit_message_refusals_total', help: "Statuses and temp-ID requests refused, by reason: not signed by the registered key of the gateway their topic names", labelNames: ['reason'], registers,
    });
    for (const r of UNIT_MESSAGE_REFUSALS) this.unitMessageRefusals.inc({ reason: r }, 0);
    this.gatewayLag = new Gauge({
      name: 'vgw_collector_gateway_lag_seconds', help: "From the newest stored batch's creation at its gateway to its arrival here", labelNames: ['gateway'], registers,
    });
    new Gauge({
      name: 'vgw_collector_gateway_seq_missing', help: 'Sequence numbers of a gateway (all lives) not stored: lost or still to come', labelNames: ['gateway'], registers,
      async collect() {
        this.reset();
        let rows: LifeRow[];
        try {
          rows = await lives();
        } catch {
          return; // the database is down: the rest of the scrape (commit failures among it) still serves
        }
        const missing = new Map<string, number>();
        for (const l of rows) missing.set(l.gateway, (missing.get(l.gateway) ?? 0) + Math.max(0, l.lastSeq - l.batches));
        for (const [gateway, n] of missing) this.set({ gateway }, n);
      },
    });
    new Gauge({
      name: 'vgw_rollout_units', help: 'Units of each staged rollout by progress: pending, sent (awaiting an outcome), offline (sent, taken on return), applied, failed',
      labelNames: ['rollout', 'change', 'state'], registers,
      collect() {
        this.reset();
        for (const r of rollouts()) for (const [state, n] of Object.entries(counts(r))) this.set({ rollout: r.id, change: r.change, state }, n);
      },
    });
    new Gauge({
      name: 'vgw_gateways_software', help: 'Gateways by the software version their latest status reports, and whether they are online (a release rollout moves them)',
      labelNames: ['version', 'state'], registers,
      async collect() {
        this.reset();
        let rows: readonly StatusRow[];
        try {
          rows = await statuses();
        } catch {
          return;
        }
        const counted = new Map<string, { version: string; state: string; n: number }>();
        for (const row of rows) {
          const version = softwareOf(row.document) ?? 'unknown';
          const at = `${version}\n${row.state}`;
          const c = counted.get(at) ?? { version, state: row.state, n: 0 };
          c.n++;
          counted.set(at, c);
        }
        for (const c of counted.values()) this.set({ version: c.version, state: c.state }, c.n);
      },
    });
    new Gauge({
      name: 'vgw_rollout_running', help: 'Whether each staged rollout is running (1), or paused, aborted or done (0, with its state as a label)',
      labelNames: ['rollout', 'change', 'state'], registers,
      collect() {
        this.reset();
        for (const r of rollouts()) this.set({ rollout: r.id, change: r.change, state: r.state }, r.state === 'running' ? 1 : 0);
      },
    });
  }
}

/** The software version a status document reports, or null. */
function softwareOf(document: string): string | null {
  try {
    const v = (JSON.parse(document) as { software?: { version?: unknown } }).software?.version;
    return typeof v === 'string' ? v.slice(0, 64) : null;
  } catch {
    return null;
  }
}
