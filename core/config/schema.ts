// One schema for the config file: validation, defaults, `vgw config docs` and CLI help all
// come from it. Each field's description says what it does and how to fix a bad value.
// Over 400 lines on purpose: one schema is the point (a second file would be a second place to
// look for a setting); it reads as one section per concern.
import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { AggregatorOptions } from '../encounters/index.js';
import { hexKey, NAME_PATTERN, NAME_RULE } from '../identifiers/index.js';
import { LOG_LEVELS } from '../wire/messages.js';
import { parseTransport, TRANSPORT_HELP } from './transport.js';

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const id = (what: string) =>
  z
    .string({ error: `expected a string: the ${what}, e.g. "mall-01"` })
    .regex(NAME_PATTERN, `must be ${NAME_RULE}`);

/** Node's timers fire at once past 2^31−1 ms: no period may be longer. */
const MAX_TIMER_S = 2_147_483;
const seconds = (d: number, what: string) =>
  z
    .number({ error: `expected a number of seconds (${what})` })
    .positive('must be greater than 0')
    .max(MAX_TIMER_S, `at most ${MAX_TIMER_S} s (about 24 days: Node's timers cannot wait longer)`)
    .default(d);

const brokerSchema = z
  .object({
    url: z
      .string({ error: 'expected a string such as "mqtt://127.0.0.1:1883" or "mqtts://broker:8883"' })
      .regex(/^(mqtt|mqtts|tcp|ssl|ws|wss):\/\/[^\s]+$/, 'must be a URL starting mqtt://, mqtts://, ws:// or wss://, e.g. "mqtt://127.0.0.1:1883"')
      .default('mqtt://127.0.0.1:1883')
      .describe('Broker URL.'),
    username: z.string().optional().describe('Broker user name, if the broker asks for one.'),
    password: z.string().optional().describe('Broker password. Prefer the secrets file (`brokerPassword`).'),
    ca: z.string().min(1).optional().describe('PEM file of the CA that signed the broker\'s certificate (mqtts://).'),
    cert: z.string().min(1).optional().describe('PEM client certificate for mutual TLS: one per gateway, its CN the gateway id.'),
    key: z.string().min(1).optional().describe('PEM private key of the client certificate; must be mode 0600.'),
    renewBeforeDays: z
      .number()
      .int('must be whole days')
      .min(0, '0 turns renewal off')
      .max(365, 'at most 365 days')
      .default(30)
      .describe('This many days before the client certificate expires the unit asks the backend for a new one over MQTT (a key it makes, a CSR signed with its identity key) and switches to it once it has reached the broker with it; 0: never (a technician replaces broker.cert).'),
    clientId: z.string().min(1).max(128).optional().describe('MQTT client id; defaults to "vgw-<gateway id>" or "vgw-collector-<host>".'),
    keepaliveS: z
      .number({ error: 'expected a number of seconds (MQTT keepalive)' })
      .positive('must be greater than 0')
      .max(65_535, 'at most 65535 (MQTT keepalive is a 16-bit number of seconds)')
      .default(30)
      .describe('MQTT keepalive in seconds.'),
    connectTimeoutS: seconds(10, 'connect timeout').describe('Seconds to wait for a CONNACK.'),
    reconnectS: seconds(2, 'reconnect delay').describe('The first reconnect after a lost connection comes at a random moment within this many seconds; each failed attempt doubles the window (full jitter: a fleet does not reconnect all at once).'),
    reconnectMaxS: seconds(30, 'longest reconnect window').describe('The reconnect window stops doubling at this many seconds.'),
  })
  .strict()
  .prefault({})
  .describe('MQTT 5 broker connection.');

const MAX_SIMULATED_ARRIVALS_PER_MINUTE = 60_000;

