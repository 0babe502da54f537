// The backend side, as a reference consumer: validates batches, stores them through the
// collector's database, and acknowledges only once the commit is durable.
// Over 400 lines on purpose: it is the backend's one owner of its MQTT connection, so all it
// hears (batches, statuses, temp-ID requests) is dispatched here; checking who sent what is in
// verify.ts, storing in the store files, answering temp-ID requests in tempids.ts.
import type { MqttClient } from 'mqtt';
import { type Logger, WarningThrottle } from '../core/log/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../core/time/index.js';
import {
  Batch, certificateRequestFilter, collectorBatchFilter, configFilter, COSE_CONTENT_TYPE, parseCertificateRequestTopic, type ControlSigner, decodeBatch, gatewayTopics, parseBatchTopic, parseConfigTopic, parseStatusTopic,
  parseTempIdsRequestTopic, parseTrustTopic, statusFilter, tempIdsRequestFilter, trustFilter, WireFormatError,
  parseSigningKeyRequestTopic, parseSigningKeyTopic, signingKeyFilter, signingKeyRequestFilter,
} from '../core/wire/index.js';
import { answerSigningKeyRequest } from './gateway-keys.js';
import { RolloutDriver } from './rollouts.js';
import { answerCertificateRequest, type CertificateAuthority } from './certificates.js';
import type { Rollout } from '../core/fleet/index.js';
import { answerTempIdRequest } from './tempids.js';
import { TEMPID_KEY_BYTES } from '../core/bluetrace/index.js';
import { BrokerOptions, connectClient } from '../core/mqtt/index.js';
import type { CollectorCounters } from './counters.js';
import { openCollectorStore } from './open-store.js';
import { type ArrivedBatch, type CollectorStore, describeDatabase, type IngestResult } from './store.js';
import { GatewayRegistry, openGatewayMessage, type Verification, verifyBatch } from './verify.js';
import { MAX_STATUS_BYTES, type StatusRow, statusRow } from './fleet.js';
import { CollectorMetrics, type RefusalReason } from './metrics.js';

export interface CollectorOptions {
  broker: BrokerOptions;
  prefix: string;
  /** An SQLite file, or a postgres:// URL (`collector.database`). */
  database: string;
  shareGroup?: string;
  /** Verifies every batch; null stores unsigned batches unchecked (development only). */
  registry: GatewayRegistry | null;
  /** The backend key that signs what the collector tells a gateway (acks, temp IDs): gateways act on nothing else. */
  control: ControlSigner;
  /** The BlueTrace key (32 bytes): with it, the collector issues venues' temp IDs. */
  bluetraceKey?: Buffer;
  /** The fleet CA: with it, the collector signs units' certificate requests (renewal before expiry). */
  certificateAuthority?: CertificateAuthority;
  /** Encounters older than this many days are removed (whole days); 0 keeps everything. */
  retentionDays?: number;
  /** Batch records are kept this much longer than encounters (batchGraceDays of the fleet's store.unackedMaxDays). */
  batchGraceDays?: number;
  /** How often retention runs. */
  retentionIntervalMs?: number;
  /** Also export the process's own metrics (CPU, memory, event loop): `vgw collect` does. */
  processMetrics?: boolean;
  /** Gateway statuses are written to the database at most this often, the latest of each. */
  statusFlushMs?: number;
  /** How often the staged rollouts are stepped (by the collector holding their lease). */
  rolloutTickMs?: number;
  /** Time and timers (fake ones in tests). */
  timers?: Timers;
}

/** What the health endpoint reports: healthy when the broker is connected and the database answers. */
export interface CollectorHealth {
  healthy: boolean;
  broker: { connected: boolean };
  database: { kind: 'sqlite' | 'postgres' | null; ok: boolean; error: string | null };
  /** The last group commit: a failure here means batches are not being stored (nor acknowledged). */
  lastCommit: { ok: boolean; at: string; error: string | null } | null;
  counters: CollectorCounters;
}

