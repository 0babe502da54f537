// Owns the broker connection of a gateway: publishes outbox batches until the backend
// acknowledges them, keeps a retained status (with a Last Will), and answers requests.
// Over 400 lines on purpose: it is the one owner of the MQTT client (as zigbee2mqtt's lib/mqtt.ts
// is), so everything that publishes or subscribes is here; a pull's reading is in pull-stream.ts.
import type { IClientPublishOptions, MqttClient } from 'mqtt';
import { ulid } from 'ulid';
import { Logger, WarningThrottle } from '../../core/log/index.js';
import { systemTimers, type TimerHandle, type Timers } from '../../core/time/index.js';
import { BrokerOptions, connectClient } from '../../core/mqtt/index.js';
import type { OutboxBatch, Store } from '../store/index.js';
import {
  COSE_CONTENT_TYPE, encodeBatch, gatewayTopics, GatewayTopics, signUnitMessage, TempIdsResponse, WIRE_SCHEMA_VERSION, type BatchSigner, type ControlCertificate, type ControlConfig, type ControlSigningKey, type ControlTrust, type DoctorCheck, type LogLevel, type RemoteConfigStatus, type TrustedKey, type UpdateRequest,
} from '../../core/wire/index.js';
import { signBytes, type SigningKey } from '../../core/trust/index.js';
import { toWire } from '../../core/encounters/index.js';
import { OnlineStatus, statusDocument, StatusCounters, StatusIdentity, StatusKind, type ConfigVersion, type UplinkCounters } from '../../core/wire/status.js';
import { softwareVersion, type SoftwareVersion } from '../../core/software/index.js';
import { ControlGate } from './control-gate.js';
import { streamPull } from './pull-stream.js';

export interface UplinkOptions {
  broker: BrokerOptions;
  prefix: string;
  venue: string;
  gateway: string;
  maxInflightBatches: number;
  resendInitialMs: number;
  resendMaxMs: number;
  statusIntervalMs: number;
  maxRequestBytes: number;
  maxPullEncounters: number;
  batchMaxEncounters: number;
  /** The gateway's key: it signs every batch and pull part, and every status and answer (docs/protocol.md, "Unit messages"). */
  signingKey: SigningKey;
  /** Carries out a signed logLevel command: the level for a while; returns when it falls back (unix ms). Absent: refused. */
  onLogLevel?: (level: LogLevel, forMs: number) => number;
  /** Carries out a signed restart command once its answer has left: a clean stop, then the process restarts. Absent: refused. */
  onRestart?: () => void;
  /** Runs `vgw doctor` on the unit for a signed doctor command. Absent: refused. */
  onDoctor?: () => Promise<DoctorCheck[]>;
  /** A signed update request: null when the release is being taken (it restarts into it), or why it is refused. */
  onUpdate?: (request: UpdateRequest) => string | null;
  /** Takes a signed configuration for this unit (retained on `<base>/config`). Absent: not subscribed. */
  onConfig?: (message: ControlConfig) => void;
  /** What the status says of the backend's configuration. */
  remoteConfig?: () => RemoteConfigStatus;
  /** Takes a signed announcement of the backend keys to trust (retained on `<base>/trust`), with the key that signed it. Absent: not subscribed. */
  onTrust?: (message: ControlTrust, signer: Buffer) => void;
  /** Takes a signed order to rotate this unit's signing key, or the backend's acceptance of its new one (retained on `<base>/key`). Absent: not subscribed. */
  onSigningKey?: (message: ControlSigningKey) => void;
  /** Takes a signed answer to this unit's certificate request (on `<base>/cert`). Absent: not subscribed. */
  onCertificate?: (message: ControlCertificate) => void;
  /** The configuration in effect, as the status reports it. */
  config: ConfigVersion;
  /** The software, as the status reports it (default: this build's). */
  software?: SoftwareVersion;
  /** The backend keys whose signature makes an ack, a request or a temp-ID answer one to act on. */
  trustedKeys: readonly TrustedKey[];
  /** A signed request is accepted within this of the unit's clock, either way. */
  requestMaxSkewMs: number;
  /** Where accepted requests' nonces are kept across restarts (none: in memory only). */
  nonceFile?: string;
  /** Whether the unit's clock is synchronised (a refusal for staleness says so). */
  clockSynced?: () => boolean;
  /** Time and timers (fake ones in tests). */
  timers?: Timers;
  /** Draws the re-send jitter, uniform in [0, 1). */
  random?: () => number;
}

