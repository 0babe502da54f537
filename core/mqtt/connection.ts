// The one owner of MQTT connection options, for the gateway's uplink, the collector, `vgw pull`
// and `vgw doctor`: MQTT 5, TLS material read once and checked, sessions that outlive outages
// for the long-lived clients and clean ones for a single request.
import mqtt from 'mqtt';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Config } from '../config/index.js';
import { assertPrivateFile, type Secrets, TrustError } from '../trust/index.js';
import { keepReconnecting, type ReconnectSchedule } from './reconnect.js';

export interface BrokerOptions {
  url: string;
  username?: string;
  password?: string;
  /** PEM file paths: the broker's CA, and this client's certificate and key for mutual TLS. */
  ca?: string;
  cert?: string;
  key?: string;
  /** A renewed certificate and key (PEM) the unit uses instead of the files `cert` and `key` name. */
  renewed?: { certPem: string; keyPem: string };
  clientId: string;
  keepaliveS: number;
  connectTimeoutS: number;
  /** The first reconnect waits up to this long (full jitter); the window doubles per failure… */
  reconnectS: number;
  /** …up to this (30 s when absent). */
  reconnectMaxS?: number;
}

/** The longest reconnect window when the options name none. */
export const DEFAULT_RECONNECT_MAX_S = 30;

/** The config's broker settings; a password in the secrets file wins over one in the config. */
export function brokerOptions(config: Config, defaultClientId: string, secrets?: Secrets): BrokerOptions {
  const password = secrets?.brokerPassword ?? config.broker.password;
  return { ...config.broker, clientId: config.broker.clientId ?? defaultClientId, ...(password !== undefined ? { password } : {}) };
}

export function defaultCollectorClientId(): string {
  return `vgw-collector-${hostname().replace(/[^A-Za-z0-9_-]/g, '')}`.slice(0, 64);
}

/** MQTT 5 session kept by the broker for a week of outage: subscriptions and QoS 1 queue survive. */
const SESSION_EXPIRY_S = 7 * 24 * 3600;

function readPem(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TrustError(`broker.${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)}): check the path and that the service user may read it`);
  }
}

/** TLS material for mqtts:// (files read once, at start); the client key must be private. */
export function tlsOptions(b: BrokerOptions): Pick<mqtt.IClientOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> {
  if ((b.cert === undefined) !== (b.key === undefined)) {
    throw new TrustError(`broker.${b.cert === undefined ? 'cert' : 'key'}: mutual TLS needs both broker.cert and broker.key`);
  }
  if (b.key) assertPrivateFile(b.key, 'broker.key');
  if (b.renewed) return { ...(b.ca ? { ca: readPem(b.ca, 'ca') } : {}), cert: b.renewed.certPem, key: b.renewed.keyPem, rejectUnauthorized: true };
  return {
    ...(b.ca ? { ca: readPem(b.ca, 'ca') } : {}),
    ...(b.cert ? { cert: readPem(b.cert, 'cert') } : {}),
    ...(b.key ? { key: readPem(b.key, 'key') } : {}),
    rejectUnauthorized: true,
  };
}

/** A short-lived client (one request, a reachability check): clean session, no reconnects. */
export function oneShotConnectOptions(b: BrokerOptions): mqtt.IClientOptions {
  return {
    ...tlsOptions(b),
    protocolVersion: 5,
    clientId: b.clientId,
    clean: true,
    username: b.username,
    password: b.password,
    connectTimeout: b.connectTimeoutS * 1000,
    reconnectPeriod: 0,
  };
}

/**
 * A long-lived client (the uplink, the collector): a persistent session, reconnected with full
 * jitter (reconnect.ts) so a fleet does not stampede a broker that has just restarted.
 */
export function connectClient(b: BrokerOptions, will?: mqtt.IClientOptions['will'], schedule: Pick<ReconnectSchedule, 'random' | 'timers'> = {}): mqtt.MqttClient {
  const client = mqtt.connect(b.url, connectOptions(b, will));
  keepReconnecting(client, { baseMs: b.reconnectS * 1000, maxMs: (b.reconnectMaxS ?? DEFAULT_RECONNECT_MAX_S) * 1000, ...schedule });
  return client;
}

export function connectOptions(b: BrokerOptions, will?: mqtt.IClientOptions['will']): mqtt.IClientOptions {
  return {
    ...tlsOptions(b),
    protocolVersion: 5,
    clientId: b.clientId,
    clean: false,
    properties: { sessionExpiryInterval: SESSION_EXPIRY_S },
    keepalive: b.keepaliveS,
    connectTimeout: b.connectTimeoutS * 1000,
    // reconnects are keepReconnecting's: mqtt.js would retry at a fixed period
    reconnectPeriod: 0,
    username: b.username,
    password: b.password,
    will,
  };
}