const simulatedSchema = z
  .object({
    seed: z.number().int('must be a whole number').default(1).describe('Seed of the crowd: the same seed makes the same phones, IDs and RSSI.'),
    phones: z.number().int().min(0).default(0).describe('Phones that pass by in total; 0 = an endless crowd.'),
    arrivalsPerMinute: z.number().positive('must be greater than 0').default(6).describe('How many phones arrive per minute.'),
    minDwellS: seconds(60, 'shortest walk-by').describe('Shortest time a phone stays in range.'),
    maxDwellS: seconds(600, 'longest walk-by').describe('Longest time a phone stays in range.'),
    speed: z.number().positive('must be greater than 0').max(1000, 'at most 1000').default(1).describe('Simulated seconds per real second (the demo and tests run faster than life).'),
    anchor: z.number().int().nonnegative().optional().describe('Unix ms at which the crowd starts; set it to keep the same crowd across restarts. Defaults to process start.'),
  })
  .strict()
  .refine((s) => s.minDwellS <= s.maxDwellS, { message: 'minDwellS must not exceed maxDwellS', path: ['minDwellS'] })
  // more than this and the crowd's own arithmetic holds the event loop, and the daemon no longer stops on SIGTERM
  .refine((s) => s.arrivalsPerMinute * s.speed <= MAX_SIMULATED_ARRIVALS_PER_MINUTE, {
    message: `arrivalsPerMinute × speed must be at most ${MAX_SIMULATED_ARRIVALS_PER_MINUTE} (1,000 new phones a real second): lower either`,
    path: ['arrivalsPerMinute'],
  });