export type { UplinkCounters };

/** What the uplink needs of a store: the gateway's SQLite store, or the fleet simulator's outbox in memory. */
export type UplinkStore = Pick<Store, 'onBatches' | 'onAcked' | 'outbox' | 'batchEncounters' | 'addAck' | 'pullPlan' | 'readRange' | 'database'>;

/** What became of one published reply (a pull part, an answer). */
type ReplyOutcome = { kind: 'sent' } | { kind: 'refused'; reason: string } | { kind: 'unconfirmed' };

interface InFlight {
  attempts: number;
  nextAttemptAt: number;
}

/** Pulls answered or waiting at once; more are refused with "ask again later". */
const MAX_QUEUED_PULLS = 4;
const PULL_PARTS_IN_FLIGHT = 4;

export class Uplink {
  readonly counters: UplinkCounters = {
    connects: 0,
    disconnects: 0,
    batchesPublished: 0,
    batchesResent: 0,
    acksReceived: 0,
    acksInvalid: 0,
    requestsAnswered: 0,
    requestsInvalid: 0,
    pullEncountersSent: 0,
  };
  readonly topics: GatewayTopics;
  private readonly signBatch: BatchSigner = (data) => signBytes(this.options.signingKey, data);
  /** What the backend says passes here first. */
  readonly control: ControlGate;
  private client: MqttClient | null = null;
  private readonly inflight = new Map<string, InFlight>();
  private pumpTimer: TimerHandle | null = null;
  /** The next re-send falls due at its own jittered moment, not at the next whole-second pump. */
  private resendTimer: TimerHandle | null = null;
  private statusTimer: TimerHandle | null = null;
  /** What reconfigure() changed since the start (null: the options'). */
  private inEffect: { statusIntervalMs: number; config: ConfigVersion } | null = null;
  private readonly startedAt: number;
  private readonly timers: Timers;
  private readonly random: () => number;
  /** One warning per outage, not one per reconnect attempt: an outage can last days. */
  private outageLogged = false;
  private readonly warnings: WarningThrottle;
  private pullChain: Promise<void> = Promise.resolve();
  private tempIdListener: ((r: TempIdsResponse) => void) | null = null;
  private pullsQueued = 0;
  /** Set while a stop waits for the last acks: called on each ack. */
  private drained: (() => void) | null = null;

