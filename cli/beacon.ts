import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { z } from 'zod';
import { requestStatus } from '../collector/pull.js';
import { defaultCollectorClientId } from '../core/mqtt/index.js';
import { loadConfig, requireGateway } from '../core/config/index.js';
import { computeEid, identityKeyForResolver, MAX_ROTATION_EXPONENT, quantumStart, RegisteredBeacon, resolveEid } from '../core/protocols/index.js';
import { controlSocketPath, readControlSocket } from '../daemon/health/index.js';
import { signingPublicKeyInUse } from '../daemon/signing-key.js';
import { hexKey, isHex } from '../core/identifiers/index.js';
import { loadBackendKeySeed, loadSecrets, parseRegistry } from '../core/trust/index.js';
import { ControlSigner } from '../core/wire/index.js';
import { EXIT, fail, parseTime, UsageError } from './errors.js';

const hexBytes = (bytes: number) => hexKey(bytes, `${bytes} bytes`);

const registrySchema = z.array(
  z
    .object({
      venue: z.string().min(1, 'must name the venue'),
      gateway: z.string().min(1).optional(),
      identityKey: hexBytes(16),
      exponent: z.number().int().min(0).max(MAX_ROTATION_EXPONENT, `must be at most ${MAX_ROTATION_EXPONENT}`),
      epoch: z.number().int().nonnegative().default(0),
    })
    .strict(),
);

/**
 * A registry is either the resolver's own list ({venue, identityKey, exponent}) or the
 * registration records `vgw provision` prints; records registered by ECDH need the resolver's
 * private key to derive their identity keys.
 */
export function loadBeaconRegistry(path: string, resolverPrivateKey?: Buffer): RegisteredBeacon[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`--registry: cannot read ${path} as JSON (${(err as Error).message})`);
  }
  const isRecord = (r: unknown) => typeof r === 'object' && r !== null && 'signingKey' in r;
  if (isRecord(json) || (Array.isArray(json) && json.length > 0 && json.every(isRecord))) {
    return parseRegistry(json, path).flatMap((r, i) => {
      if (!r.beacon) return [];
      let identityKey: Buffer;
      if (r.beacon.identityKey) identityKey = Buffer.from(r.beacon.identityKey, 'hex');
      else if (r.beacon.publicKey && resolverPrivateKey) identityKey = identityKeyForResolver(resolverPrivateKey, Buffer.from(r.beacon.publicKey, 'hex'));
      else throw new UsageError(`--registry: record ${i} (${r.gateway}) was registered with a resolver key: give --resolver-private-key`);
      return [{ venue: r.venue, gateway: r.gateway, identityKey, exponent: r.beacon.exponent, epoch: r.beacon.epoch }];
    });
  }
  const parsed = registrySchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UsageError(`--registry: ${path}: ${i.path.length ? `[${i.path.join('].')}` : 'top level'}: ${i.message} (expected an array of {venue, gateway?, identityKey, exponent, epoch?})`);
  }
  return parsed.data.map((b) => ({ ...b, identityKey: Buffer.from(b.identityKey, 'hex') }));
}

function integer(value: string, option: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`${option}: "${value}" must be a whole number from ${min} to ${max}`);
  return n;
}

