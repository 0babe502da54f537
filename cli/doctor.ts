// `vgw doctor`: one line per check, and for each failure the fix. Where the daemon is running
// it is asked (its control socket) rather than disturbed: a serial controller or a broker
// session it holds must not be opened a second time.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import mqtt from 'mqtt';
import { createClockMonitor } from '../daemon/clock/index.js';
import { brokerOptions } from '../core/mqtt/index.js';
import { Config, ConfigError, loadConfig, requireGateway, requireSecretsFile } from '../core/config/index.js';
import { controlSocketPath, readControlSocket } from '../daemon/health/index.js';
import { effectiveConfig } from '../daemon/remote-config.js';
import { renewedInUse } from '../daemon/tls-renewal.js';
import { describeStorage } from '../daemon/health/storage.js';
import { parseTransport, TransportSpec } from '../daemon/radio/index.js';
import { certificateNotAfter, expiryOf, expiryWarning, loadSecrets, registrationSchema, Secrets, signingKeyFromSeed } from '../core/trust/index.js';
import { oneShotConnectOptions, tlsOptions } from '../core/mqtt/index.js';
import { fail } from './errors.js';
import { diskUsage } from './status.js';
import type { DoctorCheck, LocalStatus } from '../core/wire/index.js';

/** One check, as `--json` prints it and a doctor command's answer carries it. */
export type CheckResult = DoctorCheck;

type Status = LocalStatus | null;
const pass = (check: string, detail: string): CheckResult => ({ check, ok: true, detail });
const failed = (check: string, detail: string, fix: string): CheckResult => ({ check, ok: false, detail, fix });
const daemonPid = (s: Status) => s?.local.pid ?? null;

function checkConfig(path: string): { result: CheckResult; config: Config | null } {
  try {
    const file = loadConfig(path);
    requireGateway(file);
    requireSecretsFile(file);
    // What the unit runs: the file, with the backend's settings over it when it took some.
    const { config, remote, overrides } = effectiveConfig(file);
    const laid = remote === null ? '' : `; the backend's configuration version ${remote} is laid over it${overrides.length ? `, setting ${overrides.join(', ')} over this file's` : ''}`;
    return { result: pass('config', `${path} is valid${laid}`), config };
  } catch (err) {
    const detail = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
    return { result: failed('config', detail, `edit ${path} (\`vgw config docs\` lists every key), or run \`vgw provision\``), config: null };
  }
}

/** The secrets are loaded once, here; the broker check takes its password from them. */
function checkSecrets(config: Config, configPath: string): { result: CheckResult; secrets: Secrets | null } {
  let secrets: Secrets | null = null;
  const result = ((): CheckResult => {
    try {
      secrets = loadSecrets(config.secretsFile!);
      const publicKey = signingKeyFromSeed(Buffer.from(secrets.signingKey, 'hex')).publicKey.toString('hex');
      const recordPath = join(dirname(resolve(configPath)), 'registration.json');
      if (existsSync(recordPath)) {
        const record = registrationSchema.safeParse(JSON.parse(readFileSync(recordPath, 'utf8')));
        if (record.success && record.data.signingKey !== publicKey) {
          return failed('secrets', `the signing key does not match ${recordPath}: the backend will refuse every batch`, 'send the backend the registration record of these keys, or restore the matching secrets file');
        }
      }
      if (config.beacon.enabled && !secrets.beaconIdentityKey && !config.beacon.identityKey) {
        return failed('secrets', 'the beacon is enabled but has no identity key', 'run `vgw provision --force` (new keys), or set beacon.enabled to false');
      }
      return pass('secrets', `${config.secretsFile} is private; signing key ${publicKey.slice(0, 16)}…`);
    } catch (err) {
      return failed('secrets', (err as Error).message, 'run `vgw provision` to make the secrets file, then `chmod 600` it and make the service user its owner');
    }
  })();
  return { result, secrets };
}

