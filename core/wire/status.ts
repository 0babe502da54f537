// The gateway's status document (docs/protocol.md, "Status"): one type shared by its producer
// (the daemon publishes it retained and answers the control socket with it) and every reader
// (`vgw status`, `vgw doctor`, the demo, a backend). Keys are camelCase throughout, as in every
// other payload of the protocol; a test walks the live documents and refuses any other casing.
import { z } from 'zod';
import type { AggregatorCounters } from '../encounters/index.js';
import type { AdvertKind, DropCounters } from '../protocols/index.js';
import type { PayloadRefusals } from '../bluetrace/index.js';
import type { SoftwareVersion } from '../software/index.js';
import { WIRE_SCHEMA_VERSION } from './codec.js';
import type { CertificateExpiry, RenewalOutcome } from '../trust/index.js';
import type { ControlKind } from './control.js';

export interface ClockStatus {
  synchronized: boolean;
  /** What said so: timesyncd, timedatectl, chrony, config, or none. */
  source: string;
  /** Wall-clock steps the daemon has seen since it started. */
  steps: number;
}

export interface H4Counters {
  packets: number;
  /** Bytes skipped because they could not start a packet (framing lost, line noise). */
  resyncBytes: number;
}

export interface ScannerCounters {
  reports: number;
  stateChanges: number;
  prunedAddresses: number;
  recoverRestartScan: number;
  recoverReset: number;
  recoverReopen: number;
  recovered: number;
}

/** `counters.radio`: the state alone for a simulated radio; an HCI radio says more. */
export type RadioStatus = { state: string } & Partial<
  ScannerCounters & {
    error: string | null;
    recoveryLevel: number;
    rememberedAddresses: number;
    h4: H4Counters;
    hciGuard: { malformedAdvReports: number; eventsNobleRejected: number };
  }
>;

export interface BeaconStatus {
  state: 'starting' | 'advertising' | 'controller-off' | 'paused' | 'retrying' | 'stopped';
  transport: string;
  eid: string | null;
  quantumStart: number | null;
  /** Unix ms of the next rotation. */
  nextRotationAt: number | null;
  rotations: number;
  rotationFailures: number;
}

/** The venue's temp ID supply (`counters.bluetrace.tempIds`). */
export interface TempIdSupplyStatus {
  /** ok, low (asking for more), out (the roles stop), clockUnsynced (no way to tell which is valid). */
  state: 'ok' | 'low' | 'out' | 'clockUnsynced';
  /** IDs whose 15-minute window has not ended. */
  left: number;
  /** Unix ms when the last one expires, or null. */
  lastsUntil: number | null;
  /** Unix ms at which the backend asked to be asked again. */
  refreshAt: number | null;
  requests: number;
  responses: number;
  refused: number;
  lastError: string | null;
  lastFetchAt: number | null;
}

/**
 * The peripheral role's state: starting until the advertising controller first reports; noTempId
 * while the venue has no valid temp ID to offer (the advertiser pauses the role).
 */
export type PeripheralState = 'starting' | 'advertising' | 'noTempId' | 'retrying' | 'controller-off' | 'stopped';

/** The BlueTrace peripheral role's counters (`counters.bluetrace.peripheral`). */
export interface PeripheralCounters {
  connections: number;
  reads: number;
  exchanges: number;
  /** Writes after the first in one connection: answered, not logged twice. */
  repeatedWrites: number;
  /** Phones gone before writing (disconnected mid-exchange). */
  disconnectedBeforeWrite: number;
  /** Connections cut at the time limit (a phone that connects and never writes). */
  timedOut: number;
  /** Turns skipped for want of a valid venue temp ID. */
  turnsWithoutTempId: number;
  refused: PayloadRefusals;
}

/** The BlueTrace central role's counters (`counters.bluetrace.central`). */
export interface CentralCounters {
  attempts: number;
  exchanges: number;
  /** The connection did not come up, or the link dropped mid-exchange. */
  failures: number;
  /** Exchanges cut at the time limit. */
  timedOut: number;
  /** Connected, but the phone had no BlueTrace characteristic. */
  noService: number;
  /** Read the phone's temp ID, then could not write the venue's. */
  writeFailures: number;
  /** Phones passed over because `maxConnections` were busy. */
  deferredBusy: number;
  /** Phones passed over for want of a valid venue temp ID. */
  withoutTempId: number;
  /**
   * Reads that returned the venue's own temp ID: the unit's advertising controller, heard by its
   * scanning one where its address was not yet known. Not logged.
   */
  ownAdverts: number;
  refused: PayloadRefusals;
}

/** `counters.bluetrace`: both roles and the temp ID supply; `{ state: 'disabled' }` when off. */
export interface BluetraceStatus {
  state: 'enabled';
  tempIds: TempIdSupplyStatus;
  /** null: the role is off, or the unit has no advertising controller. */
  peripheral: (PeripheralCounters & { state: PeripheralState }) | null;
  central: (CentralCounters & { connections: number }) | null;
}

