// The backend asks one gateway something over MQTT 5 request/response: a time range of
// encounters (pull), or its status.
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { BrokerOptions, oneShotConnectOptions } from '../core/mqtt/index.js';
import { Batch, COSE_CONTENT_TYPE, type ControlSigner, decodeBatch, gatewayTopics, type LogLevel, openUnitMessageByAny, replyTopic } from '../core/wire/index.js';

export interface GatewayAddress {
  broker: BrokerOptions;
  prefix: string;
  venue: string;
  gateway: string;
  timeoutMs: number;
  /** The backend key a request is signed with: a gateway answers nothing else. */
  control: ControlSigner;
  /** The gateway's registered public keys (more than one during a rotation of its key): its answers must verify with one (null: read unchecked, without a registry). */
  gatewayKeys: Buffer[] | null;
}

export interface PullRequest extends GatewayAddress {
  from: number;
  to: number;
}

export class PullError extends Error {
  constructor(message: string, readonly timedOut = false) {
    super(message);
    this.name = 'PullError';
  }
}

/** The error of an answer `{"v":3,"ok":false,"error":…}`, or null when it is not one. */
function refusal(doc: unknown): string | null {
  const r = doc as { ok?: unknown; error?: unknown } | null;
  return r !== null && typeof r === 'object' && r.ok === false ? String(r.error) : null;
}

/** A clean, short-lived session: replies to an abandoned request must not pile up. No broker is no answer (a timeout, as a silent gateway). */
export async function connectOneShot(to: GatewayAddress): Promise<mqtt.MqttClient> {
  try {
    return await mqtt.connectAsync(to.broker.url, oneShotConnectOptions(to.broker));
  } catch (err) {
    throw new PullError(`cannot reach the broker at ${to.broker.url} (${(err as Error).message}): check broker.url and that the broker runs`, true);
  }
}

/**
 * Sends one request and hands each reply (matched by correlation data) to `onReply`, which
 * returns a result to finish or undefined to wait for more: a batch part as its bytes, a signed
 * answer as its JSON (`doc`), once the gateway's key verified it; ok:false rejects.
 */
async function ask<T>(to: GatewayAddress, body: { op: string } & Record<string, unknown>, onReply: (payload: Buffer, doc: unknown) => T | undefined): Promise<T> {
  const client = await connectOneShot(to);
  const responseTopic = replyTopic(to.prefix, to.broker.clientId);
  const correlationData = randomBytes(16);
  try {
    await client.subscribeAsync(responseTopic, { qos: 1 });
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new PullError(`no complete answer from ${to.venue}/${to.gateway} within ${to.timeoutMs / 1000} s (is it online?)`, true)),
        to.timeoutMs,
      );
      const finish = (fn: () => void) => {
        clearTimeout(timer);
        fn();
      };
      client.on('message', (_topic, payload, packet) => {
        const corr = packet.properties?.correlationData;
        if (!corr || !correlationData.equals(corr)) return;
        let doc: unknown;
        if (packet.properties?.contentType !== 'application/cbor') {
          const opened = openUnitMessageByAny(payload, to.gatewayKeys);
          if (!opened.ok) return finish(() => reject(new PullError(`an answer that is not the gateway's (${opened.reason}: ${opened.detail}): is its registration record current?`)));
          doc = opened.doc;
          const refused = refusal(doc);
          if (refused !== null) return finish(() => reject(new PullError(`gateway refused the request: ${refused}`)));
        }
        try {
          const result = onReply(payload, doc);
          if (result !== undefined) finish(() => resolve(result));
        } catch (err) {
          finish(() => reject(new PullError(`invalid reply: ${(err as Error).message}`)));
        }
      });
      // Signed, for this gateway, fresh (issuedAt, a random nonce), naming its answer's topic inside the signature.
      const request = to.control.sign({
        kind: 'request', venue: to.venue, gateway: to.gateway, issuedAt: Date.now(), nonce: randomBytes(16).toString('base64url'), replyTo: responseTopic, ...body,
      });
      client.publish(gatewayTopics(to.prefix, to.venue, to.gateway).request, request, {
        qos: 1,
        properties: { responseTopic, correlationData, contentType: COSE_CONTENT_TYPE },
      });
    });
  } finally {
    await client.endAsync();
  }
}

/** Resolves with every part of the answer, or rejects with the gateway's error or a timeout. */
export function pull(req: PullRequest): Promise<Batch[]> {
  const parts: Batch[] = [];
  return ask(req, { op: 'pull', from: req.from, to: req.to }, (payload) => {
    const part = decodeBatch(payload);
    parts.push(part);
    const expected = (part.part ?? 0) + 1;
    return part.last && parts.length === expected ? parts.sort((a, b) => (a.part ?? 0) - (b.part ?? 0)) : undefined;
  });
}

/** The one signed answer a request gets (not a pull's parts). */
const signedAnswer = (_payload: Buffer, doc: unknown) => (doc !== null && typeof doc === 'object' ? (doc as Record<string, unknown>) : undefined);

/** The gateway's status document (docs/protocol.md). */
export function requestStatus(to: GatewayAddress): Promise<Record<string, unknown>> {
  return ask(to, { op: 'status' }, signedAnswer);
}

/** A signed logLevel command: the gateway's answer (`until` says when its level falls back). */
export function requestLogLevel(to: GatewayAddress, level: LogLevel, forS: number): Promise<Record<string, unknown>> {
  return ask(to, { op: 'logLevel', level, forS }, signedAnswer);
}

/** A signed restart command: the gateway answers, then stops cleanly and its service starts it again. */
export function requestRestart(to: GatewayAddress): Promise<Record<string, unknown>> {
  return ask(to, { op: 'restart' }, signedAnswer);
}

/** A signed doctor command: the gateway runs `vgw doctor` on itself and answers with its checks. */
export function requestDoctor(to: GatewayAddress): Promise<Record<string, unknown>> {
  return ask(to, { op: 'doctor' }, signedAnswer);
}

/** A signed update request: the gateway answers that it takes the release (or why not), then downloads, installs and restarts into it. */
export function requestUpdate(to: GatewayAddress, manifest: string, version: string, downgrade = false): Promise<Record<string, unknown>> {
  return ask(to, { op: 'update', manifest, version, ...(downgrade ? { downgrade: true } : {}) }, signedAnswer);
}
