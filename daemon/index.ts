// Wires the concerns together; data flows one way: radio → decode → aggregate → store → uplink.
// Each concern starts and stops on its own; this file only connects them.
import { hostname } from 'node:os';
import { closeAll, ClosedEncounter, createAggregator, observe, sweep } from '../core/encounters/index.js';
import type { Config } from './config/index.js';
import { aggregatorOptions, ConfigError, requireGateway, requireSecretsFile } from './config/index.js';
import { loadSecrets, Secrets, signBytes, signingKeyFromSeed } from '../core/trust/index.js';
import type { Logger } from '../core/log/index.js';
import { AdvertKind, classifyAdvertisement, decodeAdvertisement, newDropCounters } from '../core/protocols/index.js';
import { createClockMonitor, SteadyClock } from './clock/index.js';
import { h4Counters, hciGuardCounters, NobleScanner, parseTransport, VenueBeacon } from './radio/index.js';
import { SimulatedRadio } from '../simulators/index.js';
import { controlSocketPath, SdNotify, startControlSocket, startHealth, watchdogIntervalMs } from './health/index.js';
import { Store } from './store/index.js';
import { BrokerOptions, tlsOptions } from '../core/mqtt/index.js';
import { Uplink } from './uplink/index.js';

export interface Daemon {
  readonly store: Store;
  readonly uplink: Uplink;
  counters(): Record<string, unknown>;
  stop(): Promise<void>;
}

/** The config's broker settings; a password in the secrets file wins over one in the config. */
export function brokerOptions(config: Config, defaultClientId: string, secrets?: Secrets): BrokerOptions {
  const password = secrets?.brokerPassword ?? config.broker.password;
  return { ...config.broker, clientId: config.broker.clientId ?? defaultClientId, ...(password !== undefined ? { password } : {}) };
}

export function defaultCollectorClientId(): string {
  return `vgw-collector-${hostname().replace(/[^A-Za-z0-9_-]/g, '')}`.slice(0, 64);
}