/** The beacon's part, or null when the unit has no beacon. */
export function enabledBeacon(beacon: BeaconStatus | { state: 'disabled' } | undefined): BeaconStatus | null {
  return beacon && beacon.state !== 'disabled' ? beacon : null;
}

export interface HealthStatus {
  ready: boolean;
  watchdog: { enabled: boolean; pings: number; withheld: number; lastWithheldReason: string | null };
}

export interface StoreCounters {
  writeTransactions: number;
  encountersStored: number;
  batchesCut: number;
  batchesAcked: number;
  acksUnknown: number;
  purgedEncounters: number;
  /** Deleted unacknowledged after `unackedMaxMs` of service time: lost to the backend. */
  purgedUnacked: number;
  commitFailures: number;
  droppedDiskFull: number;
  /** Encounters open at a crash, read back from the checkpoint at start. */
  restoredOpen: number;
  /** Encounters and batches read back from a database found corrupt. */
  salvagedEncounters: number;
  readErrors: number;
}

export interface StoreBacklog {
  unbatched: number;
  outboxBatches: number;
  lastAckAt: number | null;
  pending: number;
}

/** Something that happened to the database: it was found corrupt, lost, rolled back, ... */
export type StoreEventKind = 'corrupt' | 'lost' | 'replaced' | 'rolled_back' | 'meta_rebuilt' | 'unacked_purged' | 'lineage_unreadable';

export interface StoreEvent {
  at: number;
  kind: StoreEventKind;
  detail: string;
}

/** The database's identity and history. */
export interface DatabaseState {
  database: string;
  life: string;
  lifeStartedAt: number;
  lives: number;
  serviceS: number;
  /** The latest thing that happened to the database (corruption, loss, ...), if any. */
  lastEvent: StoreEvent | null;
  /** Set while the database could not be written or read; cleared by the next success. */
  error: string | null;
}

export interface UplinkCounters {
  connects: number;
  disconnects: number;
  batchesPublished: number;
  batchesResent: number;
  acksReceived: number;
  acksInvalid: number;
  requestsAnswered: number;
  requestsInvalid: number;
  pullEncountersSent: number;
}

/** What the backend told this unit, signed or not (docs/protocol.md, "Control messages"). */
export interface ControlCounters {
  /** Control messages verified and acted on. */
  accepted: number;
  /** Refused, by reason; none of them was acted on. */
  refused: Record<'malformed' | 'unsigned' | 'unknownKey' | 'badSignature' | 'invalid' | 'wrongKind' | 'wrongGateway' | 'stale' | 'replayed' | 'badReplyTo', number>;
  /** The latest refusal: when, of which kind, why. */
  lastRefusal: { at: number; kind: ControlKind; reason: string; detail: string } | null;
  /** Backend keys this unit trusts. */
  trustedKeys: number;
  /** The backend keys as rotated (absent in a simulator's statuses): the announcement's version (0: as provisioned), their key ids, and the last announcement's outcome. */
  backendKeys?: { version: number; keys: string[]; last: { at: number; version: number; outcome: 'applied' | 'refused'; reason?: string } | null };
  /** The unit's own signing key (absent in a simulator's statuses): its rotation (0: as provisioned), the public key, a rotation asked for and not yet answered, the last outcome. */
  signingKey?: { version: number; key: string; pending: number | null; last: { at: number; version: number; outcome: 'applied' | 'refused'; reason?: string } | null };
}

/** Software updates (docs/operating.md, "Releases"): the release running, the committed one, one under way, the last outcome. */
export interface UpdateStatus {
  /**
   * disabled: no release key configured; unmanaged: not running from a release under update.root;
   * idle; downloading, installing, restarting: a release under way; trial: running a release that
   * has not yet passed the health gate.
   */
  state: 'disabled' | 'unmanaged' | 'idle' | 'downloading' | 'installing' | 'restarting' | 'trial';
  running: string;
  committed: string | null;
  pending?: { version: string; bytes: number; total: number };
  last: { version: string; outcome: 'applied' | 'refused' | 'rolledBack'; reason?: string; at: number } | null;
}

/** `counters`: one part per concern of the daemon. */
export interface StatusCounters {
  radio: RadioStatus;
  clock: ClockStatus;
  beacon: BeaconStatus | { state: 'disabled' };
  bluetrace: BluetraceStatus | { state: 'disabled' };
  health: HealthStatus;
  adverts: { received: number; withTempId: number };
  heard: Record<AdvertKind, number>;
  drops: DropCounters;
  encounters: { open: number } & AggregatorCounters;
  store: StoreCounters & StoreBacklog & { database: DatabaseState };
  uplink: UplinkCounters & { inflight: number; connected: boolean };
  control: ControlCounters;
  /** The unit's certificates and when they expire; a warning from 30 days before (absent: a simulated unit). */
  tls?: {
    certificates: CertificateExpiry[];
    warning: string | null;
    /** Renewal over MQTT: which certificate is in use (the file's, a renewed one, one on trial) and the last renewal's outcome. */
    renewal?: { using: 'file' | 'renewed' | 'trial' | 'none'; last: RenewalOutcome | null };
  };
  /** Software updates (absent: a simulated unit). */
  update?: UpdateStatus;
}