export function beaconCommand(): Command {
  const cmd = new Command('beacon')
    .description('the venue beacon: Eddystone-EID computation and resolution')
    .addHelpText('after', '\nExamples:\n  sudo vgw beacon show -c /etc/venue-gateway/config.json\n  vgw beacon resolve --eid 4144413e45fefa58 --time 2026-11-22T10:00:00Z --registry registry.json');
  cmd
    .command('eid')
    .description('print the EID a beacon advertises at a given beacon time counter')
    .requiredOption('--identity-key <hex>', 'the 16-byte identity key, 32 hex digits')
    .option('--exponent <K>', 'rotation exponent: a new EID every 2^K seconds', '10')
    .requiredOption('--counter <N>', 'beacon time counter, seconds')
    .option('--json', 'also print the quantum start and the next rotation')
    .addHelpText('after', '\nExample:\n  vgw beacon eid --identity-key 0102030405060708090a111213141516 --exponent 10 --counter 2000')
    .action((opts: { identityKey: string; exponent: string; counter: string; json?: boolean }) => {
      try {
        if (!isHex(opts.identityKey, 16)) throw new UsageError('--identity-key: must be 32 hex digits (16 bytes)');
        const k = integer(opts.exponent, '--exponent', 0, MAX_ROTATION_EXPONENT);
        const counter = integer(opts.counter, '--counter', 0, 0xffffffff);
        const eid = computeEid(Buffer.from(opts.identityKey, 'hex'), k, counter).toString('hex');
        if (!opts.json) {
          process.stdout.write(eid + '\n');
          return;
        }
        const start = quantumStart(counter, k);
        process.stdout.write(JSON.stringify({ eid, exponent: k, counter, quantumStart: start, nextRotation: start + 2 ** k }) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  cmd
    .command('resolve')
    .description('find the venue whose beacon sent an EID seen at a given time (the backend side)')
    .requiredOption('--eid <hex>', 'the 8-byte EID, 16 hex digits')
    .requiredOption('--time <t>', 'when it was seen: ISO-8601 or unix ms')
    .requiredOption('--registry <file>', 'JSON array of {venue, gateway?, identityKey, exponent, epoch?}, or of registration records (vgw provision)')
    .option('--drift <quanta>', 'rotation periods of clock drift to tolerate either way', '2')
    .option('--resolver-private-key <hex>', "the resolver's X25519 private key, for registration records made with its public key")
    .addHelpText('after', '\nExit codes: 0 resolved (prints JSON), 1 no beacon matches, 2 bad arguments.\nExample:\n  vgw beacon resolve --eid 4144413e45fefa58 --time 2026-11-22T10:00:00Z --registry beacons.json')
    .action((opts: { eid: string; time: string; registry: string; drift: string; resolverPrivateKey?: string }) => {
      try {
        if (!isHex(opts.eid, 8)) throw new UsageError('--eid: must be 16 hex digits (8 bytes)');
        const seenAtS = Math.floor(parseTime(opts.time, '--time') / 1000);
        const drift = integer(opts.drift, '--drift', 0, 1000);
        if (opts.resolverPrivateKey !== undefined && !isHex(opts.resolverPrivateKey, 32)) throw new UsageError('--resolver-private-key: must be 64 hex digits (32 bytes)');
        const resolverKey = opts.resolverPrivateKey ? Buffer.from(opts.resolverPrivateKey, 'hex') : undefined;
        const match = resolveEid(Buffer.from(opts.eid, 'hex'), seenAtS, loadBeaconRegistry(opts.registry, resolverKey), drift);
        if (!match) {
          process.stderr.write(`vgw: no registered beacon sent ${opts.eid} within ±${drift} rotation periods of that time\n`);
          process.exit(EXIT.failure);
        }
        process.stdout.write(JSON.stringify(match) + '\n');
      } catch (err) {
        fail(err);
      }
    });
  cmd
    .command('show')
    .description("print the running unit's current EID and next rotation (asks the daemon on its control socket, else over MQTT)")
    .requiredOption('-c, --config <file>', "the unit's config (its broker and ids)")
    .option('--timeout <s>', 'seconds to wait for the answer', '10')
    .option('--control-key <file>', 'a backend key file, to ask over MQTT when the control socket is not there (a gateway answers only signed requests)')
    .option('--json', 'print the beacon status as JSON')
    .addHelpText('after', '\nExit codes: 0 ok, 1 failure, 2 bad arguments, 3 the daemon did not answer.\nExample:\n  vgw beacon show -c /etc/venue-gateway/config.json')
    .action(async (opts: { config: string; timeout: string; controlKey?: string; json?: boolean }) => {
      try {
        const config = loadConfig(opts.config);
        const gw = requireGateway(config);
        const timeoutS = Number(opts.timeout);
        if (!(timeoutS > 0)) throw new UsageError(`--timeout: "${opts.timeout}" is not a positive number of seconds`);
        // On the unit, the daemon's control socket; elsewhere (or when it is not there), MQTT.
        const overMqtt = () => {
          if (!opts.controlKey) throw new UsageError(`--control-key: the daemon's control socket ${controlSocketPath(config)} does not answer; to ask over MQTT, give a backend key file (gateways answer signed requests only)`);
          // The unit's own key checks that the answer is the unit's: the secrets file's, or the one a rotation moved it to.
          if (!config.secretsFile) throw new UsageError(`secretsFile: ${opts.config} names no secrets file, whose key checks that the answer is the unit's`);
          const gatewayKey = signingPublicKeyInUse(config, gw.id, loadSecrets(config.secretsFile).signingKey);
          return requestStatus({
            broker: { ...config.broker, clientId: `${defaultCollectorClientId()}-show-${process.pid}` },
            prefix: config.topicPrefix, venue: gw.venue, gateway: gw.id, timeoutMs: timeoutS * 1000, control: new ControlSigner(loadBackendKeySeed(opts.controlKey)), gatewayKeys: [gatewayKey],
          });
        };
        const status = (await readControlSocket(controlSocketPath(config), 2000)) ?? (await overMqtt());
        const beacon = ((status.counters as Record<string, unknown> | undefined)?.beacon ?? {}) as Record<string, unknown>;
        if (opts.json) {
          process.stdout.write(JSON.stringify(beacon) + '\n');
          return;
        }
        const next = typeof beacon.nextRotationAt === 'number' ? new Date(beacon.nextRotationAt).toISOString() : '-';
        process.stdout.write(`state ${String(beacon.state)}  eid ${String(beacon.eid ?? '-')}  next rotation ${next}  rotations ${String(beacon.rotations ?? 0)}  failures ${String(beacon.rotationFailures ?? 0)}\n`);
      } catch (err) {
        fail(err);
      }
    });
  return cmd;
}