  constructor(
    private readonly options: UplinkOptions,
    private readonly store: UplinkStore,
    private readonly statusCounters: () => StatusCounters,
    private readonly log: Logger,
  ) {
    this.timers = options.timers ?? systemTimers;
    this.random = options.random ?? Math.random;
    this.startedAt = this.timers.now();
    this.topics = gatewayTopics(options.prefix, options.venue, options.gateway);
    this.warnings = new WarningThrottle(log);
    this.control = new ControlGate({
      venue: options.venue, gateway: options.gateway, trusted: options.trustedKeys, maxSkewMs: options.requestMaxSkewMs,
      maxBytes: options.maxRequestBytes, repliesPrefix: `${options.prefix}/replies/`, now: () => this.timers.now(), clockSynced: options.clockSynced ?? (() => true),
      nonceFile: options.nonceFile,
    }, this.warnings);
    store.onBatches(() => this.pump());
    store.onAcked(() => this.pump());
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(): void {
    // The broker holds the Will from connect and publishes it when the connection dies: it is
    // fixed at connect, so it carries no time of its own (a receiver knows when it arrived).
    const will = {
      topic: this.topics.status,
      payload: this.signedStatus('will'),
      qos: 1 as const,
      retain: true,
      properties: { contentType: COSE_CONTENT_TYPE },
    };
    const client = connectClient(this.options.broker, will);
    this.client = client;
    client.on('connect', (connack) => {
      this.counters.connects++;
      this.outageLogged = false;
      this.log.info({ sessionPresent: connack.sessionPresent }, 'broker connected');
      // A broker that lost our session lost whatever it held for us: re-send at once, and
      // restart the backoff, since the first re-send may beat the collectors' re-subscription.
      if (!connack.sessionPresent) for (const f of this.inflight.values()) f.attempts = 0;
      const topics = [
        this.topics.ack, this.topics.request, ...(this.tempIdListener ? [this.topics.tempIds] : []), ...(this.options.onConfig ? [this.topics.config] : []),
        ...(this.options.onCertificate ? [this.topics.certificate] : []), ...(this.options.onTrust ? [this.topics.trust] : []),
        ...(this.options.onSigningKey ? [this.topics.signingKey] : []),
      ];
      client.subscribe(topics, { qos: 1 }, (err) => {
        if (err) this.log.error({ err: err.message }, 'subscribe failed');
      });
      // Whatever was in flight may have been lost with the connection: send it again now.
      for (const f of this.inflight.values()) f.nextAttemptAt = 0;
      this.publishStatus();
      this.pump();
    });
    client.on('close', () => {
      if (this.client === client && this.counters.connects > this.counters.disconnects) {
        this.counters.disconnects++;
        this.log.warn('broker connection lost; batches stay in the outbox');
      }
    });
    client.on('error', (err) => {
      if (this.outageLogged) return;
      this.outageLogged = true;
      this.log.warn({ err: err.message }, 'broker unreachable; retrying quietly, batches stay in the outbox');
    });
    client.on('message', (topic, payload, packet) => {
      if (topic === this.topics.ack) this.onAck(payload);
      else if (topic === this.topics.request) this.onRequest(payload, packet.properties?.correlationData);
      else if (topic === this.topics.tempIds) this.onTempIds(payload);
      else if (topic === this.topics.config) this.onConfig(payload);
      else if (topic === this.topics.certificate) this.onCertificateAnswer(payload);
      else if (topic === this.topics.trust) this.onTrustAnnouncement(payload);
      else if (topic === this.topics.signingKey) this.onSigningKeyMessage(payload);
    });
    this.pumpTimer = this.timers.setInterval(() => this.pump(), 1000);
    this.statusTimer = this.timers.setInterval(() => this.publishStatus(), this.inEffect?.statusIntervalMs ?? this.options.statusIntervalMs);
  }

  /** Publishes outbox batches that are due: new ones up to the in-flight cap, and re-sends. */
  pump(): void {
    const client = this.client;
    if (!client?.connected) return;
    const now = this.timers.now();
    const outbox = this.store.outbox();
    // Acked, or deleted by the store: nothing left to send.
    if (this.inflight.size > 0) {
      const waiting = new Set(outbox.map((b) => b.id));
      for (const id of this.inflight.keys()) if (!waiting.has(id)) this.inflight.delete(id);
    }
    for (const batch of outbox) {
      const f = this.inflight.get(batch.id);
      if (f === undefined && this.inflight.size >= this.options.maxInflightBatches) break;
      if (f !== undefined && f.nextAttemptAt > now) continue;
      this.publishBatch(client, batch, f);
    }
    this.armResend(now);
  }

  private armResend(now: number): void {
    if (this.resendTimer) this.timers.clearTimeout(this.resendTimer);
    this.resendTimer = null;
    let next = Infinity;
    for (const f of this.inflight.values()) next = Math.min(next, f.nextAttemptAt);
    if (next === Infinity) return;
    this.resendTimer = this.timers.setTimeout(() => this.pump(), Math.min(Math.max(0, next - now), 2 ** 31 - 1));
  }

  private publishBatch(client: MqttClient, batch: OutboxBatch, f: InFlight | undefined): void {
    const encounters = this.store.batchEncounters(batch.id).map(toWire);
    let payload: Buffer;
    try {
      payload = encodeBatch(
      { kind: 'batch', id: batch.id, gateway: this.options.gateway, venue: this.options.venue, life: batch.life, seq: batch.seq, createdAt: batch.createdAt },
      encounters,
      this.signBatch,
      );
    } catch (err) {
      // Never a crash loop: the batch stays in the outbox and the reason is in the log.
      this.inflight.set(batch.id, { attempts: (f?.attempts ?? 0) + 1, nextAttemptAt: this.timers.now() + this.options.resendMaxMs });
      this.warnings.warn('batch_unencodable', { batch: batch.id, err: (err as Error).message }, 'batch cannot be encoded; kept in the outbox');
      return;
    }
    const attempts = (f?.attempts ?? 0) + 1;
    const backoff = Math.min(this.options.resendMaxMs, this.options.resendInitialMs * 2 ** (attempts - 1));
    // Jitter keeps a fleet that lost the broker together from re-sending together.
    this.inflight.set(batch.id, { attempts, nextAttemptAt: this.timers.now() + backoff * (0.8 + this.random() * 0.4) });
    if (attempts > 1) this.counters.batchesResent++;
    client.publish(this.topics.batch, payload, { qos: 1, properties: { contentType: 'application/cbor' } }, (err) => {
      if (err) this.log.warn({ batch: batch.id, err: err.message }, 'batch publish failed; will retry');
    });
    this.counters.batchesPublished++;
    this.log.debug({ batch: batch.id, seq: batch.seq, encounters: encounters.length, bytes: payload.length, attempts }, 'batch published');
  }

  /** Where the backend's temp ID answers go; set before start() so the topic is subscribed. */
  onTempIdsAnswer(listener: (r: TempIdsResponse) => void): void {
    this.tempIdListener = listener;
  }

  /** Asks the backend for BlueTrace temp IDs; false when the broker is not reachable now. */
  requestTempIds(id: string, count: number): boolean {
    const client = this.client;
    if (!client?.connected) return false;
    const payload = signUnitMessage(this.options.signingKey, { v: WIRE_SCHEMA_VERSION, op: 'tempIds', id, count });
    client.publish(this.topics.tempIdsRequest, payload, { qos: 1, properties: { contentType: COSE_CONTENT_TYPE } });
    return true;
  }

  /** Asks the backend to certify a new key (`csr`); false when not connected (asked again later). */
  requestCertificate(id: string, csr: string): boolean {
    const client = this.client;
    if (!client?.connected) return false;
    client.publish(this.topics.certificateRequest, signUnitMessage(this.options.signingKey, { v: WIRE_SCHEMA_VERSION, op: 'certificate', id, csr }), { qos: 1, properties: { contentType: COSE_CONTENT_TYPE } });
    return true;
  }

  /**
   * Asks the backend to register `key` as this unit's signing key for rotation `version`; signed
   * with the key in use now, `pop` by the new one. False when not connected (asked again later).
   */
  requestSigningKey(id: string, version: number, key: string, pop: string): boolean {
    const client = this.client;
    if (!client?.connected) return false;
    const payload = signUnitMessage(this.options.signingKey, { v: WIRE_SCHEMA_VERSION, op: 'signingKey', id, version, key, pop });
    client.publish(this.topics.signingKeyRequest, payload, { qos: 1, properties: { contentType: COSE_CONTENT_TYPE } });
    return true;
  }

  private onSigningKeyMessage(payload: Buffer): void {
    if (payload.length === 0) return; // the backend cleared its retained message
    const message = this.control.open(payload, 'signingKey');
    if (message) this.options.onSigningKey?.(message);
  }

  private onTrustAnnouncement(payload: Buffer): void {
    if (payload.length === 0) return; // the backend cleared its retained message: nothing announced
    const opened = this.control.openSigned(payload, 'trust');
    if (opened) this.options.onTrust?.(opened.message, opened.signer);
  }

  private onCertificateAnswer(payload: Buffer): void {
    const answer = this.control.open(payload, 'certificate');
    if (answer) this.options.onCertificate?.(answer);
  }

  private onConfig(payload: Buffer): void {
    if (payload.length === 0) return; // the backend cleared its retained message: nothing offered
    const message = this.control.open(payload, 'config');
    if (message) this.options.onConfig?.(message);
  }

  private onTempIds(payload: Buffer): void {
    const answer = this.control.open(payload, 'tempIds');
    if (answer) this.tempIdListener?.(answer);
  }

  private onAck(payload: Buffer): void {
    const ack = this.control.open(payload, 'ack');
    if (!ack) {
      this.counters.acksInvalid++;
      return;
    }
    this.counters.acksReceived++;
    this.log.debug({ batches: ack.acks }, 'ack received');
    let unknown = 0;
    for (const id of ack.acks) {
      if (!this.store.addAck(id)) unknown++;
    }
    if (unknown > 0) this.warnings.warn('ack_unknown', { batches: unknown }, 'ack for batches this gateway never cut (or already deleted); ignored');
    // An acked batch leaves the outbox at once: its slot in flight is free for the next.
    if (unknown < ack.acks.length) this.pump();
    this.drained?.();
  }

  /**
   * Publishes a reply; resolves on its PUBACK (`sent`, or `refused` with the broker's reason, e.g.
   * an ACL that does not let this gateway write the response topic), or `unconfirmed` after a
   * while, so a lost broker cannot wedge pulls.
   */
  private reply(responseTopic: string, correlationData: Buffer | undefined, payload: Buffer, contentType: string): Promise<ReplyOutcome> {
    const opts: IClientPublishOptions = { qos: 1, properties: { contentType, ...(correlationData ? { correlationData } : {}) } };
    return new Promise((resolve) => {
      const client = this.client;
      if (!client) return resolve({ kind: 'unconfirmed' });
      const timer = this.timers.setTimeout(() => resolve({ kind: 'unconfirmed' }), 10_000);
      client.publish(responseTopic, payload, opts, (err) => {
        this.timers.clearTimeout(timer);
        resolve(err ? { kind: 'refused', reason: err.message } : { kind: 'sent' });
      });
    });
  }

  /** `re` is the nonce of the request answered, when it could be read: the backend matches the answer by it, signed. */
  private replyError(responseTopic: string, correlationData: Buffer | undefined, error: string, re: string | undefined): void {
    this.counters.requestsInvalid++;
    this.warnings.warn('request_refused', { error }, 'request refused');
    const answer = signUnitMessage(this.options.signingKey, { v: WIRE_SCHEMA_VERSION, ok: false, error, ...(re === undefined ? {} : { re }) });
    void this.reply(responseTopic, correlationData, answer, COSE_CONTENT_TYPE).then((o) => {
      if (o.kind === 'refused') this.warnings.warn('reply_refused', { reason: o.reason }, 'the broker refused the reply: check its ACL for the response topic');
    });
  }

  /**
   * A request is answered on the `replyTo` it names inside its signature (the MQTT response topic
   * property is not signed, so it is not used); correlation data is echoed.
   */
  private onRequest(payload: Buffer, correlationData: Buffer | undefined): void {
    const opened = this.control.openRequest(payload);
    if ('refused' in opened) {
      if (opened.answerable) this.replyError(opened.answerable.replyTo, correlationData, opened.refused, opened.answerable.nonce);
      else this.counters.requestsInvalid++;
      return;
    }
    const request = opened.request;
    const responseTopic = request.replyTo;
    if (request.op === 'status') {
      this.counters.requestsAnswered++;
      void this.reply(responseTopic, correlationData, signUnitMessage(this.options.signingKey, { ...this.onlineStatus(), re: request.nonce }), COSE_CONTENT_TYPE);
      return;
    }
    if (request.op === 'logLevel') {
      if (!this.options.onLogLevel) return this.replyError(responseTopic, correlationData, 'op: logLevel is not carried out by this unit', request.nonce);
      const until = this.options.onLogLevel(request.level, request.forS * 1000);
      this.counters.requestsAnswered++;
      const answer = { v: WIRE_SCHEMA_VERSION, ok: true, op: 'logLevel', level: request.level, until: new Date(until).toISOString(), re: request.nonce };
      void this.reply(responseTopic, correlationData, signUnitMessage(this.options.signingKey, answer), COSE_CONTENT_TYPE);
      return;
    }
    if (request.op === 'restart') {
      const onRestart = this.options.onRestart;
      if (!onRestart) return this.replyError(responseTopic, correlationData, 'op: restart is not carried out by this unit', request.nonce);
      this.counters.requestsAnswered++;
      this.log.warn({ re: request.nonce }, 'restart command: stopping cleanly to restart');
      const answer = { v: WIRE_SCHEMA_VERSION, ok: true, op: 'restart', re: request.nonce };
      // Restarts once the answer left (or could not): the backend hears before the unit goes.
      void this.reply(responseTopic, correlationData, signUnitMessage(this.options.signingKey, answer), COSE_CONTENT_TYPE).finally(onRestart);
      return;
    }
    if (request.op === 'doctor') {
      const onDoctor = this.options.onDoctor;
      if (!onDoctor) return this.replyError(responseTopic, correlationData, 'op: doctor is not carried out by this unit', request.nonce);
      void onDoctor().then(
        (checks) => {
          this.counters.requestsAnswered++;
          const answer = { v: WIRE_SCHEMA_VERSION, ok: true, op: 'doctor', healthy: checks.every((c) => c.ok), checks, re: request.nonce };
          return this.reply(responseTopic, correlationData, signUnitMessage(this.options.signingKey, answer), COSE_CONTENT_TYPE);
        },
        (err: unknown) => this.replyError(responseTopic, correlationData, `op: doctor did not run: ${(err as Error).message}`, request.nonce),
      );
      return;
    }
    if (request.op === 'update') {
      const onUpdate = this.options.onUpdate;
      if (!onUpdate) return this.replyError(responseTopic, correlationData, 'op: update is not carried out by this unit', request.nonce);
      const refused = onUpdate(request);
      if (refused !== null) return this.replyError(responseTopic, correlationData, refused, request.nonce);
      this.counters.requestsAnswered++;
      // Under way: the outcome comes in the status (counters.update), the unit restarting into the release.
      const answer = { v: WIRE_SCHEMA_VERSION, ok: true, op: 'update', version: request.version, re: request.nonce };
      void this.reply(responseTopic, correlationData, signUnitMessage(this.options.signingKey, answer), COSE_CONTENT_TYPE);
      return;
    }
    if (this.pullsQueued >= MAX_QUEUED_PULLS) {
      this.replyError(responseTopic, correlationData, `op: ${this.pullsQueued} pulls are being answered or waiting; ask again later`, request.nonce);
      return;
    }
    // One pull at a time: ten at once must not multiply the memory or starve ingest.
    this.pullsQueued++;
    const { from, to } = request;
    this.pullChain = this.pullChain
      .then(() => this.answerPull(responseTopic, correlationData, from, to, request.nonce))
      .catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'pull not answered'))
      .finally(() => this.pullsQueued--);
  }

  private async answerPull(responseTopic: string, correlationData: Buffer | undefined, from: number, to: number, re: string): Promise<void> {
    const plan = this.store.pullPlan(from, to);
    if (plan.upperBound > this.options.maxPullEncounters) {
      this.replyError(
        responseTopic,
        correlationData,
        `to: the range may hold up to ${plan.upperBound} encounters, more than the ${this.options.maxPullEncounters} one pull may return; ask for a shorter range`,
        re,
      );
      return;
    }
    const inflight = new Set<Promise<ReplyOutcome>>();
    const outcomes: ReplyOutcome[] = [];
    const sent = await streamPull(this.store, from, to, this.options.batchMaxEncounters, this.store.database.life, async (part) => {
      const header = {
        kind: 'pull' as const, id: ulid(), gateway: this.options.gateway, venue: this.options.venue,
        life: part.life, seq: 0, createdAt: this.timers.now(), part: part.index, last: part.last,
      };
      const p = this.reply(responseTopic, correlationData, encodeBatch(header, part.encounters.map(toWire), this.signBatch), 'application/cbor');
      inflight.add(p);
      void p.then((o) => {
        inflight.delete(p);
        outcomes.push(o);
      });
      // A few parts on the wire at once; the rest wait, so memory stays bounded.
      if (inflight.size >= PULL_PARTS_IN_FLIGHT) await Promise.race(inflight);
    });
    await Promise.all(inflight);
    const refused = outcomes.flatMap((o) => (o.kind === 'refused' ? [o.reason] : []));
    const unconfirmed = outcomes.filter((o) => o.kind === 'unconfirmed').length;
    const parts = outcomes.length;
    if (refused.length === 0 && unconfirmed === 0) {
      this.counters.requestsAnswered++;
      this.counters.pullEncountersSent += sent;
      this.log.info({ from, to, encounters: sent, parts }, 'pull answered');
      return;
    }
    // The asker did not get (all of) it: say so, and do not count it answered.
    this.log.warn(
      { from, to, parts, refused: refused.length, unconfirmed, reason: refused[0] },
      refused.length === parts
        ? 'pull not delivered: the broker refused every part of the answer (check its ACL for the response topic)'
        : `pull partly delivered: ${refused.length} of ${parts} parts refused by the broker, ${unconfirmed} unconfirmed; ask again`,
    );
  }



  /**
   * The status document: `online` with counters, `stopped` on a clean stop, or the Last Will
   * (`connection lost`), which the broker holds from connect and so carries no `at`.
   */
  /** The online document, as the topic and the control socket give it. */
  onlineStatus(): OnlineStatus {
    return statusDocument('online', this.statusIdentity(), this.statusCounters(), this.timers.now());
  }

  /** The status document of `kind`, signed with the gateway's key, as it goes on the status topic. */
  signedStatus(kind: StatusKind): Buffer {
    const id = this.statusIdentity();
    const doc = kind === 'online' ? this.onlineStatus() : kind === 'stopped' ? statusDocument('stopped', id, undefined, this.timers.now()) : statusDocument('will', id);
    return signUnitMessage(this.options.signingKey, doc);
  }

  /**
   * A configuration taken without a restart (daemon/remote-config.ts, hot keys): the status goes
   * out at its new interval from now on and names the configuration in effect.
   */
  reconfigure(next: { statusIntervalMs: number; config: ConfigVersion }): void {
    this.inEffect = next;
    if (this.statusTimer) {
      this.timers.clearInterval(this.statusTimer);
      this.statusTimer = this.timers.setInterval(() => this.publishStatus(), next.statusIntervalMs);
    }
  }

  /** The configuration in effect; with the backend's, which version and what became of the last one offered. */
  private configVersion(): ConfigVersion {
    const config = this.inEffect?.config ?? this.options.config;
    const remote = this.options.remoteConfig?.();
    if (!remote) return config;
    return { ...config, source: remote.version === null ? config.source : 'remote', remote };
  }

  private statusIdentity(): StatusIdentity {
    return {
      gateway: this.options.gateway, venue: this.options.venue, startedAt: this.startedAt, software: this.options.software ?? softwareVersion(), config: this.configVersion(),
    };
  }

  publishStatus(): void {
    if (!this.client?.connected) return;
    this.client.publish(this.topics.status, this.signedStatus('online'), { qos: 1, retain: true, properties: { contentType: COSE_CONTENT_TYPE } });
  }

  /** Publishes what is due and resolves with the batches still unacknowledged, once none are or at `timeoutMs`. */
  private drain(timeoutMs: number): Promise<number> {
    if (!this.client?.connected) return Promise.resolve(this.store.outbox().length);
    this.pump();
    return new Promise((resolve) => {
      const done = () => {
        this.timers.clearTimeout(timer);
        this.drained = null;
        resolve(this.store.outbox().length);
      };
      const timer = this.timers.setTimeout(done, timeoutMs);
      this.drained = () => {
        if (this.store.outbox().length === 0) done();
      };
      this.drained();
    });
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  /**
   * Sends what the outbox holds and waits up to `drainMs` for its acks (a clean stop delivers
   * what it closed rather than leaving it on a unit that may be swapped), then publishes a clean
   * "offline" status and disconnects, within `timeoutMs`.
   */
  async stop({ drainMs = 0, timeoutMs = 3000 } = {}): Promise<void> {
    if (this.pumpTimer) this.timers.clearInterval(this.pumpTimer);
    if (this.statusTimer) this.timers.clearInterval(this.statusTimer);
    if (drainMs > 0) {
      const left = await this.drain(drainMs);
      if (left > 0) this.log.warn({ batches: left }, 'stopping with batches not yet acknowledged; they are sent at the next start');
      else this.log.info('outbox empty: everything stored has been acknowledged');
    }
    this.warnings.stop();
    if (this.resendTimer) this.timers.clearTimeout(this.resendTimer);
    this.resendTimer = null;
    const client = this.client;
    if (!client) return;
    this.client = null;
    await new Promise<void>((resolve) => {
      const timer = this.timers.setTimeout(() => client.end(true, () => resolve()), timeoutMs);
      const end = () => client.end(false, () => {
        this.timers.clearTimeout(timer);
        resolve();
      });
      if (client.connected) {
        client.publish(this.topics.status, this.signedStatus('stopped'), { qos: 1, retain: true, properties: { contentType: COSE_CONTENT_TYPE } }, end);
      } else {
        end();
      }
    });
  }
}