/** Which configuration a unit runs, and where it came from. */
export interface ConfigVersion {
  /** `sha256:` and the first 12 hex digits of the SHA-256 of the configuration in effect (defaults filled in). */
  version: string;
  /**
   * file: the unit's config file (a technician's `vgw provision`); remote: that file with the
   * backend's settings over it (`remote` says which version); simulated: a fleet simulator's gateway.
   */
  source: 'file' | 'remote' | 'simulated';
  /** The backend's configuration as this unit holds it (absent where none is taken: the fleet simulator). */
  remote?: RemoteConfigStatus;
}

/** docs/protocol.md, "Configuration": what became of the versions the backend offered. */
export interface RemoteConfigStatus {
  /** The version in effect: committed (it passed the health gate) or on trial; null: the file alone. */
  version: number | null;
  state: 'none' | 'committed' | 'trial';
  /** While a version is in effect: the keys it sets over the unit's own file (or its defaults), as dotted paths. */
  overrides?: string[];
  /** The latest outcome: applied, refused (the field named) or rolled back (why), at unix ms. */
  last: { version: number; outcome: 'applied' | 'refused' | 'rolledBack'; reason?: string; at: number } | null;
}

/** What a status says of the software and configuration (the protocol version is `v`). */
export interface StatusVersions {
  software: SoftwareVersion;
  config: ConfigVersion;
}

interface StatusEnvelope extends StatusVersions {
  v: typeof WIRE_SCHEMA_VERSION;
  gateway: string;
  venue: string;
  /** When the daemon started (ISO-8601). */
  startedAt: string;
}

export interface OnlineStatus extends StatusEnvelope {
  state: 'online';
  at: string;
  counters: StatusCounters;
}

export interface StoppedStatus extends StatusEnvelope {
  state: 'offline';
  reason: 'stopped';
  at: string;
}

/** The Last Will: the broker holds it from connect, so it carries no `at`. */
export interface WillStatus extends StatusEnvelope {
  state: 'offline';
  reason: 'connection lost';
}

export type GatewayStatus = OnlineStatus | StoppedStatus | WillStatus;

/** What the control socket answers on the unit: the online document and where things are. */
export interface LocalStatus extends OnlineStatus {
  local: { pid: number; broker: string; store: string; radio: string };
}

export type StatusKind = 'online' | 'stopped' | 'will';

export interface StatusIdentity extends StatusVersions {
  gateway: string;
  venue: string;
  startedAt: number;
}

export function statusDocument(kind: 'online', id: StatusIdentity, counters: StatusCounters, now?: number): OnlineStatus;
export function statusDocument(kind: 'stopped', id: StatusIdentity, counters?: undefined, now?: number): StoppedStatus;
export function statusDocument(kind: 'will', id: StatusIdentity): WillStatus;
export function statusDocument(kind: StatusKind, id: StatusIdentity, counters?: StatusCounters, now = Date.now()): GatewayStatus {
  const envelope = {
    v: WIRE_SCHEMA_VERSION, gateway: id.gateway, venue: id.venue, startedAt: new Date(id.startedAt).toISOString(), software: id.software, config: id.config,
  } as const;
  if (kind === 'will') return { ...envelope, state: 'offline', reason: 'connection lost' };
  if (kind === 'stopped') return { ...envelope, state: 'offline', reason: 'stopped', at: new Date(now).toISOString() };
  return { ...envelope, state: 'online', at: new Date(now).toISOString(), counters: counters! };
}

// Readers check the envelope and that `counters` holds one object per concern; the counters
// themselves are the producer's type, and a reader meets a missing one with a dash, not a crash.
const envelopeSchema = z.object({
  v: z.literal(WIRE_SCHEMA_VERSION, { error: `must be ${WIRE_SCHEMA_VERSION}` }),
  state: z.enum(['online', 'offline']),
  gateway: z.string(),
  venue: z.string(),
  startedAt: z.string(),
  software: z.object({ version: z.string(), commit: z.string() }).optional(),
  config: z.object({ version: z.string(), source: z.string() }).optional(),
  at: z.string().optional(),
  reason: z.enum(['stopped', 'connection lost']).optional(),
  counters: z.record(z.string(), z.record(z.string(), z.unknown())).optional(),
  local: z.record(z.string(), z.unknown()).optional(),
});

export class StatusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StatusError';
  }
}

/** A status document as a reader gets it (a retained message, the control socket's answer). */
export function parseStatus(value: unknown, source: string): GatewayStatus | LocalStatus {
  const parsed = envelopeSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StatusError(`${source}: not a status document: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  if (parsed.data.state === 'online' && (parsed.data.at === undefined || parsed.data.counters === undefined)) {
    throw new StatusError(`${source}: not a status document: an online status needs at and counters`);
  }
  return value as GatewayStatus | LocalStatus;
}
