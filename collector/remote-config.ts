// The backend's side of remote configuration (docs/protocol.md, "Configuration"): a unit's
// settings, signed with the backend key, bound to the unit, published retained on its config
// topic so a unit that is offline gets them when it returns; and what the unit last reported.
import mqtt from 'mqtt';
import { oneShotConnectOptions } from '../core/mqtt/index.js';
import { COSE_CONTENT_TYPE, gatewayTopics, openControl, openUnitMessage, trustedKey, type ControlConfig } from '../core/wire/index.js';
import type { GatewayAddress } from './pull.js';
import { PullError } from './pull.js';

/** The retained message on `topic`, or null when the broker holds none (within `waitMs`). */
async function retained(client: mqtt.MqttClient, topic: string, waitMs: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(null), waitMs);
    client.on('message', (t, payload, packet) => {
      if (t !== topic || !packet.retain) return;
      clearTimeout(timer);
      resolve(payload.length > 0 ? payload : null);
    });
    client.subscribe(topic, { qos: 1 }, (err) => {
      if (err) {
        clearTimeout(timer);
        reject(err);
      }
    });
  });
}

async function connect(to: GatewayAddress): Promise<mqtt.MqttClient> {
  try {
    return await mqtt.connectAsync(to.broker.url, oneShotConnectOptions(to.broker));
  } catch (err) {
    throw new PullError(`cannot reach the broker at ${to.broker.url} (${(err as Error).message}): check broker.url and that the broker runs`, true);
  }
}

/** The configuration the backend holds for a unit, as signed (null: none published). */
export async function currentConfig(to: GatewayAddress, waitMs = 2000): Promise<ControlConfig | null> {
  const client = await connect(to);
  try {
    const payload = await retained(client, gatewayTopics(to.prefix, to.venue, to.gateway).config, waitMs);
    if (!payload) return null;
    const opened = openControl(payload, 'config', to, [trustedKey(to.control.key.publicKey)], 1 << 20);
    if (!opened.ok) throw new Error(`the retained configuration of ${to.venue}/${to.gateway} is not this backend key's (${opened.reason}: ${opened.detail})`);
    return opened.message;
  } finally {
    await client.endAsync();
  }
}

/**
 * Publishes `settings` for one unit, retained, as the version after the one the broker holds (1
 * when none): a unit takes only a version above every one it was offered.
 */
export async function publishConfig(to: GatewayAddress, settings: Record<string, unknown>): Promise<ControlConfig> {
  const current = await currentConfig(to);
  const version = (current?.version ?? 0) + 1;
  const message = { kind: 'config' as const, venue: to.venue, gateway: to.gateway, version, issuedAt: Date.now(), settings, layers: [{ layer: 'gateway' as const, version }] };
  const payload = to.control.sign(message);
  const client = await connect(to);
  try {
    await client.publishAsync(gatewayTopics(to.prefix, to.venue, to.gateway).config, payload, { qos: 1, retain: true, properties: { contentType: COSE_CONTENT_TYPE } });
  } finally {
    await client.endAsync();
  }
  return { v: 3, ...message };
}

/** What the unit's retained status says of the backend's configuration (verified with its key when known). */
export async function reportedConfig(to: GatewayAddress, waitMs = 2000): Promise<Record<string, unknown> | null> {
  const client = await connect(to);
  try {
    const payload = await retained(client, gatewayTopics(to.prefix, to.venue, to.gateway).status, waitMs);
    if (!payload) return null;
    const opened = openUnitMessage(payload, to.gatewayKey);
    if (!opened.ok) throw new Error(`the retained status of ${to.venue}/${to.gateway} is not the gateway's (${opened.reason}: ${opened.detail})`);
    const doc = opened.doc as { state?: string; config?: Record<string, unknown> };
    return { state: doc.state ?? null, ...(doc.config ?? {}) };
  } finally {
    await client.endAsync();
  }
}