/** /healthz answers within this, database or not: a load balancer's probe must not hang. */
const HEALTH_DEADLINE_MS = 1500;

function withDeadline<T>(timers: Timers, work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: TimerHandle | null = null;
  const deadline = new Promise<never>((_, reject) => {
    timer = timers.setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([work, deadline]).finally(() => timers.clearTimeout(timer));
}

/** Batches per transaction at most: a backlog drained after an outage commits in steps. */
const MAX_GROUP_BATCHES = 1000;

/** How often a collector reads the gateways' rotated keys another collector may have registered. */
const GATEWAY_KEYS_READ_MS = 10_000;

export class Collector {
  readonly counters: CollectorCounters = {
    batchesStored: 0,
    batchesDuplicate: 0,
    batchesRejected: 0,
    batchesUnverified: 0,
    batchesOutOfSequence: 0,
    encountersStored: 0,
    encountersDuplicate: 0,
    acksSent: 0,
    tempIdBatchesIssued: 0,
    tempIdRequestsRefused: 0,
    certificatesIssued: 0,
    certificateRequestsRefused: 0,
    signingKeysRegistered: 0,
    signingKeyRequestsRefused: 0,
    unitMessagesRefused: 0,
    commitFailures: 0,
    retentionDaysPurged: 0,
  };
  private opened: CollectorStore | null = null;
  private client: MqttClient | null = null;
  private rollouts: RolloutDriver | null = null;
  /** Verified batches waiting for the next group commit. */
  private arrived: ArrivedBatch[] = [];
  /** The commit loop while it runs: one transaction at a time, the next group gathers meanwhile. */
  private committing: Promise<void> | null = null;
  private retentionTimer: TimerHandle | null = null;
  /** The latest status of each gateway not yet written, and the writer's timer. */
  private statuses = new Map<string, StatusRow>();
  private statusTimer: TimerHandle | null = null;
  private keysTimer: TimerHandle | null = null;
  private savingStatuses: Promise<void> | null = null;
  private lastCommit: { ok: boolean; at: number; error: string | null } | null = null;
  readonly metrics: CollectorMetrics;
  /** Lines about what others sent (junk batches, bad statuses): one per kind a minute, with a count. */
  private readonly warnings: WarningThrottle;

  private readonly timers: Timers;

  constructor(private readonly options: CollectorOptions, private readonly log: Logger) {
    this.timers = options.timers ?? systemTimers;
    this.warnings = new WarningThrottle(log, 60_000, () => this.timers.now());
    this.metrics = new CollectorMetrics(
      async () => (this.opened ? this.opened.lives() : []), options.processMetrics ?? false, () => this.rolloutView.rollouts,
      async () => (this.opened ? this.opened.statuses() : []),
    );
    // Checked once here: a wrong key would otherwise fail every request in the message handler.
    if (options.bluetraceKey && options.bluetraceKey.length !== TEMPID_KEY_BYTES) throw new Error(`bluetraceKey: expected ${TEMPID_KEY_BYTES} bytes (AES-256-GCM)`);
  }

  /** Whether `start()` has opened the database (until `stop()` closes it). */
  get started(): boolean {
    return this.opened !== null;
  }

  /** The database, once `start()` has opened it. */
  get store(): CollectorStore {
    if (!this.opened) throw new Error('the collector is not started: its database opens in start()');
    return this.opened;
  }

  async start(): Promise<void> {
    this.opened = await openCollectorStore(this.options.database, {
      onConnectionError: (err) => {
        this.metrics.connectionErrors.inc();
        this.warnings.warn('db_connection_error', { err: err.message }, 'a database connection failed; the pool opens another');
      },
    });
    this.log.info({ database: describeDatabase(this.options.database), kind: this.opened.kind }, 'collector database open');
    if (this.options.retentionDays) {
      void this.purge();
      this.retentionTimer = this.timers.setInterval(() => void this.purge(), this.options.retentionIntervalMs ?? 3_600_000);
    }
    this.statusTimer = this.timers.setInterval(() => void this.saveStatuses(), this.options.statusFlushMs ?? 2000);
    if (this.options.registry) {
      // Rotated gateway keys another collector registered are taken up within this.
      await this.readGatewayKeys();
      this.keysTimer = this.timers.setInterval(() => void this.readGatewayKeys(), GATEWAY_KEYS_READ_MS);
    }
    const client = connectClient(this.options.broker);
    this.client = client;
    const rollouts = new RolloutDriver({
      store: this.opened, registry: this.options.registry, control: this.options.control, prefix: this.options.prefix, holder: this.options.broker.clientId ?? 'collector',
      publish: async (topic, payload, retain) => void (await client.publishAsync(topic, payload, { qos: 1, retain, properties: { contentType: COSE_CONTENT_TYPE } })),
      tickMs: this.options.rolloutTickMs, timers: this.timers, log: this.log,
    });
    this.rollouts = rollouts;
    const filter = collectorBatchFilter(this.options.prefix, this.options.shareGroup);
    client.on('message', (topic, payload) => {
      const configured = parseConfigTopic(this.options.prefix, topic);
      if (configured) return rollouts.onRetained('config', configured.gateway, payload);
      const announced = parseTrustTopic(this.options.prefix, topic);
      if (announced) return rollouts.onRetained('trust', announced.gateway, payload);
      if (topic === rollouts.replyTopic) return rollouts.onReply(payload);
      const keyed = parseSigningKeyTopic(this.options.prefix, topic);
      if (keyed) return rollouts.onRetained('signingKey', keyed.gateway, payload);
      const rekeying = parseSigningKeyRequestTopic(this.options.prefix, topic);
      if (rekeying) return void this.onSigningKeyRequest(rekeying.venue, rekeying.gateway, payload);
      const renewing = parseCertificateRequestTopic(this.options.prefix, topic);
      if (renewing) return void this.onCertificateRequest(renewing.venue, renewing.gateway, payload);
      const asking = parseTempIdsRequestTopic(this.options.prefix, topic);
      if (asking) return this.onTempIdRequest(asking.venue, asking.gateway, payload);
      const status = parseStatusTopic(this.options.prefix, topic);
      if (status) return this.onStatus(status.venue, status.gateway, payload);
      this.onBatch(topic, payload);
    });
    client.on('error', (err) => this.warnings.warn('broker_error', { err: err.message }, 'broker error'));
    return new Promise((resolve) => {
      client.on('connect', () => {
        // Statuses are not shared: every collector keeps the whole fleet's (retained, so each gets them all at subscribe).
        // The units' retained configurations too: a rollout sends each unit a version above the one it holds.
        const filters = [
          filter, statusFilter(this.options.prefix), configFilter(this.options.prefix), trustFilter(this.options.prefix), signingKeyFilter(this.options.prefix), rollouts.replyTopic,
          ...(this.options.registry ? [signingKeyRequestFilter(this.options.prefix, this.options.shareGroup)] : []),
          ...(this.options.bluetraceKey ? [tempIdsRequestFilter(this.options.prefix)] : []),
          ...(this.options.certificateAuthority ? [certificateRequestFilter(this.options.prefix)] : []),
        ];
        client.subscribe(filters, { qos: 1 }, (err) => {
          // Said once the broker has the subscription: from then on its session queues batches
          // for this collector while it is away (scripts and tests wait for this line).
          if (err) this.log.error({ err: err.message }, 'subscribe failed');
          else this.log.info({ filter }, 'collector connected');
          if (!this.rollouts?.started) this.rollouts?.start();
          resolve();
        });
      });
    });
  }

  /**
   * What a gateway signed on its own topic (a status, a temp-ID request), or null: counted and
   * logged, throttled, when its registered key did not sign it.
   */
  private openGatewayMessage(what: 'status' | 'tempIdRequest' | 'certificateRequest' | 'signingKeyRequest', venue: string, gateway: string, payload: Buffer): { json: Buffer; signer: Buffer | null } | null {
    const registry = this.options.registry;
    try {
      registry?.reloadIfChanged();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'registry not reloaded; keeping the records already loaded');
    }
    const opened = openGatewayMessage(registry, venue, gateway, payload);
    if (opened.ok) {
      if (opened.signer) this.noteKeyUse(gateway, opened.signer);
      return opened;
    }
    this.counters.unitMessagesRefused++;
    this.metrics.unitMessageRefusals.inc({ reason: opened.code });
    const named = { status: 'status', tempIdRequest: 'temp ID request', certificateRequest: 'certificate request', signingKeyRequest: 'signing key request' }[what];
    this.warnings.warn(`${what}_${opened.code}`, { venue, gateway, reason: opened.reason }, `${named} refused: not signed by the gateway's registered key`);
    return null;
  }

  private onTempIdRequest(venue: string, gateway: string, payload: Buffer): void {
    const opened = this.openGatewayMessage('tempIdRequest', venue, gateway, payload);
    if (!opened) return;
    const answer = answerTempIdRequest({ key: this.options.bluetraceKey!, registry: this.options.registry }, venue, gateway, opened.json, Math.floor(this.timers.now() / 1000));
    if (!answer) return;
    if ('error' in answer) {
      this.counters.tempIdRequestsRefused++;
      this.warnings.warn('tempids_refused', { venue, gateway, reason: answer.error }, 'temp ID request refused');
    } else {
      this.counters.tempIdBatchesIssued++;
      this.log.info({ venue, gateway, count: answer.tempIds.length }, 'temp IDs issued');
    }
    const signed = this.options.control.sign({ ...answer, kind: 'tempIds', venue, gateway });
    this.client?.publish(gatewayTopics(this.options.prefix, venue, gateway).tempIds, signed, { qos: 1, properties: { contentType: COSE_CONTENT_TYPE } });
  }

  /** A unit renewing its TLS certificate: signed by its registered key (a registry is required), answered signed. */
  private async onCertificateRequest(venue: string, gateway: string, payload: Buffer): Promise<void> {
    const ca = this.options.certificateAuthority;
    if (!ca || !this.options.registry) return;
    const opened = this.openGatewayMessage('certificateRequest', venue, gateway, payload);
    if (!opened) return;
    let answer;
    try {
      answer = await answerCertificateRequest(ca, this.options.registry, venue, gateway, opened.json);
    } catch (err) {
      this.log.error({ venue, gateway, err: (err as Error).message }, 'certificate request not answered');
      return;
    }
    if (!answer) return;
    if ('error' in answer) {
      this.counters.certificateRequestsRefused++;
      this.warnings.warn('certificate_refused', { venue, gateway, reason: answer.error }, 'certificate request refused');
    } else {
      this.counters.certificatesIssued++;
      this.log.info({ venue, gateway }, 'certificate issued');
    }
    const signed = this.options.control.sign({ ...answer, kind: 'certificate', venue, gateway });
    this.client?.publish(gatewayTopics(this.options.prefix, venue, gateway).certificate, signed, { qos: 1, properties: { contentType: COSE_CONTENT_TYPE } });
  }

  /** The database's rotated gateway keys, into the registry. */
  private async readGatewayKeys(): Promise<void> {
    try {
      this.options.registry?.setRotations(await this.store.gatewayKeys());
    } catch (err) {
      this.warnings.warn('gateway_keys_unread', { err: (err as Error).message }, 'rotated gateway keys not read; keeping those already known');
    }
  }

  /** A rotated key seen in use for the first time: from then on, the key before it has its overlap (core/trust/gateway-key.ts). */
  private noteKeyUse(gateway: string, signer: Buffer): void {
    const now = this.timers.now();
    if (!this.options.registry?.firstUse(gateway, signer, now)) return;
    this.log.info({ gateway }, 'gateway signs with its rotated key');
    this.store.markGatewayKeyUsed(gateway, signer.toString('hex'), now).catch((err: Error) => this.log.warn({ gateway, err: err.message }, 'first use of a rotated key not recorded; the old key stays accepted longer'));
  }

  /** A unit asking to register its new signing key: signed with its key in use, answered signed and retained. */
  private async onSigningKeyRequest(venue: string, gateway: string, payload: Buffer): Promise<void> {
    const registry = this.options.registry;
    if (!registry || !this.opened) return;
    const opened = this.openGatewayMessage('signingKeyRequest', venue, gateway, payload);
    if (!opened?.signer) return;
    let result;
    try {
      result = await answerSigningKeyRequest(this.opened, registry, venue, gateway, opened.signer, opened.json, this.timers.now());
    } catch (err) {
      this.log.error({ venue, gateway, err: (err as Error).message }, 'signing key request not answered; the unit asks again');
      return;
    }
    if (!result) return;
    if (result.registered) {
      registry.addRotation(result.registered);
      this.counters.signingKeysRegistered++;
      this.log.warn({ venue, gateway, version: result.answer.version }, 'gateway signing key rotated: the new key registered, the old one accepted during the overlap');
    } else {
      this.counters.signingKeyRequestsRefused++;
      this.warnings.warn('signing_key_refused', { venue, gateway, reason: 'error' in result.answer ? result.answer.error : '' }, 'signing key request refused');
    }
    const signed = this.options.control.sign({ ...result.answer, kind: 'signingKey', venue, gateway, issuedAt: this.timers.now() });
    this.client?.publish(gatewayTopics(this.options.prefix, venue, gateway).signingKey, signed, { qos: 1, retain: true, properties: { contentType: COSE_CONTENT_TYPE } });
  }

  private onStatus(venue: string, gateway: string, payload: Buffer): void {
    if (payload.length === 0) return; // a retained status cleared (a gateway retired)
    if (payload.length > MAX_STATUS_BYTES) {
      this.warnings.warn('status_too_large', { venue, gateway, bytes: payload.length }, `status larger than ${MAX_STATUS_BYTES} bytes: ignored`);
      return;
    }
    const opened = this.openGatewayMessage('status', venue, gateway, payload);
    if (!opened) return;
    const row = statusRow(opened.json, this.timers.now(), this.statuses.get(gateway));
    if (!row || row.gateway !== gateway || row.venue !== venue) {
      this.warnings.warn('status_ignored', { venue, gateway }, row ? 'status names another gateway than its topic: ignored' : 'status is not a status document (JSON with gateway, venue, state): ignored');
      return;
    }
    this.statuses.set(gateway, row);
    this.metrics.statusMessages.inc();
  }

  /** Writes the statuses gathered since the last write; kept for the next try when it fails. */
  private async saveStatuses(): Promise<void> {
    if (this.savingStatuses || this.statuses.size === 0 || !this.opened) return this.savingStatuses ?? undefined;
    const rows = this.statuses;
    this.statuses = new Map();
    this.savingStatuses = this.opened.saveStatuses([...rows.values()]).then(
      () => undefined,
      (err: Error) => {
        for (const [gateway, row] of rows) if (!this.statuses.has(gateway)) this.statuses.set(gateway, row);
        this.log.warn({ err: err.message, statuses: rows.size }, 'gateway statuses not saved; trying again');
      },
    ).finally(() => {
      this.savingStatuses = null;
    });
    return this.savingStatuses;
  }

  /**
   * Counts a refusal and logs it as a 'batch refused' line with its code and reason (protocol.md):
   * every one at debug level; otherwise the first of each code a minute, then one line with how
   * many more (junk must not fill the disk).
   */
  private refuse(code: RefusalReason, reason: string, fields: Record<string, unknown>): void {
    this.counters.batchesRejected++;
    this.metrics.batches.inc({ outcome: 'refused' });
    this.metrics.refusals.inc({ reason: code });
    if (this.log.isLevelEnabled('debug')) this.log.debug({ ...fields, code, reason }, 'batch refused');
    else this.warnings.warn(`batch_refused_${code}`, { ...fields, code, reason }, 'batch refused');
  }

  private onBatch(topic: string, payload: Buffer): void {
    const where = parseBatchTopic(this.options.prefix, topic);
    let batch: Batch;
    try {
      if (!where) throw new WireFormatError('topic', `not <prefix>/<venue>/<gateway>/batch: ${topic}`);
      batch = decodeBatch(payload);
      if (batch.kind !== 'batch') throw new WireFormatError('kind', 'only "batch" belongs on a batch topic');
    } catch (err) {
      this.refuse('malformed', (err as Error).message, { topic });
      return;
    }
    if (batch.gateway !== where.gateway || batch.venue !== where.venue) {
      const reason = `gw: batch names ${batch.venue}/${batch.gateway} but came on ${where.venue}/${where.gateway}'s topic`;
      this.refuse('wrong_topic', reason, { topic, batch: batch.id, gateway: batch.gateway });
      return;
    }
    const verified = this.verify(batch);
    if (!verified.ok) {
      // Not acknowledged either: a real gateway whose record is missing keeps its batches until it is added.
      this.counters.batchesUnverified++;
      this.refuse(verified.code, verified.reason, { topic, batch: batch.id, gateway: batch.gateway });
      return;
    }
    // Stored with whatever else arrives in this turn of the event loop, or while the commit
    // before is in flight: one transaction and one sync for them all.
    if (verified.signer) this.noteKeyUse(batch.gateway, verified.signer);
    this.arrived.push({ batch, signer: verified.signer });
    this.committing ??= this.commitLoop();
  }

  private async commitLoop(): Promise<void> {
    try {
      await new Promise((resolve) => setImmediate(resolve));
      while (this.arrived.length > 0) await this.commitArrived();
    } finally {
      this.committing = null;
    }
  }

  /** Commits the batches that arrived, then acknowledges them: an ack is sent only once durable. */
  private async commitArrived(): Promise<void> {
    const group = this.arrived.splice(0, MAX_GROUP_BATCHES);
    if (group.length === 0) return;
    let results: Array<IngestResult | Error>;
    const endTimer = this.metrics.commitSeconds.startTimer();
    try {
      results = await this.store.commit(group);
      endTimer();
      this.lastCommit = { ok: true, at: this.timers.now(), error: null };
    } catch (err) {
      // Not acknowledged: the gateways keep them in their outboxes and send them again.
      this.counters.commitFailures++;
      this.metrics.commitFailures.inc();
      this.lastCommit = { ok: false, at: this.timers.now(), error: (err as Error).message };
      this.log.error({ batches: group.length, err: (err as Error).message }, 'batches not stored');
      return;
    }
    const arrivedAt = this.timers.now();
    const acks = new Map<string, { venue: string; gateway: string; ids: string[] }>();
    group.forEach(({ batch }, i) => {
      const result = results[i];
      if (result instanceof Error) {
        this.log.error({ batch: batch.id, err: result.message }, 'batch not stored');
        return;
      }
      if (result.outcome === 'out_of_sequence') {
        this.counters.batchesOutOfSequence++;
        this.refuse('out_of_sequence', `seq ${batch.seq} is already held by batch ${result.heldBy}: replayed or forged sequence`, {
          batch: batch.id, gateway: batch.gateway, seq: batch.seq,
        });
        return;
      }
      if (result.outcome === 'duplicate') {
        this.counters.batchesDuplicate++;
        this.metrics.batches.inc({ outcome: 'duplicate' });
        this.log.info({ batch: batch.id, gateway: batch.gateway, seq: batch.seq }, 'batch already stored (re-send or replay): acknowledged again, not stored twice');
      } else {
        this.counters.batchesStored++;
        this.counters.encountersStored += result.stored;
        this.counters.encountersDuplicate += batch.encounters.length - result.stored;
        this.metrics.batches.inc({ outcome: 'stored' });
        this.metrics.encounters.inc({ outcome: 'stored' }, result.stored);
        this.metrics.encounters.inc({ outcome: 'duplicate' }, batch.encounters.length - result.stored);
        this.metrics.gatewayLag.set({ gateway: batch.gateway }, Math.max(0, (arrivedAt - batch.createdAt) / 1000));
        this.log.debug({ batch: batch.id, gateway: batch.gateway, seq: batch.seq, stored: result.stored }, 'batch stored');
      }
      const topic = gatewayTopics(this.options.prefix, batch.venue, batch.gateway).ack;
      const to = acks.get(topic);
      if (to) to.ids.push(batch.id);
      else acks.set(topic, { venue: batch.venue, gateway: batch.gateway, ids: [batch.id] });
    });
    for (const [topic, { venue, gateway, ids }] of acks) {
      // Signed and addressed: a gateway forgets a batch only on the backend's signed word.
      const signed = this.options.control.sign({ kind: 'ack', venue, gateway, acks: ids });
      this.client?.publish(topic, signed, { qos: 1, properties: { contentType: COSE_CONTENT_TYPE } }, (err) => {
        if (err) this.log.warn({ err: err.message }, 'ack publish failed; the gateway will re-send');
      });
      this.counters.acksSent += ids.length;
      this.metrics.acks.inc(ids.length);
    }
  }

  private verify(batch: Batch): { ok: true; signer: Buffer | null } | Extract<Verification, { ok: false }> {
    const registry = this.options.registry;
    if (!registry) return { ok: true, signer: null };
    try {
      registry.reloadIfChanged();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'registry not reloaded; keeping the records already loaded');
    }
    return verifyBatch(batch, registry);
  }

  private async purge(): Promise<void> {
    try {
      const r = await this.store.purgeExpired(this.timers.now(), this.options.retentionDays!, this.options.batchGraceDays);
      this.counters.retentionDaysPurged += r.days;
      if (r.days > 0 || r.batchesDeleted > 0) this.log.info({ days: r.days, batches: r.batchesDeleted }, 'retention: expired encounters removed');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'retention pass failed; it runs again in an hour');
    }
  }

  async health(): Promise<CollectorHealth> {
    let database: CollectorHealth['database'] = { kind: null, ok: false, error: 'not open' };
    if (this.opened) {
      try {
        await withDeadline(this.timers, this.opened.ping(), HEALTH_DEADLINE_MS, `${describeDatabase(this.options.database)} did not answer within ${HEALTH_DEADLINE_MS} ms`);
        database = { kind: this.opened.kind, ok: true, error: null };
      } catch (err) {
        database = { kind: this.opened.kind, ok: false, error: (err as Error).message };
      }
    }
    const connected = this.client?.connected ?? false;
    const lastCommit = this.lastCommit && { ...this.lastCommit, at: new Date(this.lastCommit.at).toISOString() };
    return {
      healthy: connected && database.ok && (lastCommit?.ok ?? true),
      broker: { connected },
      database,
      lastCommit,
      counters: { ...this.counters },
    };
  }

  /** The staged rollouts as this collector last read them, and whether it drives them. */
  get rolloutView(): { driving: boolean; rollouts: Rollout[] } {
    return { driving: this.rollouts?.driving ?? false, rollouts: this.rollouts?.latest ?? [] };
  }

  async stop(): Promise<void> {
    await this.rollouts?.stop();
    this.rollouts = null;
    this.timers.clearInterval(this.retentionTimer);
    this.retentionTimer = null;
    this.timers.clearInterval(this.statusTimer);
    this.statusTimer = null;
    this.timers.clearInterval(this.keysTimer);
    this.keysTimer = null;
    // What arrived is stored and acknowledged before the connection closes.
    const client = this.client;
    while (this.committing || this.arrived.length > 0) await (this.committing ??= this.commitLoop());
    this.client = null;
    if (client) await new Promise<void>((resolve) => client.end(false, () => resolve()));
    await this.saveStatuses();
    await this.opened?.close();
    this.opened = null;
    this.warnings.stop();
    this.log.info('collector stopped');
  }
}