function checkTls(config: Config): CheckResult {
  const b = config.broker;
  if (!b.url.startsWith('mqtts') && !b.url.startsWith('wss')) {
    return b.cert ? failed('tls', `broker.cert is set but ${b.url} is not a TLS URL`, 'use mqtts://host:8883') : pass('tls', 'not used (plain MQTT: only for a broker on this unit or a trusted network)');
  }
  try {
    tlsOptions({ ...b, clientId: 'doctor' });
    if (!b.cert) return pass('tls', 'server certificate checked against ' + (b.ca ?? "the system's CAs") + '; no client certificate');
    // The one the unit connects with: renewed over MQTT (tls-renewal.json beside the database), or the file's.
    const renewed = renewedInUse(config);
    const which = renewed ? `the ${renewed.use === 'trial' ? 'renewed certificate on trial' : 'certificate renewed over MQTT'}` : 'client certificate';
    const cert = new X509Certificate(renewed?.certPem ?? readFileSync(b.cert));
    const now = Date.now();
    if (Date.parse(cert.validTo) < now) return failed('tls', `${which} expired ${cert.validTo}`, 'issue a new one (provisioning/tls/certs.sh client DIR <gateway id>)');
    if (Date.parse(cert.validFrom) > now) return failed('tls', `client certificate valid only from ${cert.validFrom}: is the clock right?`, 'synchronise the clock (timedatectl set-ntp true)');
    if (!cert.checkPrivateKey(createPrivateKey(renewed?.keyPem ?? readFileSync(b.key!)))) return failed('tls', 'broker.key is not the key of broker.cert', 'copy the key issued with that certificate');
    const cn = /CN=([^\n,]+)/.exec(cert.subject)?.[1];
    if (cn !== config.gateway!.id) return failed('tls', `client certificate CN "${cn}" is not the gateway id "${config.gateway!.id}": the broker's ACL will refuse its topics`, 'issue a certificate with CN = the gateway id');
    const own = expiryOf('broker.cert', Date.parse(cert.validTo), now);
    const due = expiryWarning([own, ...(b.ca ? [expiryOf('broker.ca', certificateNotAfter(readFileSync(b.ca)), now)] : [])]);
    if (due) return failed('tls', due, 'issue a new certificate for this unit before then (provisioning/tls/certs.sh client DIR <gateway id>) and install it as broker.cert/broker.key');
    return pass('tls', `${which} CN ${cn}, valid ${own.daysLeft} more days${b.renewBeforeDays > 0 ? ` (renewed over MQTT from ${b.renewBeforeDays} days before)` : ''}`);
  } catch (err) {
    return failed('tls', (err as Error).message, 'fix the file named, or run `vgw provision` again with --ca/--cert/--key');
  }
}

