// The backend's side of remote configuration (docs/protocol.md, "Configuration"): a unit's
// settings, signed with the backend key, bound to the unit, published retained on its config
// topic so a unit that is offline gets them when it returns; and what the unit last reported.
import type mqtt from 'mqtt';
import { gatewayTopics, openControl, openUnitMessageByAny, trustedKey, type ControlConfig } from '../core/wire/index.js';
import { connectOneShot, type GatewayAddress } from './pull.js';

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

/** `use` on a one-shot session with the gateway's broker, ended afterwards whatever happens. */
async function withBroker<T>(to: GatewayAddress, use: (client: mqtt.MqttClient) => Promise<T>): Promise<T> {
  const client = await connectOneShot(to);
  try {
    return await use(client);
  } finally {
    await client.endAsync();
  }
}

/** The configuration held retained for a unit, checked as this backend key's (null: none published). */
async function heldConfig(client: mqtt.MqttClient, to: GatewayAddress, waitMs: number): Promise<ControlConfig | null> {
  const payload = await retained(client, gatewayTopics(to.prefix, to.venue, to.gateway).config, waitMs);
  if (!payload) return null;
  const opened = openControl(payload, 'config', to, [trustedKey(to.control.key.publicKey)], 1 << 20);
  if (!opened.ok) throw new Error(`the retained configuration of ${to.venue}/${to.gateway} is not this backend key's (${opened.reason}: ${opened.detail})`);
  return opened.message;
}

/** The configuration the backend holds for a unit, as signed (null: none published). */
export function currentConfig(to: GatewayAddress, waitMs = 2000): Promise<ControlConfig | null> {
  return withBroker(to, (client) => heldConfig(client, to, waitMs));
}

/** What the unit's retained status says of the backend's configuration (verified with its key when known). */
export function reportedConfig(to: GatewayAddress, waitMs = 2000): Promise<Record<string, unknown> | null> {
  return withBroker(to, async (client) => {
    const payload = await retained(client, gatewayTopics(to.prefix, to.venue, to.gateway).status, waitMs);
    if (!payload) return null;
    const opened = openUnitMessageByAny(payload, to.gatewayKeys);
    if (!opened.ok) throw new Error(`the retained status of ${to.venue}/${to.gateway} is not the gateway's (${opened.reason}: ${opened.detail})`);
    const doc = opened.doc as { state?: string; config?: Record<string, unknown> };
    return { state: doc.state ?? null, ...(doc.config ?? {}) };
  });
}