const transportString = z.string().superRefine((value, ctx) => {
  try {
    parseTransport(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const scannerSchema = z
  .object({
    transport: transportString.default('hci:0').describe(`Controller used for scanning: ${TRANSPORT_HELP}.`),
    deviceId: z.number().int().min(0).max(63).default(0).describe('noble device id of that controller (hciN; any free slot for H4 transports).'),
    pruneIntervalS: seconds(300, 'prune period').describe('Addresses not heard for one to two of these are forgotten by noble (keeps memory flat).'),
    silenceS: seconds(60, 'report silence').describe('No advertising report for this long: restart scanning, then reset the controller, then reopen the transport.'),
  })
  .strict();

const radioSchema = z
  .object({
    kind: z.enum(['simulated', 'hci'], { error: 'must be "simulated" (a seeded crowd, no controller) or "hci" (noble on a controller)' }).default('simulated').describe('Radio source.'),
    scanner: scannerSchema.prefault({}).describe('The scanning controller (radio.kind "hci").'),
    simulated: simulatedSchema.prefault({}).describe('Seeded crowd of phones advertising Exposure Notification frames.'),
  })
  .strict()
  .prefault({})
  .describe('Where advertising reports come from.');

const beaconSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Advertise the venue beacon (Eddystone-EID).'),
    transport: transportString.default('hci:1').describe(`Controller used for advertising: ${TRANSPORT_HELP}. Scanning and advertising on one adapter collide: use two.`),
    deviceId: z.number().int().min(0).max(63).default(1).describe('bleno device id of that controller.'),
    identityKey: hexKey(16, 'the 16-byte identity key; `vgw beacon` documents how it is made')
      .optional()
      .describe('The beacon identity key. Prefer the secrets file (`beaconIdentityKey`), which `vgw provision` writes; this is for tests and demos.'),
    exponent: z.number().int().min(0).max(15, 'at most 15').default(10).describe('Rotation exponent K: a new EID every 2^K seconds (10: about 17 min).'),
    txPowerDbm: z.number().int().min(-100).max(20).default(-20).describe('Calibrated TX power at 0 m written in the frame.'),
    epochS: z.number().int().nonnegative().default(0).describe('Unix seconds at which the beacon time counter is 0 (as registered with the resolver).'),
    unsyncedClock: z.enum(['pause', 'advertise']).default('pause').describe('With the clock not synchronised: pause the beacon (default) or advertise anyway.'),
  })
  .strict()
  .prefault({})
  .describe('The venue beacon phones record visits from.');

const uuid128 = (d: string, what: string) =>
  z
    .string({ error: `expected a 128-bit UUID (${what}), e.g. "${d}"` })
    .regex(/^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/, `must be a 128-bit UUID like "${d}" (${what})`)
    .default(d);

const bluetraceSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Be a BlueTrace peer (PeduliLindungi Sijejak, TraceTogether, OpenTrace): exchange temp IDs with phones over GATT.'),
    serviceUuid: uuid128('B82AB3FC-1595-4F6A-80F0-FE094CC218F9', 'the BlueTrace service').describe(
      "The BlueTrace service UUID. Official ones are issued privately by the app's operator; the default is OpenTrace's published sample.",
    ),
    characteristicUuid: uuid128('117BDD58-57CE-4E7A-8E87-7CCCDDA2A804', 'the v2 characteristic').describe('The BlueTrace v2 characteristic UUID (default: OpenTrace\'s sample).'),
    org: z.string().min(1, 'must not be empty').max(32, 'at most 32 characters').default('SG_OTC').describe('Organisation code the venue sends in `o` (default: OpenTrace\'s sample).'),
    model: z.string().min(1, 'must not be empty').max(64, 'at most 64 characters').default('venue-gateway').describe('Model the venue sends in `mp` and `mc`.'),
    peripheral: z
      .object({
        enabled: z.boolean().default(true).describe('Advertise the service on the advertising controller (beacon.transport) and take phones\' writes.'),
        sliceS: seconds(1, 'advertising slice').describe('With the EID beacon on, each advert holds the advertising controller this long in turn.'),
        connectionTimeoutS: seconds(6, 'longest connection').describe('A phone still connected after this long is disconnected (OpenTrace phones take well under a second).'),
      })
      .strict()
      .prefault({}),
    central: z
      .object({
        enabled: z.boolean().default(true).describe('Connect to phones advertising the service (from the scanning controller), read their temp ID and write the venue\'s.'),
        maxConnections: z.number().int().min(1).max(8).default(2).describe('Phones connected at once, at most.'),
        connectionTimeoutS: seconds(6, 'longest exchange').describe('An exchange not done after this long is abandoned (OpenTrace: 6 s).'),
        skipS: seconds(100, 'skip after exchange').describe('A phone is left alone this long after an exchange (OpenTrace: 100 s).'),
      })
      .strict()
      .prefault({}),
    tempIds: z
      .object({
        file: z.string().min(1).optional().describe('Where the fetched temp IDs are kept; defaults to bluetrace-tempids.json beside the database.'),
        lowWater: z.number().int().min(1).max(100).default(16).describe('Ask the backend for more once fewer than this many (15 min each) are left.'),
        retryS: seconds(60, 'request retry').describe('Ask again after this long without an answer.'),
        unsyncedClock: z.enum(['pause', 'use']).default('pause').describe('With the clock not synchronised, which ID is valid cannot be told: pause both roles (default) or use the clock anyway.'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .prefault({})
  .describe('BlueTrace: temp IDs exchanged with phones over GATT, issued to the venue by the backend.');

const clockSchema = z
  .object({
    syncCheck: z.enum(['auto', 'assume-synced', 'assume-unsynced']).default('auto').describe('How to know the clock is synchronised: auto asks systemd-timesyncd, timedatectl or chrony.'),
  })
  .strict()
  .prefault({})
  .describe('Clock discipline (a Pi has no real-time clock).');

const healthSchema = z
  .object({
    radioGraceS: seconds(120, 'radio grace').describe('With the radio down this long (its own recovery having failed), watchdog pings stop so systemd restarts the daemon.'),
    controlSocket: z
      .string()
      .min(1)
      .optional()
      .describe('Unix socket where the daemon answers `vgw status` and `vgw doctor`; defaults to control.sock beside the database.'),
    statusIntervalS: seconds(5, 'systemd status period').describe('Seconds between STATUS= updates to systemd (`systemctl status`).'),
  })
  .strict()
  .prefault({})
  .describe('systemd notify and watchdog (Type=notify, WatchdogSec in the unit).');

const encountersSchema = z
  .object({
    silenceS: seconds(60, 'silence that closes an encounter').describe('An encounter closes after this many seconds without its temp ID.'),
    bluetraceSilenceS: seconds(240, 'silence that closes a BlueTrace encounter').describe(
      'A BlueTrace encounter closes after this many seconds without an exchange of its temp ID (phones exchange every 36–43 s at most; the gateway as central skips a phone for 100 s).',
    ),
    maxDurationS: seconds(1800, 'longest encounter').describe('An encounter closes when it reaches this length.'),
    maxOpen: z.number().int().min(1).default(50_000).describe('Cap on open encounters held in memory; past it the least recently heard closes.'),
    attenuationThresholdsDb: z
      .array(z.number(), { error: 'expected an array of numbers, e.g. [55, 63, 73]' })
      .min(1, 'needs at least one threshold')
      .max(15, 'at most 15 thresholds')
      .refine((a) => a.every((v, i) => i === 0 || v > a[i - 1]), 'thresholds must be ascending, e.g. [55, 63, 73]')
      .default([55, 63, 73])
      .describe('Attenuation thresholds in dB (EN-style buckets: immediate < 55 ≤ near < 63 ≤ medium < 73 ≤ other).'),
    assumedTxPowerDbm: z.number().min(-40).max(20).default(0).describe('TX power assumed for phones (the AEM that carries it is encrypted): attenuation = this − RSSI.'),
    bucketGapCapS: seconds(10, 'longest gap credited').describe('Longest gap between sightings credited to an attenuation bucket.'),
  })
  .strict()
  .prefault({})
  .describe('How sightings become encounters.');

/**
 * The aggregator's options from a config's `encounters` (seconds become milliseconds); with no
 * argument, the defaults, so benchmarks and tests use what a unit runs with rather than a copy.
 */
export function aggregatorOptions(e: z.infer<typeof encountersSchema> = encountersSchema.parse({})): AggregatorOptions {
  return {
    silenceMs: e.silenceS * 1000,
    bluetraceSilenceMs: e.bluetraceSilenceS * 1000,
    maxDurationMs: e.maxDurationS * 1000,
    maxOpen: e.maxOpen,
    attenuationThresholdsDb: e.attenuationThresholdsDb,
    assumedTxPowerDbm: e.assumedTxPowerDbm,
    bucketGapCapMs: e.bucketGapCapS * 1000,
  };
}

const storeSchema = z
  .object({
    path: z
      .string()
      .min(1, 'must name a file, e.g. "/var/lib/venue-gateway/gateway.db"')
      .refine((p) => !isDirectory(p), 'is a directory: name the database file inside it, e.g. "/var/lib/venue-gateway/gateway.db"')
      .default('gateway.db')
      .describe('SQLite database file (created 0600: it holds temp IDs).'),
    checkpointS: z
      .number({ error: 'expected a number of seconds (commit and checkpoint period)' })
      .min(0.05, 'at least 0.05 s')
      .max(60, 'at most 60 s: a crash or power cut loses up to this much of sightings')
      .default(60)
      .describe('One write transaction per this many seconds: closed encounters, acks, batches and a checkpoint of the encounters still open. A crash or power cut loses at most this much of sightings; shorter wears the SD card faster.'),
    retentionDays: z
      .number({ error: 'expected a number of days' })
      .min(1, 'at least 1 day')
      .max(365, 'at most 365 days')
      .default(14)
      .describe('Acknowledged encounters are deleted once this old (by a synchronised clock, or by time in service when the clock was not).'),
    unackedMaxDays: z
      .number({ error: 'expected a number of days' })
      .min(1, 'at least 1 day')
      .max(365, 'at most 365 days')
      .default(30)
      .describe('Encounters never acknowledged are kept this long in service time (clock steps do not count), then deleted, logged and counted (store.purgedUnacked).'),
    purgeBatchSize: z.number().int().min(1).default(500).describe('Rows the retention purge deletes per commit.'),
    maxPendingEncounters: z.number().int().min(1000).default(200_000).describe('Closed encounters kept in memory while the disk refuses writes.'),
  })
  .strict()
  .refine((s) => s.unackedMaxDays >= s.retentionDays, { message: 'must be at least retentionDays', path: ['unackedMaxDays'] })
  .prefault({})
  .describe('Local SQLite store and outbox.');

const uplinkSchema = z
  .object({
    batchMaxEncounters: z.number().int().min(1).max(10_000).default(256).describe('A batch is cut once this many encounters wait.'),
    batchMaxAgeS: seconds(30, 'batch age').describe('...or once the oldest waiting encounter has waited this long.'),
    maxInflightBatches: z.number().int().min(1).max(100).default(8).describe('Batches published and awaiting acknowledgement at once.'),
    resendInitialS: seconds(5, 'first resend delay').describe('First wait for an acknowledgement before re-sending; doubles each time.'),
    resendMaxS: seconds(300, 'longest resend delay').describe('Longest wait between re-sends.'),
    statusIntervalS: seconds(30, 'status period').describe('Seconds between retained status updates.'),
    maxRequestBytes: z.number().int().min(256).default(65_536).describe('Requests larger than this are refused.'),
    maxPullEncounters: z.number().int().min(1).default(200_000).describe('A pull is refused when its range could hold more encounters than this: every encounter of each batch whose time span overlaps it, and the not yet batched ones that overlap it (decided before reading a row).'),
    requestMaxSkewS: z
      .number()
      .int('must be whole seconds')
      .min(30, 'at least 30 s: a request takes time to arrive')
      .max(3600, 'at most 3600 s: a longer window lets a captured request be replayed for longer')
      .default(300)
      .describe("A signed request (pull, status) is accepted when its issuedAt is within this many seconds of the unit's clock, either way, and its nonce is new; see docs/protocol.md, \"Control messages\"."),
  })
  .strict()
  .prefault({})
  .describe('Batches, acknowledgements and requests over MQTT.');

const collectorSchema = z
  .object({
    database: z
      .string()
      .min(1)
      .refine((d) => !/^postgres(ql)?:/.test(d) || /^postgres(ql)?:\/\/[^/\s]+\/[^\s]+$/.test(d), 'a PostgreSQL URL is postgres://user[:password]@host[:port]/database')
      .default('collector.db')
      .describe('Where batches are stored: an SQLite file (one collector), or a PostgreSQL URL `postgres://user@host:5432/vgw` (a fleet: several collectors in one shareGroup write into one database; the password is better in PGPASSWORD or ~/.pgpass than here).'),
    retentionDays: z
      .number()
      .int()
      .min(0)
      .default(14)
      .describe('Encounters are removed, a whole UTC day at a time, once that day ended this many days ago (a partition dropped in PostgreSQL); 0 keeps everything.'),
    gatewayUnackedMaxDays: z
      .number()
      .int('must be a whole number of days')
      .min(1, 'at least 1 day')
      .max(365, 'at most 365 days, the largest store.unackedMaxDays a gateway may have')
      .default(30)
      .describe("The largest store.unackedMaxDays among the fleet's gateways: batch records are kept that long, and a day more, past retentionDays, so a batch re-sent that late is recognised and not stored twice."),
    registry: z
      .string()
      .min(1)
      .optional()
      .describe('JSON array of gateway registration records (what `vgw provision` prints). Batches from gateways not in it, unsigned or badly signed are refused. Re-read when the file changes.'),
    acceptUnsigned: z.boolean().default(false).describe('Store batches without checking signatures (development only; ignored when a registry is set).'),
    shareGroup: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only').optional().describe('MQTT 5 shared-subscription group: collectors in one group split the batches.'),
    controlKeyFile: z
      .string({ error: 'required: the backend key file (mode 0600) that signs acks and temp-ID answers; gateways act on nothing unsigned. Make one with `vgw backend-key --out <file>` and give its public key to `vgw provision --backend-key`' })
      .min(1)
      .describe('File (mode 0600) holding the backend\'s Ed25519 signing key as 64 hex digits (`vgw backend-key --out <file>` makes it): acks and temp-ID answers are signed with it, and gateways act on nothing else. Every collector of a fleet may hold the same key, or each its own if every gateway trusts them all.'),
    bluetraceKeyFile: z
      .string()
      .min(1)
      .optional()
      .describe('File (mode 0600) holding the 32-byte BlueTrace key as 64 hex digits: with it this collector issues venues\' temp IDs (`<prefix>/<venue>/<gateway>/tempids/req`). Only the backend may hold it.'),
    certificateAuthority: z
      .object({
        cert: z.string().min(1).describe("PEM file of the fleet CA's certificate (provisioning/tls/certs.sh's ca.crt)."),
        key: z.string().min(1).describe("PEM file of the fleet CA's private key, mode 0600: whoever holds it can let anything onto the broker's gateway listener."),
        days: z.number().int().min(1).max(3650).default(825).describe('How long a certificate it issues lasts.'),
      })
      .strict()
      .optional()
      .describe("With it this collector signs the units' certificate requests (`<prefix>/<venue>/<gateway>/cert/req`, signed with the registered key of the gateway whose id is the request's CN), so units renew their TLS certificates before they expire, with no visit."),
    http: z
      .object({
        enabled: z.boolean().default(true).describe('Serve Prometheus metrics (/metrics), a health check (/healthz), the fleet as JSON (/api/fleet, /api/venue-hours) and the fleet page (/).'),
        host: z.string().min(1).default('127.0.0.1').describe('Address to listen on. Loopback by default: the endpoints have no login, so expose them through a proxy that has one.'),
        port: z.number().int().min(0).max(65535).default(9480).describe('TCP port; 0 takes any free port (the collector logs which). Each collector on one host needs its own.'),
      })
      .strict()
      .prefault({})
      .describe('The collector\'s HTTP endpoints for operations.'),
  })
  .strict()
  .refine((c) => c.registry !== undefined || c.acceptUnsigned, {
    message: 'required: the registry of gateway records that batches are verified against (or acceptUnsigned: true, for development only)',
    path: ['registry'],
  })
  .describe('The backend side: `vgw collect`.');

/** A Unix socket path longer than this does not fit in sockaddr_un. */
const MAX_SOCKET_PATH_BYTES = 107;

const configObject = z
  .object({
    gateway: z
      .object({
        id: id('gateway id').describe('Gateway id, unique per unit (part of its topics).'),
        venue: id('venue id').describe('Venue id the unit is mounted at.'),
      })
      .strict()
      .optional()
      .describe('Who this gateway is; required by `vgw run`.'),
    secretsFile: z
      .string()
      .min(1, 'must name a file, e.g. "/etc/venue-gateway/secrets.json"')
      .optional()
      .describe('JSON file (mode 0600) with the gateway\'s Ed25519 signing key, beacon identity key and broker password; `vgw provision` writes it. Required by `vgw run`.'),
    broker: brokerSchema,
    topicPrefix: z
      .string()
      .regex(/^[^#+\s]+$/, 'must not contain MQTT wildcards (+ #) or spaces')
      .regex(/^[^$]/, 'must not start with "$": brokers keep those topics for themselves ($SYS, $share)')
      .default('vgw/v3')
      .describe('Prefix of every topic; the version is part of it.'),
    radio: radioSchema,
    beacon: beaconSchema,
    bluetrace: bluetraceSchema,
    clock: clockSchema,
    health: healthSchema,
    encounters: encountersSchema,
    store: storeSchema,
    uplink: uplinkSchema,
    collector: collectorSchema.optional(),
    remote: z
      .object({
        healthGateS: z
          .number()
          .int('must be whole seconds')
          .min(10, 'must be at least 10: a unit needs a few seconds to connect and commit')
          .max(3600, 'at most 3600 (an hour)')
          .default(180)
          .describe('A configuration from the backend must pass the health gate (broker connected, radio on, a store commit) within this many seconds after the restart into it, or the unit rolls back to the last good one by itself.'),
      })
      .strict()
      .prefault({})
      .describe('Configuration from the backend (docs/protocol.md, "Configuration"): layered over this file, signed, health-gated.'),
    update: z
      .object({
        root: z
          .string()
          .min(1)
          .default('/opt/venue-gateway')
          .describe('The install root: releases side by side under releases/<version>, the `current` and `committed` links, and update-state.json. The service starts current/dist/cli/main.js.'),
        releaseKeys: z
          .array(hexKey(32, 'release public key'))
          .max(8, 'at most 8 release keys')
          .default([])
          .describe('Release public keys this unit trusts (`vgw release key --show <file>`): a release must be signed by one. Empty: the unit takes no release over the air. Not the backend key: whoever may steer units may not ship them code.'),
        ca: z
          .string()
          .min(1)
          .optional()
          .describe("PEM file of the CA that signs the release server's HTTPS certificate (default: the system's CAs)."),
        healthGateS: z
          .number()
          .int('must be whole seconds')
          .min(10, 'must be at least 10: a unit needs a few seconds to connect and commit')
          .max(3600, 'at most 3600 (an hour)')
          .default(300)
          .describe('A new release must pass the health gate (READY, broker connected, radio on, a store commit) within this many seconds of its start, or the unit returns to the committed release by itself and never tries that version again.'),
      })
      .strict()
      .prefault({})
      .describe('Software updates (docs/operating.md, "Releases"): signed releases, installed side by side, health-gated.'),
    log: z
      .object({ level: z.enum([...LOG_LEVELS, 'silent']).default('info').describe('Log level.') })
      .strict()
      .prefault({})
      .describe('Logging (pino JSON on stdout).'),
  })
  .strict();

export const configSchema = configObject.superRefine((c, ctx) => {
  const socket = controlSocketPath(c);
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES) {
    ctx.addIssue({
      code: 'custom',
      path: c.health.controlSocket ? ['health', 'controlSocket'] : ['store', 'path'],
      message: `the control socket ${socket} is ${Buffer.byteLength(socket)} bytes, longer than the ${MAX_SOCKET_PATH_BYTES} a Unix socket path may have: set health.controlSocket to a shorter path`,
    });
  }
});

/**
 * `health.controlSocket`, or beside the database: the daemon and a technician's
 * `vgw status -c config` derive the same path from the config alone. A socket is a directory
 * entry; nothing is written to it.
 */
export function controlSocketPath(config: Pick<Config, 'health' | 'store'>): string {
  return config.health.controlSocket ?? besideDatabase(config, 'control.sock');
}

/** A file the unit keeps in its database's folder (the nonces, the temp IDs, the remote configuration's state). */
export function besideDatabase(config: Pick<Config, 'store'>, name: string): string {
  return join(dirname(resolve(config.store.path)), name);
}

export type Config = z.infer<typeof configObject>;

export class ConfigError extends Error {
  constructor(readonly problems: string[], source: string) {
    super(`invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    return `${path === '(top level)' ? '' : path + ': '}unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}: remove them or check the spelling (see \`vgw config docs\`)`;
  }
  return `${path}: ${issue.message}`;
}

export function parseConfig(input: unknown, source = '(inline)'): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue), source);
  return result.data;
}

/** Markdown reference of every key, its default and description, generated from the schema. */
