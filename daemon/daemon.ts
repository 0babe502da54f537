// Wires the concerns together; data flows one way: radio → decode → aggregate → store → uplink.
// Each concern starts and stops on its own (lifecycle.ts); this file only builds and orders them.
import { createAggregator } from '../core/encounters/index.js';
import type { Config } from '../core/config/index.js';
import { aggregatorOptions, besideDatabase, ConfigError, configVersion, requireGateway, requireSecretsFile } from '../core/config/index.js';
import { certificateNotAfter, expiryOf, expiryWarning, loadSecrets, type Secrets, signingKeyFromSeed, TrustError } from '../core/trust/index.js';
import { readFileSync } from 'node:fs';
import type { Logger } from '../core/log/index.js';
import { softwareVersion } from '../core/software/index.js';
import { ClockState, createClockMonitor, SteadyClock } from './clock/index.js';
import { Controller, Lifecycle } from './lifecycle.js';
import { LogLevelWindow } from './log-level.js';
import { runDoctor } from './remote-doctor.js';
import { prepareTlsStart, TlsRenewal, type TlsStart } from './tls-renewal.js';
import { BackendKeys, prepareBackendKeys } from './backend-keys.js';
import { prepareSigningKey, SigningKeyRotation } from './signing-key.js';
import { RemoteConfiguration, type RemoteStart } from './remote-config.js';
import { Updater } from './updater.js';
import { runningRelease } from './release-slots.js';
import { Pipeline } from './pipeline.js';
import { Advertiser, formatTransport, NobleScanner, parseTransport, Radio, VenueBeacon } from './radio/index.js';
import { Bluetrace } from './bluetrace/index.js';
import { SimulatedRadio } from '../simulators/simulated-radio.js'; // not the barrel: it loads the test brokers and pg
import { ControlSocket, controlSocketPath, HealthMonitor, SdNotify, watchdogIntervalMs } from './health/index.js';
import { Store, StoreOptions } from './store/index.js';
import { brokerOptions, tlsOptions } from '../core/mqtt/index.js';
import { Uplink, UplinkOptions } from './uplink/index.js';
import type { LocalStatus, StatusCounters } from '../core/wire/index.js';

export interface Daemon {
  readonly store: Store;
  readonly uplink: Uplink;
  counters(): StatusCounters;
  stop(): Promise<void>;
}

/** The store's settings from the config (the uplink's batch limits decide where batches are cut). */
function storeOptions(config: Config): Omit<StoreOptions, 'clockSynced' | 'openEncounters' | 'log'> {
  return {
    path: config.store.path,
    commitIntervalMs: config.store.checkpointS * 1000,
    retentionMs: config.store.retentionDays * 86_400_000,
    unackedMaxMs: config.store.unackedMaxDays * 86_400_000,
    purgeBatchSize: config.store.purgeBatchSize,
    batchMaxEncounters: config.uplink.batchMaxEncounters,
    batchMaxAgeMs: config.uplink.batchMaxAgeS * 1000,
    maxPendingEncounters: config.store.maxPendingEncounters,
  };
}

function uplinkOptions(config: Config): Omit<UplinkOptions, 'broker' | 'signingKey' | 'venue' | 'gateway' | 'trustedKeys'> {
  const u = config.uplink;
  return {
    prefix: config.topicPrefix,
    requestMaxSkewMs: u.requestMaxSkewS * 1000,
    maxInflightBatches: u.maxInflightBatches,
    resendInitialMs: u.resendInitialS * 1000,
    resendMaxMs: u.resendMaxS * 1000,
    statusIntervalMs: u.statusIntervalS * 1000,
    maxRequestBytes: u.maxRequestBytes,
    maxPullEncounters: u.maxPullEncounters,
    batchMaxEncounters: u.batchMaxEncounters,
    config: { version: configVersion(config), source: 'file' },
    nonceFile: besideDatabase(config, 'control-nonces.json'),
  };
}

/** The gateway's radio, by config: noble on an HCI transport, or a simulated crowd. */
function createRadio(config: Config, steady: SteadyClock, bluetrace: () => Bluetrace | null, log: Logger): Radio {
  const scanner = config.radio.scanner;
  const sim = config.radio.simulated;
  return config.radio.kind === 'hci'
    ? new NobleScanner({
      transport: parseTransport(scanner.transport), deviceId: scanner.deviceId, pruneIntervalMs: scanner.pruneIntervalS * 1000,
      silenceMs: scanner.silenceS * 1000, now: () => steady.now(), onNoble: (noble) => bluetrace()?.attachCentral(noble),
    }, log)
    : new SimulatedRadio({ ...sim, anchor: sim.anchor ?? Date.now() });
}

