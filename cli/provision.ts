// `vgw provision`: turns a bare unit into a configured one. Asks (or takes flags) for who it is
// and where its broker is, makes its keys, writes config and secrets, and prints what the
// backend needs (the registration record) and a QR code of the venue's check-in fallback.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import qrcode from 'qrcode-terminal';
import { parseConfig } from '../core/config/index.js';
import { parseTransport } from '../daemon/radio/index.js';
import { isHex, NAME_PATTERN, NAME_RULE } from '../core/identifiers/index.js';
import { newIdentity } from '../core/trust/index.js';
import { fail, UsageError } from './errors.js';
import { Check, Prompter } from './prompt.js';

const checkId: Check = (v) => (NAME_PATTERN.test(v) ? null : `use ${NAME_RULE}`);
const checkUrl: Check = (v) => (/^(mqtt|mqtts|ws|wss):\/\/[^\s/]+/.test(v) ? null : 'give a URL such as mqtts://broker.example.org:8883');
const checkFile: Check = (v) => (v === '' || existsSync(v) ? null : `no file at ${v}: copy it onto the unit first, or leave blank`);
const checkTransport: Check = (v) => {
  if (v === 'off') return null;
  try {
    parseTransport(v);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
};
const checkExponent: Check = (v) => (/^\d+$/.test(v) && Number(v) <= 15 ? null : 'a whole number from 0 to 15 (10: a new EID about every 17 minutes)');
const checkHex32: Check = (v) => (v === '' || isHex(v, 32) ? null : "64 hex digits (the resolver's X25519 public key), or blank for none");
const checkCheckinUrl: Check = (v) => (/^https?:\/\/\S+$/.test(v) ? null : 'an http(s) URL; {venue} is replaced by the venue id');

interface Field {
  key: keyof ProvisionOptions;
  question: string;
  check: Check;
  default?: (o: ProvisionOptions) => string | undefined;
  /** Asked only when this returns true (e.g. the key only when a certificate was given); `required` then applies. */
  when?: (o: ProvisionOptions) => boolean;
  required?: boolean;
  secret?: boolean;
}

export interface ProvisionOptions {
  gateway?: string;
  venue?: string;
  broker?: string;
  ca?: string;
  cert?: string;
  key?: string;
  username?: string;
  password?: string;
  scanner?: string;
  beacon?: string;
  exponent?: string;
  resolverPublicKey?: string;
  checkinUrl?: string;
  backendKey?: string;
  releaseKey?: string;
  configDir: string;
  dataDir: string;
  owner?: string;
  nonInteractive?: boolean;
  force?: boolean;
  json?: boolean;
}

const FIELDS: Field[] = [
  { key: 'gateway', question: 'Gateway id (unique per unit)', check: checkId, required: true },
  { key: 'venue', question: 'Venue id', check: checkId, required: true },
  { key: 'broker', question: 'Broker URL', check: checkUrl, required: true, default: () => 'mqtts://broker.example.org:8883' },
  { key: 'ca', question: "Broker CA certificate file (blank: the system's CAs)", check: checkFile, when: (o) => o.broker?.startsWith('mqtts') === true },
  { key: 'cert', question: 'Client certificate file for mutual TLS (blank: none)', check: checkFile, when: (o) => o.broker?.startsWith('mqtts') === true },
  { key: 'key', question: 'Client key file', check: (v) => (v === '' ? 'a client certificate needs its key file' : checkFile(v)), when: (o) => !!o.cert, required: true },
  { key: 'username', question: 'Broker user name (blank: none)', check: () => null },
  { key: 'password', question: 'Broker password', check: (v) => (v === '' ? 'a user name needs a password' : null), when: (o) => !!o.username, required: true, secret: true },
  { key: 'scanner', question: 'Scanning controller (hci:N, serial:/dev/ttyACM0[:baud], unix:/path, tcp:host:port)', check: checkTransport, default: () => 'hci:0' },
  { key: 'beacon', question: 'Beacon controller ("off": no venue beacon)', check: checkTransport, default: () => 'hci:1' },
  { key: 'exponent', question: 'Beacon rotation exponent K (new EID every 2^K s)', check: checkExponent, default: () => '10', when: (o) => o.beacon !== 'off' },
  { key: 'resolverPublicKey', question: "Resolver's X25519 public key for EID registration (blank: a random identity key)", check: checkHex32, when: (o) => o.beacon !== 'off' },
  { key: 'backendKey', question: "Backend public key (64 hex digits: `vgw backend-key` prints it; the unit acts only on what it signs)", check: (v) => (isHex(v, 32) ? null : '64 hex digits, the public key `vgw backend-key` prints'), required: true },
  {
    key: 'releaseKey', question: 'Release public key for updates over the air (blank: none; `vgw release key --show` prints it)',
    check: (v) => (v === '' || isHex(v, 32) ? null : '64 hex digits, the public key `vgw release key --show` prints, or blank'),
  },
  { key: 'checkinUrl', question: 'Check-in URL for phones without BLE ({venue} = venue id)', check: checkCheckinUrl, default: () => 'https://checkin.example.org/venue/{venue}' },
];

/** Fills what flags left open: prompts, or (non-interactive) defaults and errors naming the flag. */
async function complete(o: ProvisionOptions): Promise<void> {
  const flag = (k: string) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
  const prompter = o.nonInteractive ? null : new Prompter();
  try {
    for (const f of FIELDS) {
      if (f.when && !f.when(o)) continue;
      const given = o[f.key] as string | undefined;
      if (given !== undefined) {
        const problem = f.check(given);
        if (problem) throw new UsageError(`${flag(f.key)}: "${f.secret ? '****' : given}": ${problem}`);
        continue;
      }
      if (prompter) {
        (o[f.key] as string) = await prompter.ask(f.question, { default: f.default?.(o), check: f.check, secret: f.secret });
      } else if (f.default) {
        (o[f.key] as string) = f.default(o)!;
      } else if (f.required) {
        throw new UsageError(`${flag(f.key)} is required with --non-interactive (${f.question.toLowerCase()})`);
      }
    }
  } finally {
    prompter?.close();
  }
}

function ownerIds(user: string): { uid: number; gid: number } {
  const id = (flag: string) => spawnSync('id', [flag, user], { encoding: 'utf8' });
  const u = id('-u');
  const g = id('-g');
  if (u.status !== 0 || g.status !== 0) throw new UsageError(`--owner: no user "${user}" on this machine (provisioning/install.sh creates venue-gateway)`);
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function writeFile(path: string, text: string, mode: number, owner: { uid: number; gid: number } | null): void {
  writeFileSync(path, text, { mode });
  chmodSync(path, mode); // writeFileSync keeps the mode of a file that already exists
  if (owner) chownSync(path, owner.uid, owner.gid);
}

export async function provision(o: ProvisionOptions): Promise<Record<string, unknown>> {
  await complete(o);
  const configFile = join(o.configDir, 'config.json');
  const secretsFile = join(o.configDir, 'secrets.json');
  const registrationFile = join(o.configDir, 'registration.json');
  if (existsSync(secretsFile) && !o.force) {
    throw new UsageError(
      `${secretsFile} exists: this unit is provisioned. Re-provisioning makes new keys, and the backend must get the new registration record; pass --force to do it`,
    );
  }
  const owner = o.owner ? ownerIds(o.owner) : null;
  const beaconOn = o.beacon !== 'off';
  const exponent = Number(o.exponent ?? 10);
  const resolverPublicKey = o.resolverPublicKey ? Buffer.from(o.resolverPublicKey, 'hex') : undefined;
  const { secrets, record } = newIdentity({
    gateway: o.gateway!, venue: o.venue!, brokerPassword: o.password || undefined, backendKeys: [Buffer.from(o.backendKey!, 'hex')],
    beacon: { exponent, epochS: 0, txPowerDbm: -20, resolverPublicKey },
  });
  if (!beaconOn) delete record.beacon;
  const config = {
    gateway: { id: o.gateway, venue: o.venue },
    secretsFile,
    broker: {
      url: o.broker,
      ...(o.username ? { username: o.username } : {}),
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.cert ? { cert: o.cert, key: o.key } : {}),
    },
    radio: { kind: 'hci', scanner: { transport: o.scanner, deviceId: Number(/^hci:(\d+)$/.exec(o.scanner!)?.[1] ?? 0) } },
    beacon: beaconOn ? { enabled: true, transport: o.beacon, deviceId: Number(/^hci:(\d+)$/.exec(o.beacon!)?.[1] ?? 1), exponent, epochS: 0 } : { enabled: false },
    store: { path: join(o.dataDir, 'gateway.db') },
    // Releases signed by this key only (docs/operating.md, "Releases"); none: updated by hand.
    ...(o.releaseKey ? { update: { releaseKeys: [o.releaseKey.toLowerCase()] } } : {}),
  };
  parseConfig(config, 'the provisioned config'); // what is written always passes `vgw config check`
  mkdirSync(o.configDir, { recursive: true, mode: 0o750 });
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  if (owner) chownSync(o.dataDir, owner.uid, owner.gid);
  writeFile(secretsFile, JSON.stringify(secrets, null, 2) + '\n', 0o600, owner);
  writeFile(configFile, JSON.stringify(config, null, 2) + '\n', 0o640, owner);
  // Without a resolver key the record carries the identity key itself: then it is a secret too.
  const recordIsSecret = record.beacon?.identityKey !== undefined;
  writeFile(registrationFile, JSON.stringify(record, null, 2) + '\n', recordIsSecret ? 0o600 : 0o644, owner);
  const checkinUrl = o.checkinUrl!.replaceAll('{venue}', encodeURIComponent(o.venue!));
  return { configFile, secretsFile, registrationFile, registration: record, registrationIsSecret: recordIsSecret, checkinUrl };
}

export function provisionCommand(): Command {
  return new Command('provision')
    .description('set up this unit: ids, broker, keys; writes config and secrets, prints the registration record and a check-in QR code')
    .option('--gateway <id>', 'gateway id, unique per unit')
    .option('--venue <id>', 'venue id')
    .option('--broker <url>', 'broker URL, e.g. mqtts://broker.example.org:8883')
    .option('--ca <file>', "broker CA certificate (PEM)")
    .option('--cert <file>', 'client certificate for mutual TLS (PEM; its CN is the gateway id)')
    .option('--key <file>', 'client key (PEM)')
    .option('--username <name>', 'broker user name')
    .option('--password <secret>', 'broker password (stored in the secrets file, never in the config)')
    .option('--scanner <transport>', 'scanning controller: hci:N, serial:/dev/ttyACM0[:baud], unix:/path, tcp:host:port')
    .option('--beacon <transport>', 'beacon controller, or "off"')
    .option('--exponent <K>', 'beacon rotation exponent (0-15)')
    .option('--resolver-public-key <hex>', "resolver's X25519 public key: registers the beacon identity key per the Eddystone spec")
    .option('--backend-key <hex>', "the backend's public key (`vgw backend-key` prints it): acks, requests and temp-ID answers signed by it are all this unit acts on")
    .option('--release-key <hex>', 'the release public key (`vgw release key --show` prints it): the unit takes releases over the air signed by it (none: updated by hand)')
    .option('--checkin-url <url>', 'check-in URL for the QR code; {venue} becomes the venue id')
    .option('--config-dir <dir>', 'where config.json, secrets.json and registration.json go', '/etc/venue-gateway')
    .option('--data-dir <dir>', 'where the database goes', '/var/lib/venue-gateway')
    .option('--owner <user>', 'make the files owned by this user (the service user, venue-gateway)')
    .option('-y, --non-interactive', 'ask nothing: take flags and defaults, fail on anything missing')
    .option('--force', 'provision again over an existing secrets file (new keys)')
    .option('--json', 'print one JSON object (files, registration record, check-in URL) and no QR code')
    .addHelpText(
      'after',
      `
Without --non-interactive it asks for whatever the flags leave open, showing defaults in [brackets].
Exit codes: 0 provisioned, 1 failure (e.g. a file could not be written), 2 bad flags or answers, or already provisioned.

Examples:
  sudo vgw provision --owner venue-gateway
  sudo vgw provision -y --gateway gw-0042 --venue mall-01 --broker mqtts://broker.example.org:8883 \\
       --ca /etc/venue-gateway/tls/ca.crt --cert /etc/venue-gateway/tls/gw-0042.crt --key /etc/venue-gateway/tls/gw-0042.key \\
       --resolver-public-key <64 hex> --backend-key <64 hex> --owner venue-gateway --json`,
    )
    .action(async (opts: ProvisionOptions) => {
      try {
        const result = await provision(opts);
        if (opts.json) {
          process.stdout.write(JSON.stringify(result) + '\n');
          return;
        }
        const out = process.stdout;
        out.write(`\nProvisioned ${opts.gateway} at ${opts.venue}.\n  config        ${String(result.configFile)}\n  secrets       ${String(result.secretsFile)} (mode 0600)\n  registration  ${String(result.registrationFile)}\n\n`);
        out.write(`Registration record — send it to the backend (collector registry${result.registrationIsSecret ? '; it holds the beacon identity key: send it over a secure channel' : ''}):\n`);
        out.write(JSON.stringify(result.registration, null, 2) + '\n\n');
        out.write(`Check-in fallback for phones without BLE: ${String(result.checkinUrl)}\n`);
        qrcode.generate(String(result.checkinUrl), { small: true }, (qr) => out.write(qr + '\n'));
        out.write(`\nNext: sudo systemctl enable --now venue-gateway && vgw doctor -c ${String(result.configFile)}\n`);
      } catch (err) {
        fail(err);
      }
    });
}