export function startDaemon(config: Config, log: Logger): Daemon {
  const gateway = requireGateway(config);
  // Refuses to start on a missing or world-readable secrets file: before anything is opened.
  const secrets = loadSecrets(requireSecretsFile(config));
  const signingKey = signingKeyFromSeed(Buffer.from(secrets.signingKey, 'hex'));
  const identityKeyHex = secrets.beaconIdentityKey ?? config.beacon.identityKey;
  if (config.beacon.enabled && identityKeyHex === undefined) {
    throw new ConfigError(['beacon.identityKey: required when beacon.enabled is true: `vgw provision` puts it in the secrets file (beaconIdentityKey)'], '');
  }
  const broker = brokerOptions(config, `vgw-${gateway.id}`, secrets);
  tlsOptions(broker); // a missing certificate or a readable key is a start-up error, not a reconnect loop
  const sim = config.radio.simulated;
  const scanner = config.radio.scanner;
  const steady = new SteadyClock();
  const radio =
    config.radio.kind === 'hci'
      ? new NobleScanner({ transport: parseTransport(scanner.transport), deviceId: scanner.deviceId, pruneIntervalMs: scanner.pruneIntervalS * 1000, silenceMs: scanner.silenceS * 1000, now: () => steady.now() }, log)
      : new SimulatedRadio({ ...sim, anchor: sim.anchor ?? Date.now() });
  const aggregator = createAggregator(aggregatorOptions(config.encounters));
  const clock = createClockMonitor(config.clock.syncCheck);
  const store = new Store({
    path: config.store.path,
    commitIntervalMs: config.store.checkpointS * 1000,
    retentionMs: config.store.retentionDays * 86_400_000,
    unackedMaxMs: config.store.unackedMaxDays * 86_400_000,
    purgeBatchSize: config.store.purgeBatchSize,
    batchMaxEncounters: config.uplink.batchMaxEncounters,
    batchMaxAgeMs: config.uplink.batchMaxAgeS * 1000,
    maxPendingEncounters: config.store.maxPendingEncounters,
    clockSynced: () => clockSynced,
    // Checkpointed with every commit: a crash loses at most store.checkpointS of sightings.
    openEncounters: () => aggregator.open.values(),
    log,
  });
  const b = config.beacon;
  const beacon = b.enabled
    ? new VenueBeacon(
        {
          transport: parseTransport(b.transport),
          deviceId: b.deviceId,
          identityKey: Buffer.from(identityKeyHex!, 'hex'),
          exponent: b.exponent,
          txPowerDbm: b.txPowerDbm,
          epochS: b.epochS,
          mayAdvertise: () => b.unsyncedClock === 'advertise' || clock().synchronized,
        },
        log,
      )
    : null;
  const drops = newDropCounters();
  const adverts = { received: 0, with_temp_id: 0 };
  /** What else the radio hears, for a technician's diagnosis; nothing of it is stored. */
  const heard: Record<AdvertKind, number> = { exposure_notification: 0, eddystone: 0, ibeacon: 0, opentrace: 0, other: 0 };
  const closed: ClosedEncounter[] = [];

  const counters = (): Record<string, unknown> => ({
    radio: radio instanceof NobleScanner ? { state: radio.state, error: radio.transportError, ...radio.counters, recovery_level: radio.recoveryLevel, remembered_addresses: radio.rememberedAddresses, h4: { ...h4Counters }, hci_guard: { ...hciGuardCounters } } : { state: 'simulated' },
    clock: { ...clock(), steps: steady.steps },
    beacon: beacon ? { ...beacon.status } : { state: 'disabled' },
    health: { ...health.state, watchdog: { ...health.state.watchdog } },
    adverts,
    heard,
    drops,
    encounters: { open: aggregator.open.size, ...aggregator.counters },
    store: { ...store.counters, ...store.stats(), database: store.database },
    uplink: { ...uplink.counters, inflight: uplink.inflightCount, connected: uplink.connected },
  });
  const uplink = new Uplink(
    {
      broker,
      signer: (data) => signBytes(signingKey, data),
      prefix: config.topicPrefix,
      venue: gateway.venue,
      gateway: gateway.id,
      maxInflightBatches: config.uplink.maxInflightBatches,
      resendInitialMs: config.uplink.resendInitialS * 1000,
      resendMaxMs: config.uplink.resendMaxS * 1000,
      statusIntervalMs: config.uplink.statusIntervalS * 1000,
      maxRequestBytes: config.uplink.maxRequestBytes,
      maxPullEncounters: config.uplink.maxPullEncounters,
      batchMaxEncounters: config.uplink.batchMaxEncounters,
    },
    store,
    counters,
    log,
  );

  const handOver = () => {
    if (closed.length === 0) return;
    store.addEncounters(closed);
    closed.length = 0;
  };
  radio.start((data, rssi, address, time) => {
    adverts.received++;
    const sighting = decodeAdvertisement(data, rssi, address, time, drops);
    if (sighting === null) {
      heard[classifyAdvertisement(data)]++;
      return;
    }
    heard.exposure_notification++;
    sighting.clockSynced = clockSynced;
    adverts.with_temp_id++;
    observe(aggregator, sighting, closed);
  });
  // The simulated radio keeps its own (possibly accelerated) time, so wall-clock steps do not
  // concern it; but its time is anchored on the wall clock, so an unsynchronised clock makes its
  // sightings as suspect as real ones (flag bit 0 on the wire).
  const simulated = radio instanceof SimulatedRadio;
  let clockSynced = clock().synchronized;
  steady.onStep((stepMs) => {
    // No encounter may span a clock step: its duration would be negative or hours long.
    closeAll(aggregator, closed, 'clock_step');
    log.warn({ stepMs }, 'wall clock stepped; open encounters closed, timestamps re-anchored');
  });
  const sweepTimer = setInterval(() => {
    if (!simulated) steady.check();
    clockSynced = clock().synchronized;
    sweep(aggregator, radio.now(), closed);
    handOver();
  }, 1000);
  beacon?.start();
  const notify = SdNotify.fromEnv(process.env, log);
  const health = startHealth({
    notify,
    watchdogMs: watchdogIntervalMs(process.env),
    radioGraceMs: config.health.radioGraceS * 1000,
    statusIntervalMs: config.health.statusIntervalS * 1000,
    radioPoweredOn: () => !(radio instanceof NobleScanner) || radio.state === 'poweredOn',
    statusLine: () => {
      const st = store.stats();
      const radioState = radio instanceof NobleScanner ? radio.state : 'simulated';
      return `radio ${radioState}, ${aggregator.open.size} open, ${store.counters.encounters_stored} stored, backlog ${st.outboxBatches} batches + ${st.unbatched} encounters, broker ${uplink.connected ? 'connected' : 'disconnected'}, clock ${clockSynced ? 'synced' : 'unsynced'}`;
    },
    log,
  });
  store.start((err) => log.error({ err: (err as Error).message }, 'store commit failed; retrying next tick'));
  uplink.start();
  const control = startControlSocket(
    controlSocketPath(config),
    () => ({
      ...(JSON.parse(uplink.statusJson('online')) as Record<string, unknown>),
      local: { pid: process.pid, broker: broker.url, store: config.store.path, radio: config.radio.kind === 'hci' ? config.radio.scanner.transport : 'simulated' },
    }),
    log,
  );
  log.info({ gateway: gateway.id, venue: gateway.venue, radio: config.radio.kind, db: config.store.path }, 'daemon started');

  return {
    store,
    uplink,
    counters,
    async stop() {
      notify?.send({ STOPPING: 1, STATUS: 'stopping: flushing encounters and the outbox' });
      health.stop();
      radio.stop();
      beacon?.stop();
      clearInterval(sweepTimer);
      closeAll(aggregator, closed);
      handOver();
      await uplink.stop();
      try {
        store.close();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'final commit failed');
      }
      const server = await control;
      if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
      log.info('daemon stopped');
      notify?.close();
    },
  };
}
