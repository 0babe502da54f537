// What the collector asks of its database, whichever it is: SQLite (one file, the default) or
// PostgreSQL (a fleet: several collectors, one database). `collector.database` chooses.
import type { VenueEncounter } from '../core/encounters/index.js';
import type { ConfigLayer, LayerScope, Rollout } from '../core/fleet/index.js';
import type { Batch } from '../core/wire/index.js';
import type { GatewayKeyRow } from '../core/trust/index.js';
import type { LifeRow, StatusRow, VenueHour } from './fleet.js';

export type IngestResult =
  | { outcome: 'stored'; stored: number }
  /** The batch id is stored already: a re-send after a lost ack, or a replay. */
  | { outcome: 'duplicate'; stored: 0 }
  /** A new batch id with a sequence number another batch of the same signer and life holds. */
  | { outcome: 'out_of_sequence'; stored: 0; heldBy: string };

export interface ArrivedBatch {
  batch: Batch;
  /** The verified signer's raw public key; null when batches are not verified. */
  signer: Buffer | null;
}

/** Encounters of a time range, settled as the wire carries them. */
export interface EncounterFilter {
  protocol?: number;
  venue?: string | null;
}

export interface EncounterSource {
  /** Encounters overlapping [from, to), by first sighting. */
  encounters(from?: number, to?: number, only?: EncounterFilter): AsyncIterable<VenueEncounter>;
  /** Encounters whose temp ID is one of these (a confirmed case's RPIs). */
  withTempIds(tempIds: readonly Buffer[]): Promise<VenueEncounter[]>;
  close(): Promise<void> | void;
}

export const DAY_MS = 86_400_000;

/**
 * How long batch records outlive their encounters: a gateway re-sends an unacknowledged batch for
 * up to its `store.unackedMaxDays` of service, and the batch's id must dedupe it until then; so a
 * day more than the largest `store.unackedMaxDays` in the fleet (`collector.gatewayUnackedMaxDays`).
 */
export function batchGraceDays(gatewayUnackedMaxDays: number): number {
  return gatewayUnackedMaxDays + 1;
}

/** The gateways' default `store.unackedMaxDays`, and so the collector's default grace. */
export const DEFAULT_BATCH_GRACE_DAYS = batchGraceDays(30);

/** What one retention pass removed. */
export interface PurgeReport {
  /** Whole days of encounters removed (a partition each in PostgreSQL). */
  days: number;
  batchesDeleted: number;
}

/** What an operator asked of a rollout; the collector driving it carries it out at its next tick. */
export type RolloutRequest = 'pause' | 'resume' | 'abort';

export interface StoredRollout {
  rollout: Rollout;
  requested: RolloutRequest | null;
}

/**
 * The backend's governance of the fleet, kept in the collector's database so that any collector
 * (or the CLI beside one) sees the same: configuration layers and their staged rollouts.
 */
export interface GovernanceStore {
  layers(): Promise<ConfigLayer[]>;
  /**
   * In one transaction: the layer's settings replaced as its next version, running rollouts of
   * that layer superseded (aborted, their reason saying by which), and the rollout `make` returns
   * for the new version saved.
   */
  changeLayer(
    scope: LayerScope, name: string, settings: Record<string, unknown>, now: number, make: (layer: ConfigLayer, previous: Record<string, unknown> | null) => Rollout,
  ): Promise<{ layer: ConfigLayer; rollout: Rollout }>;
  /**
   * An aborted change undone: the layer's settings back to `previous` (removed when null) as its
   * next version, only while it is still at `version`; false when it changed since.
   */
  restoreLayer(scope: LayerScope, name: string, version: number, previous: Record<string, unknown> | null, now: number): Promise<boolean>;
  /** Rollouts, newest first: every one not ended, and the `ended` newest of those that did. */
  rollouts(ended?: number): Promise<StoredRollout[]>;
  /** Writes the driver's new state of a rollout; clears the request it carried out (`handled`), not one made since. */
  saveRollout(rollout: Rollout, handled: RolloutRequest | null): Promise<void>;
  /** An operator's request; false when there is no such rollout. */
  requestRollout(id: string, request: RolloutRequest): Promise<boolean>;
  /**
   * Whether `holder` drives the rollouts until `now + ttlMs`: it takes the lease when nobody holds
   * it or it lapsed, and renews its own. One collector of a fleet drives at a time.
   */
  leaseRollouts(holder: string, now: number, ttlMs: number): Promise<boolean>;
  /** Every gateway's rotated signing keys (core/trust/gateway-key.ts), by gateway and rotation. */
  gatewayKeys(): Promise<GatewayKeyRow[]>;
  /** Registers a gateway's new key; the row already held when that key was registered before (a request repeated). */
  addGatewayKey(row: GatewayKeyRow): Promise<GatewayKeyRow>;
  /** The first time a message signed with `key` was seen: its predecessor's overlap starts ending. */
  markGatewayKeyUsed(gateway: string, key: string, at: number): Promise<void>;
}

/** The columns of gateway_keys as a GatewayKeyRow (the same in SQLite and PostgreSQL). */
export const GATEWAY_KEY_COLUMNS = 'gateway, key, previous, version, accepted_at AS "acceptedAt", first_used_at AS "firstUsedAt"';

export interface CollectorStore extends GovernanceStore {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * Stores batches that arrived together, in one durable transaction: each is stored or refused
   * on its own; when the commit fails the promise rejects and none is stored (nor may be acked).
   */
  commit(items: readonly ArrivedBatch[]): Promise<Array<IngestResult | Error>>;
  /**
   * Retention: removes the encounters of every day (UTC, by first sighting) that ended
   * `retentionDays` before `now`, and batch records received before that by more than
   * `graceDays` (batchGraceDays).
   */
  purgeExpired(now: number, retentionDays: number, graceDays?: number): Promise<PurgeReport>;
  /**
   * Keeps each gateway's latest status; a row older than the one held is ignored, and `since`
   * stays the earliest moment of an unchanged state.
   */
  saveStatuses(rows: readonly StatusRow[]): Promise<void>;
  statuses(): Promise<StatusRow[]>;
  lives(): Promise<LifeRow[]>;
  /** Encounters stored per venue per hour of first sighting, for hours in [from, to). */
  venueHours(from: number, to: number): Promise<VenueHour[]>;
  /** Resolves once the database answers a query; rejects with why it does not (health checks). */
  ping(): Promise<void>;
  close(): Promise<void> | void;
}

const POSTGRES_URL = /^postgres(ql)?:\/\//;

/** `collector.database` names a PostgreSQL server when it is a postgres:// URL, else an SQLite file. */
export function isPostgresUrl(database: string): boolean {
  return POSTGRES_URL.test(database);
}

/** The database named without its password, for logs and messages. */
export function describeDatabase(database: string): string {
  if (!isPostgresUrl(database)) return database;
  try {
    const u = new URL(database);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}