/**
 * The advertising controller, when something advertises: the EID beacon and the BlueTrace
 * peripheral take turns on it (advertiser.ts).
 */
function createAdvertiser(config: Config, log: Logger): Advertiser | null {
  const b = config.beacon;
  const peripheral = config.bluetrace.enabled && config.bluetrace.peripheral.enabled;
  if (!b.enabled && !peripheral) return null;
  return new Advertiser({ transport: parseTransport(b.transport), deviceId: b.deviceId, sliceMs: config.bluetrace.peripheral.sliceS * 1000 }, log);
}

/** The venue's Eddystone-EID beacon, when enabled; its identity key comes from the secrets file. */
function createBeacon(config: Config, secrets: Secrets, clock: () => ClockState, log: Logger): VenueBeacon | null {
  const b = config.beacon;
  if (!b.enabled) return null;
  const identityKeyHex = secrets.beaconIdentityKey ?? b.identityKey;
  if (identityKeyHex === undefined) {
    throw new ConfigError(['beacon.identityKey: required when beacon.enabled is true: `vgw provision` puts it in the secrets file (beaconIdentityKey)'], '');
  }
  return new VenueBeacon(
    {
      transport: formatTransport(parseTransport(b.transport)),
      identityKey: Buffer.from(identityKeyHex, 'hex'),
      exponent: b.exponent,
      txPowerDbm: b.txPowerDbm,
      epochS: b.epochS,
      mayAdvertise: () => b.unsyncedClock === 'advertise' || clock().synchronized,
    },
    log,
  );
}

/**
 * The unit's own certificate (the one it connects with: `tls`, whose expiry prepareTlsStart read)
 * and its CA, with their expiry, read once (tlsOptions has checked the files).
 */
function certificatesOf(config: Config, tls: TlsStart): Array<{ file: string; notAfter: number }> {
  const own = tls.notAfter === null ? [] : [{ file: 'broker.cert', notAfter: tls.notAfter }];
  if (!config.broker.ca) return own;
  try {
    return [...own, { file: 'broker.ca', notAfter: certificateNotAfter(readFileSync(config.broker.ca)) }];
  } catch {
    return own;
  }
}

/** How long a clean stop waits for the backend to acknowledge what it sent last. */
const STOP_DRAIN_MS = 3000;

/**
 * Builds the concerns and starts them in the order data flows back from the broker: the store,
 * the uplink, the radio pipeline, the beacon, the control socket, then health (READY). They stop
 * in reverse: STOPPING first, the pipeline flushes into the store; the uplink commits, cuts
 * every stored encounter into batches, sends them and waits a bounded time for their acks, then
 * says "stopped"; the store's final commit (with those acks) comes last.
 */
export interface DaemonHooks {
  /** The config file the daemon runs from: a doctor command runs `vgw doctor` on it. */
  configPath?: string;
  /** What a signed restart command calls: the process stops cleanly and is started again. */
  restart?: () => void;
  /** The backend's configuration as `vgw run` started with it (remote-config.ts); absent: none taken. */
  remote?: RemoteStart;
}

