// The backend asks one gateway for the encounters of a time range (MQTT 5 request/response).
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { BrokerOptions, Batch, decodeBatch, gatewayTopics, replyTopic } from '../daemon/uplink/index.js';

export interface PullRequest {
  broker: BrokerOptions;
  prefix: string;
  venue: string;
  gateway: string;
  from: number;
  to: number;
  timeoutMs: number;
}

export class PullError extends Error {
  constructor(message: string, readonly timedOut = false) {
    super(message);
    this.name = 'PullError';
  }
}

/** Resolves with every part of the answer, or rejects with the gateway's error or a timeout. */
export async function pull(req: PullRequest): Promise<Batch[]> {
  // A clean, short-lived session: replies to an abandoned request must not pile up.
  const client = await mqtt.connectAsync(req.broker.url, {
    protocolVersion: 5,
    clientId: req.broker.clientId,
    clean: true,
    username: req.broker.username,
    password: req.broker.password,
    connectTimeout: req.broker.connectTimeoutS * 1000,
    reconnectPeriod: 0,
  });
  const responseTopic = replyTopic(req.prefix, req.broker.clientId);
  const correlationData = randomBytes(16);
  try {
    await client.subscribeAsync(responseTopic, { qos: 1 });
    return await new Promise<Batch[]>((resolve, reject) => {
      const parts: Batch[] = [];
      const timer = setTimeout(
        () => reject(new PullError(`no complete answer from ${req.venue}/${req.gateway} within ${req.timeoutMs / 1000} s (is it online?)`, true)),
        req.timeoutMs,
      );
      client.on('message', (_topic, payload, packet) => {
        const corr = packet.properties?.correlationData;
        if (!corr || !correlationData.equals(corr)) return;
        if (packet.properties?.contentType === 'application/json') {
          clearTimeout(timer);
          let error = 'unreadable error reply';
          try {
            error = String((JSON.parse(payload.toString('utf8')) as { error?: unknown }).error);
          } catch {
            // keep the generic message
          }
          reject(new PullError(`gateway refused the request: ${error}`));
          return;
        }
        try {
          const part = decodeBatch(payload);
          parts.push(part);
          if (part.last) {
            const expected = (part.part ?? 0) + 1;
            if (parts.length === expected) {
              clearTimeout(timer);
              resolve(parts.sort((a, b) => (a.part ?? 0) - (b.part ?? 0)));
            }
          }
        } catch (err) {
          clearTimeout(timer);
          reject(new PullError(`invalid reply: ${(err as Error).message}`));
        }
      });
      const request = JSON.stringify({ v: 1, op: 'pull', from: req.from, to: req.to });
      client.publish(gatewayTopics(req.prefix, req.venue, req.gateway).request, request, {
        qos: 1,
        properties: { responseTopic, correlationData, contentType: 'application/json' },
      });
    });
  } finally {
    await client.endAsync();
  }
}