function probeStream(t: TransportSpec): Promise<string | null> {
  if (t.kind === 'hci') {
    return Promise.resolve(existsSync(`/sys/class/bluetooth/hci${t.devId}`) ? null : `no adapter hci${t.devId} in /sys/class/bluetooth (this kernel has ${existsSync('/sys/class/bluetooth') ? 'Bluetooth but not that adapter' : 'no Bluetooth'})`);
  }
  if (t.kind === 'serial') {
    try {
      accessSync(t.path, constants.R_OK | constants.W_OK);
      return Promise.resolve(null);
    } catch (err) {
      return Promise.resolve(`${t.path}: ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  return new Promise((done) => {
    const s = t.kind === 'unix' ? createConnection(t.path) : createConnection({ host: t.host, port: t.port });
    const timer = setTimeout(() => {
      s.destroy();
      done('no answer within 3 s');
    }, 3000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      done(null);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      done(`${err.code ?? err.message}`);
    });
  });
}

async function checkController(config: Config, status: Status): Promise<CheckResult> {
  if (config.radio.kind === 'simulated') return pass('controller', 'simulated radio (no controller)');
  const transport = config.radio.scanner.transport;
  if (status) {
    const radio = status.counters.radio;
    if (radio.state === 'poweredOn') return pass('controller', `${transport} powered on, ${radio.reports ?? 0} reports (asked the running daemon)`);
    return failed('controller', `${transport} is ${radio.state}${radio.error ? `: ${radio.error}` : ''} (the daemon keeps retrying)`, 'check the adapter is plugged in (`ls /sys/class/bluetooth`, `dmesg | grep -i blue`) and radio.scanner.transport');
  }
  const problem = await probeStream(parseTransport(transport));
  if (problem === null) return pass('controller', `${transport} reachable`);
  return failed('controller', `${transport}: ${problem}`, 'plug the adapter in or fix radio.scanner.transport (hci:N, serial:/dev/ttyACM0, unix:/path, tcp:host:port)');
}

/** CAP_NET_ADMIN is bit 12 and CAP_NET_RAW bit 13 of CapEff. */
function netCaps(pid: number | 'self'): boolean | null {
  try {
    const hex = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    if (!hex) return null;
    const caps = BigInt('0x' + hex);
    return (caps & (1n << 12n)) !== 0n && (caps & (1n << 13n)) !== 0n;
  } catch {
    return null;
  }
}

function checkPermissions(config: Config, status: Status): CheckResult {
  const dataDir = dirname(resolve(config.store.path));
  try {
    accessSync(existsSync(dataDir) ? dataDir : dirname(dataDir), constants.W_OK);
  } catch {
    return failed('permissions', `cannot write ${dataDir}`, `chown the service user ${dataDir} (install.sh does), or run doctor as that user`);
  }
  const needsCaps = config.radio.kind === 'hci' && config.radio.scanner.transport.startsWith('hci:');
  if (!needsCaps) return pass('permissions', `${dataDir} writable; the transport needs no capabilities`);
  const pid = daemonPid(status);
  const has = netCaps(pid ?? 'self');
  const who = pid ? `the daemon (pid ${pid})` : 'this process';
  if (has) return pass('permissions', `${dataDir} writable; ${who} has CAP_NET_RAW and CAP_NET_ADMIN`);
  return failed('permissions', `${who} lacks CAP_NET_RAW/CAP_NET_ADMIN for the kernel HCI socket`, 'run it from the systemd unit (AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN), or as root');
}

function checkClock(config: Config): CheckResult {
  const state = createClockMonitor(config.clock.syncCheck)();
  if (state.synchronized) return pass('clock', `synchronised (${state.source})`);
  return failed(
    'clock',
    `not synchronised (${state.source})${config.beacon.enabled && config.beacon.unsyncedClock === 'pause' ? ': the beacon is paused' : ''}; encounters are flagged`,
    'enable NTP (`sudo timedatectl set-ntp true`), check the network reaches an NTP server, or install chrony',
  );
}

async function checkBroker(config: Config, secrets: Secrets | null, status: Status, timeoutMs: number): Promise<CheckResult> {
  if (status) {
    const uplink = status.counters.uplink;
    if (uplink.connected) return pass('broker', `${config.broker.url}: the running daemon is connected`);
    return failed('broker', `${config.broker.url}: the running daemon is not connected (${uplink.connects} connects so far)`, 'check the network, broker.url and credentials; batches wait in the outbox meanwhile');
  }
  try {
    // Its own client id even when the config names one: taking the daemon's would end its session.
    const clientId = `vgw-doctor-${process.pid}`;
    const renewed = renewedInUse(config);
    const broker = { ...brokerOptions(config, clientId, secrets ?? undefined), clientId, connectTimeoutS: timeoutMs / 1000, ...(renewed ? { renewed } : {}) };
    const client = await mqtt.connectAsync(config.broker.url, oneShotConnectOptions(broker));
    await client.endAsync();
    return pass('broker', `${config.broker.url}: connected${config.broker.cert ? ' with the client certificate' : ''}${config.broker.username ? ` as ${config.broker.username}` : ''}`);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const msg = e.message ?? String(err);
    if (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'EHOSTUNREACH' || /timeout/i.test(msg)) {
      return failed('broker', `${config.broker.url}: ${msg}`, 'check broker.url, DNS, the network and the firewall (8883 for mqtts)');
    }
    if (/certificate|self.signed|altname|SSL|TLS/i.test(msg)) return failed('broker', `TLS: ${msg}`, "check broker.ca is the CA of the broker's certificate, and that certificate names the host in broker.url");
    if (/authori|bad user|password|Connection refused/i.test(msg)) return failed('broker', `refused: ${msg}`, "check the client certificate (its CN must be the gateway id) or the user name and password; and the broker's ACL");
    return failed('broker', msg, 'check broker settings (`vgw config docs`)');
  }
}

/** The venue's BlueTrace temp ID supply, as the running daemon holds it. */
export function checkTempIds(config: Config, status: Status): CheckResult | null {
  if (!config.bluetrace.enabled) return null;
  const bt = status?.counters.bluetrace;
  if (!bt || bt.state !== 'enabled') return failed('bluetrace', 'no running daemon to ask about the temp ID supply', 'start the daemon, then run `vgw doctor` again');
  const t = bt.tempIds;
  const until = t.lastsUntil ? `, the last expires ${new Date(t.lastsUntil).toISOString()}` : '';
  const why = t.lastError ? ` (the backend said: ${t.lastError})` : '';
  if (t.state === 'ok') return pass('bluetrace', `${t.left} temp IDs left${until}`);
  if (t.state === 'low') return failed('bluetrace', `only ${t.left} temp IDs left${until}; asked the backend ${t.requests} times, ${t.responses} answers${why}`, 'check the broker connection and that a backend with collector.bluetraceKeyFile runs');
  if (t.state === 'clockUnsynced') return failed('bluetrace', 'the clock is not synchronised: which temp ID is valid cannot be told, both roles are paused', 'fix the clock (see the clock check), or set bluetrace.tempIds.unsyncedClock to "use"');
  return failed(
    'bluetrace',
    `no valid temp ID: both BlueTrace roles are stopped; ${t.requests} requests, ${t.responses} answers${why}`,
    'check the broker connection, that a backend with collector.bluetraceKeyFile runs, and that this gateway\'s registration record has a bluetraceUid',
  );
}

function checkDisk(config: Config): CheckResult {
  try {
    const d = diskUsage(config.store.path);
    const free = d.freeBytes / 1e6;
    const detail = `${free.toFixed(0)} MB free of ${(d.totalBytes / 1e6).toFixed(0)} MB; database ${(d.databaseBytes / 1e6).toFixed(1)} MB`;
    if (free < 200 || d.freeBytes < d.totalBytes * 0.05) return failed('disk', detail, 'free space on that filesystem (journal: `journalctl --vacuum-size=50M`, apt: `apt-get clean`); encounters wait in memory while the disk is full');
    return pass('disk', detail);
  } catch (err) {
    return failed('disk', (err as Error).message, `create ${dirname(resolve(config.store.path))} (install.sh does)`);
  }
}

/**
 * Names the storage under the database. Never a failure (most units run on SD cards), but an
 * SD card is said to be one: a power cut is safe only on a card that honours flushes.
 */
function checkStorage(config: Config): CheckResult {
  try {
    const info = describeStorage(statSync(dirname(resolve(config.store.path))).dev);
    const note = info.sdCard ? '; a nightly power cut is safe only if the card honours flushes: an industrial card or a UPS HAT (README, "Power cuts")' : '';
    return pass('storage', info.detail + note);
  } catch (err) {
    return pass('storage', `not identified: ${(err as Error).message}`);
  }
}

/** What a technician does about each thing the store found and handled. */
const EVENT_FIXES: Record<string, string> = {
  corrupt: 'the unit carries on in a new database; ask the backend which batches it holds (unacknowledged ones that could not be salvaged are lost), keep the .corrupt- file for forensics, and replace the SD card if it happens again',
  lost: 'the unit carries on in a new database; find out who or what removed the file (a full or failing SD card?)',
  replaced: 'the database file is not the one the unit last ran on; if that was not intended, check who replaced it',
  rolled_back: 'the database lost recent commits (a restored copy, or a lost WAL): a card that ignores flushes can do this; use an industrial card or a UPS HAT',
  meta_rebuilt: 'nothing to do unless it happens again (then suspect the SD card)',
  unacked_purged: 'encounters waited longer than store.unackedMaxDays for the backend: check the broker, the collector and this unit\'s registration',
  lineage_unreadable: 'the file beside the database that names it could not be read, so a lost or replaced database would go unnoticed once: check the SD card (it is rewritten at every start)',
};

/** The store's latest event of the past week, read from the database. */
function recentEvent(db: Database.Database): { at: number; kind: string; detail: string } | undefined {
  try {
    const e = db.prepare('SELECT at, kind, detail FROM events ORDER BY rowid DESC LIMIT 1').get() as { at: number; kind: string; detail: string } | undefined;
    return e && Date.now() - e.at < 7 * 86_400_000 ? e : undefined;
  } catch {
    return undefined; // a database from before events were kept
  }
}

function checkDatabase(config: Config): CheckResult {
  if (!existsSync(config.store.path)) return pass('database', `${config.store.path} not created yet (the daemon creates it)`);
  try {
    const db = new Database(config.store.path, { readonly: true, fileMustExist: true });
    try {
      const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
      const version = db.pragma('user_version', { simple: true }) as number;
      if (rows.length === 1 && rows[0].integrity_check === 'ok') {
        const event = recentEvent(db);
        if (event) return failed('database', `${event.kind} on ${new Date(event.at).toISOString()}: ${event.detail}`, EVENT_FIXES[event.kind] ?? 'see the log for what happened');
        return pass('database', `${config.store.path}: integrity ok, schema ${version}`);
      }
      return failed('database', `integrity_check: ${rows.slice(0, 3).map((r) => r.integrity_check).join('; ')}`, 'stop the daemon, move the file aside (the backend keeps everything acknowledged) and start again');
    } finally {
      db.close();
    }
  } catch (err) {
    return failed('database', (err as Error).message, 'check the file permissions; if it is corrupt, stop the daemon and move the file aside');
  }
}

export async function runDoctor(configPath: string, timeoutMs = 5000): Promise<CheckResult[]> {
  const { result, config } = checkConfig(configPath);
  if (!config) return [result];
  const socket = controlSocketPath(config);
  const status = await readControlSocket(socket, 2000);
  const daemon = status
    ? pass('daemon', `running (pid ${String(daemonPid(status))}), ${status.counters.health.ready ? 'ready' : 'not ready yet'}`)
    : failed('daemon', `no daemon answers on ${socket}`, 'start it: `sudo systemctl enable --now venue-gateway` (logs: `journalctl -u venue-gateway`)');
  const { result: secretsResult, secrets } = checkSecrets(config, configPath);
  return [
    result,
    secretsResult,
    daemon,
    await checkController(config, status),
    checkPermissions(config, status),
    checkClock(config),
    checkTls(config),
    await checkBroker(config, secrets, status, timeoutMs),
    ...[checkTempIds(config, status)].filter((c): c is CheckResult => c !== null),
    checkDisk(config),
    checkStorage(config),
    checkDatabase(config),
  ];
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('check the unit: config, secrets, daemon, controller, permissions, clock, TLS, broker, BlueTrace temp IDs, disk, storage, database; a fix for each failure')
    .requiredOption('-c, --config <file>', "the unit's config")
    .option('--timeout <s>', 'seconds to wait for the broker', '5')
    .option('--json', 'print the checks as a JSON array')
    .addHelpText('after', '\nExit codes: 0 every check passed, 1 some failed, 2 bad arguments.\nExample:\n  sudo vgw doctor -c /etc/venue-gateway/config.json')
    .action(async (opts: { config: string; timeout: string; json?: boolean }) => {
      try {
        const results = await runDoctor(opts.config, (Number(opts.timeout) || 5) * 1000);
        if (opts.json) process.stdout.write(JSON.stringify(results) + '\n');
        else {
          for (const r of results) {
            process.stdout.write(`${r.ok ? '✓' : '✗'} ${r.check.padEnd(12)}${r.detail}\n`);
            if (!r.ok) process.stdout.write(`  ${''.padEnd(12)}fix: ${r.fix}\n`);
          }
        }
        process.exit(results.every((r) => r.ok) ? 0 : 1);
      } catch (err) {
        fail(err);
      }
    });
}