export async function startDaemon(config: Config, log: Logger, hooks: DaemonHooks = {}): Promise<Daemon> {
  const gateway = requireGateway(config);
  // Refuses to start on a missing or world-readable secrets file: before anything is opened.
  const secretsFile = requireSecretsFile(config);
  const secrets = loadSecrets(secretsFile);
  if (!secrets.backendKeys) {
    throw new TrustError(`secrets file ${secretsFile}: backendKeys: missing: this unit would refuse every ack and request; add the backend's public key with \`vgw provision --backend-key <hex>\` (\`vgw backend-key\` prints it)`);
  }
  // The provisioned keys, or the set the backend announced since (a rotation).
  const keysStart = prepareBackendKeys(config, gateway.id, secrets.backendKeys.map((k) => k.publicKey.toLowerCase()), log);
  const trustedKeys = keysStart.keys;
  // The provisioned key, or the one a rotation moved it to.
  const keyStart = prepareSigningKey(config, gateway.id, secrets.signingKey, log);
  const signingKey = signingKeyFromSeed(Buffer.from(keyStart.seed, 'hex'));
  const clock = createClockMonitor(config.clock.syncCheck);
  const beacon = createBeacon(config, secrets, clock, log);
  const advertiser = createAdvertiser(config, log);
  if (beacon) advertiser?.addSlot(beacon);
  // With a certificate renewed over MQTT (or one on trial) in place of broker.cert's file.
  const tlsStart = prepareTlsStart(config, brokerOptions(config, `vgw-${gateway.id}`, secrets), log);
  const broker = tlsStart.broker;
  tlsOptions(broker); // a missing certificate or a readable key is a start-up error, not a reconnect loop
  const certificates = certificatesOf(config, tlsStart);
  const renewal: TlsRenewal | null = tlsStart.use === 'none' ? null : new TlsRenewal({
    start: tlsStart, gateway: gateway.id, caPem: config.broker.ca ? readFileSync(config.broker.ca, 'utf8') : null, renewBeforeDays: config.broker.renewBeforeDays,
    healthGateMs: config.remote.healthGateS * 1000, request: (id, csr) => uplink.requestCertificate(id, csr), connected: () => uplink.connected, restart: hooks.restart, log,
  });
  const tls = () => {
    const list = certificates.map((c) => expiryOf(c.file, c.notAfter, Date.now()));
    return { certificates: list, warning: expiryWarning(list), ...(renewal ? { renewal: renewal.status() } : {}) };
  };
  const expiring = tls().warning;
  if (expiring) log.warn({ warning: expiring }, 'a certificate expires soon');
  const steady = new SteadyClock();
  let bluetrace: Bluetrace | null = null;
  const radio = createRadio(config, steady, () => bluetrace, log);
  const aggregator = createAggregator(aggregatorOptions(config.encounters));
  const clockSync = { synced: clock().synchronized };
  const software = softwareVersion();
  // Before the store: a release on trial keeps the schema the release it would roll back to can run on.
  const updater = new Updater({
    root: config.update.root, releaseKeys: config.update.releaseKeys.map((k) => Buffer.from(k, 'hex')),
    ...(config.update.ca ? { ca: readFileSync(config.update.ca) } : {}),
    running: { version: software.version, arch: process.arch, nodeAbi: process.versions.modules },
    slot: runningRelease(config.update.root, software.version),
    healthGateMs: config.update.healthGateS * 1000, restart: () => restart(), log,
    healthy: (): boolean => health.state.ready && uplink.connected && radio.poweredOn() && store.counters.writeTransactions > 0,
    onChange: () => uplink.publishStatus(),
  });
  const store = new Store({
    ...storeOptions(config),
    deferBreakingMigrations: updater.onTrial,
    clockSynced: () => clockSync.synced,
    // Checkpointed with every commit: a crash loses at most store.checkpointS of sightings.
    openEncounters: () => aggregator.open.values(),
    log,
  });
  const pipeline = new Pipeline({ radio, aggregator, store, steady, clock, clockSync, log });
  const logLevel = new LogLevelWindow(log, config.log.level);
  const configPath = hooks.configPath;
  const restart = hooks.restart ?? (() => log.error('a restart is due but this process cannot restart itself: restart it'));
  // The health gate of a version on trial: the broker reached, the radio on, a commit made.
  const remote: RemoteConfiguration | null = hooks.remote
    ? new RemoteConfiguration({
      start: hooks.remote, healthGateMs: config.remote.healthGateS * 1000, restart, log,
      healthy: (): boolean => uplink.connected && radio.poweredOn() && store.counters.writeTransactions > 0,
      onOutcome: () => uplink.publishStatus(),
      // What is read while running takes a new value at once (HOT_KEYS); everything else restarts.
      applyHot: (next) => {
        logLevel.setConfigured(next.log.level);
        uplink.reconfigure({ statusIntervalMs: next.uplink.statusIntervalS * 1000, config: { version: configVersion(next), source: 'file' } });
      },
    })
    : null;
  const backendKeys = new BackendKeys(keysStart, (keys) => uplink.control.setTrusted(keys), log);
  const keyRotation = new SigningKeyRotation({
    start: keyStart, venue: gateway.venue, gateway: gateway.id, restart, log,
    request: (id, version, key, pop) => uplink.requestSigningKey(id, version, key, pop), onChange: () => uplink.publishStatus(),
  });
  // The uplink publishes the status document, which holds the uplink's own counters too.
  const uplink: Uplink = new Uplink(
    {
      ...uplinkOptions(config), broker, signingKey, venue: gateway.venue, gateway: gateway.id,
      trustedKeys, clockSynced: () => clockSync.synced, onLogLevel: (level, forMs) => logLevel.raise(level, forMs),
      onRestart: hooks.restart,
      onDoctor: configPath === undefined ? undefined : () => runDoctor(configPath),
      onUpdate: (request) => updater.requested(request),
      onConfig: remote ? (message) => remote.offered(message) : undefined,
      remoteConfig: remote ? () => remote.status() : undefined,
      onCertificate: renewal ? (message) => renewal.answered(message) : undefined,
      onSigningKey: (message) => keyRotation.received(message),
      onTrust: (message, signer) => {
        if (backendKeys.announced(message, signer)) uplink.publishStatus();
      },
    },
    store,
    () => counters(),
    log,
  );
  bluetrace = config.bluetrace.enabled
    ? new Bluetrace(config, { uplink, advertiser, clockSynced: () => clockSync.synced, steadyNow: () => steady.now(), onExchange: (s) => pipeline.exchange(s), log })
    : null;
  const notify = SdNotify.fromEnv(process.env, log);
  const health = new HealthMonitor({
    notify,
    watchdogMs: watchdogIntervalMs(process.env),
    radioGraceMs: config.health.radioGraceS * 1000,
    statusIntervalMs: config.health.statusIntervalS * 1000,
    radioPoweredOn: () => radio.poweredOn(),
    statusLine: () => {
      const st = store.stats();
      return `radio ${radio.state}, ${aggregator.open.size} open, ${store.counters.encountersStored} stored, backlog ${st.outboxBatches} batches + ${st.unbatched} encounters, broker ${uplink.connected ? 'connected' : 'disconnected'}, clock ${clockSync.synced ? 'synced' : 'unsynced'}`;
    },
    log,
  });
  const counters = (): StatusCounters => ({
    radio: radio.status(),
    clock: { ...clock(), steps: steady.steps },
    beacon: beacon ? { ...beacon.status } : { state: 'disabled' },
    bluetrace: bluetrace ? bluetrace.status() : { state: 'disabled' },
    health: { ...health.state, watchdog: { ...health.state.watchdog } },
    adverts: pipeline.adverts,
    heard: pipeline.heard,
    drops: pipeline.drops,
    encounters: { open: aggregator.open.size, ...aggregator.counters },
    store: { ...store.counters, ...store.stats(), database: store.database },
    uplink: { ...uplink.counters, inflight: uplink.inflightCount, connected: uplink.connected },
    control: { ...uplink.control.counters, refused: { ...uplink.control.counters.refused }, backendKeys: backendKeys.status(), signingKey: keyRotation.status() },
    tls: tls(),
    update: updater.status(),
  });
  const control = new ControlSocket(
    controlSocketPath(config),
    (): LocalStatus => ({
      ...uplink.onlineStatus(),
      local: { pid: process.pid, broker: broker.url, store: config.store.path, radio: config.radio.kind === 'hci' ? config.radio.scanner.transport : 'simulated' },
    }),
    log,
  );
  const concerns: Lifecycle[] = [
    {
      name: 'store',
      start: () => store.start((err) => log.error({ err: (err as Error).message }, 'store commit failed; retrying next tick')),
      stop: () => store.close(), // the final commit: what the pipeline handed over is on the disk
    },
    {
      name: 'uplink',
      start: () => uplink.start(),
      stop: async () => {
        try {
          store.commit({ cutAll: true });
        } catch (err) {
          log.error({ err: (err as Error).message }, 'commit at stop failed; the store retries as it closes');
        }
        await uplink.stop({ drainMs: STOP_DRAIN_MS });
        logLevel.stop();
      },
    },
    pipeline,
    ...(bluetrace ? [bluetrace] : []),
    ...(advertiser ? [{ name: 'advertiser', start: () => advertiser.start(), stop: () => advertiser.stop() }] : []),
    control,
    health,
    ...(remote ? [{ name: 'remote configuration', start: () => remote.start(), stop: () => remote.stop() }] : []),
    { name: 'updater', start: () => updater.start(), stop: () => updater.stop() },
    { name: 'signing key rotation', start: () => keyRotation.start(), stop: () => keyRotation.stop() },
    ...(renewal ? [{ name: 'certificate renewal', start: () => renewal.start(), stop: () => renewal.stop() }] : []),
  ];
  const controller = new Controller(concerns, log);
  await controller.start();
  log.info({ gateway: gateway.id, venue: gateway.venue, radio: config.radio.kind, db: config.store.path }, 'daemon started');

  return {
    store,
    uplink,
    counters,
    async stop() {
      await controller.stop();
      log.info('daemon stopped');
      notify?.close();
    },
  };
}
