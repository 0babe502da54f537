// Topic layout, versioned by the prefix (default "vgw/v3"). docs/protocol.md documents it.
export interface GatewayTopics {
  batch: string;
  ack: string;
  status: string;
  request: string;
  /** The gateway asks for BlueTrace temp IDs here; the backend answers on `tempIds`. */
  tempIdsRequest: string;
  tempIds: string;
  /** The backend's settings for this unit, signed and retained (docs/protocol.md, "Configuration"). */
  config: string;
  /** The unit asks for a new TLS client certificate here (a CSR); the backend answers on `certificate`. */
  certificateRequest: string;
  certificate: string;
  /** The backend keys this unit is to trust, signed by one it trusts now and retained (docs/protocol.md, "Backend keys"). */
  trust: string;
  /** The unit's signing key: the backend's order to rotate it and its acceptance, signed and retained (docs/protocol.md, "Gateway keys"). */
  signingKey: string;
  /** The unit asks the backend to register its new signing key here. */
  signingKeyRequest: string;
}

export function gatewayTopics(prefix: string, venue: string, gateway: string): GatewayTopics {
  const base = `${prefix}/${venue}/${gateway}`;
  return {
    batch: `${base}/batch`, ack: `${base}/ack`, status: `${base}/status`, request: `${base}/req`,
    tempIdsRequest: `${base}/tempids/req`, tempIds: `${base}/tempids`, config: `${base}/config`,
    certificateRequest: `${base}/cert/req`, certificate: `${base}/cert`, trust: `${base}/trust`,
    signingKey: `${base}/key`, signingKeyRequest: `${base}/key/req`,
  };
}

/** Subscription of a collector: every gateway's batches, optionally as a shared subscription. */
export function collectorBatchFilter(prefix: string, shareGroup?: string): string {
  const filter = `${prefix}/+/+/batch`;
  return shareGroup ? `$share/${shareGroup}/${filter}` : filter;
}

/** Venue and gateway of `<prefix>/<venue>/<gateway>/<suffix…>`, or null when the topic is not that. */
function parseGatewayTopic(prefix: string, topic: string, suffix: readonly string[]): { venue: string; gateway: string } | null {
  if (!topic.startsWith(prefix + '/')) return null;
  const parts = topic.slice(prefix.length + 1).split('/');
  if (parts.length !== 2 + suffix.length || suffix.some((s, i) => parts[2 + i] !== s)) return null;
  return { venue: parts[0], gateway: parts[1] };
}

/** Venue and gateway of a batch topic, or null when the topic is not one. */
export function parseBatchTopic(prefix: string, topic: string): { venue: string; gateway: string } | null {
  return parseGatewayTopic(prefix, topic, ['batch']);
}

/** Every gateway's retained status (not shared: each collector keeps the whole fleet's). */
export function statusFilter(prefix: string): string {
  return `${prefix}/+/+/status`;
}

export function parseStatusTopic(prefix: string, topic: string): { venue: string; gateway: string } | null {
  return parseGatewayTopic(prefix, topic, ['status']);
}

/** Subscription of a backend that issues temp IDs: every gateway's requests. */
export function tempIdsRequestFilter(prefix: string): string {
  return `${prefix}/+/+/tempids/req`;
}

/** Venue and gateway of a temp ID request topic, or null. */
export function parseTempIdsRequestTopic(prefix: string, topic: string): { venue: string; gateway: string } | null {
  return parseGatewayTopic(prefix, topic, ['tempids', 'req']);
}

export function replyTopic(prefix: string, clientId: string): string {
  return `${prefix}/replies/${clientId}`;
}

/** Every unit's retained configuration: the backend that rolls changes out reads which version each holds. */
export function configFilter(prefix: string): string {
  return `${prefix}/+/+/config`;
}

export function parseConfigTopic(prefix: string, topic: string): { venue: string; gateway: string } | null {
  return parseGatewayTopic(prefix, topic, ['config']);
}

/** Every unit's retained announcement of backend keys, for the same reason. */
export function trustFilter(prefix: string): string {
  return `${prefix}/+/+/trust`;
}

export function parseTrustTopic(prefix: string, topic: string): { venue: string; gateway: string } | null {
  return parseGatewayTopic(prefix, topic, ['trust']);
}

/** Subscription of a backend that signs the units' certificate requests. */
export function certificateRequestFilter(prefix: string): string {
  return `${prefix}/+/+/cert/req`;
}

export function parseCertificateRequestTopic(prefix: string, topic: string): { venue: string; gateway: string } | null {
  return parseGatewayTopic(prefix, topic, ['cert', 'req']);
}

/** Every unit's retained signing-key message: the rollout of a rotation goes above the version each holds. */
export function signingKeyFilter(prefix: string): string {
  return `${prefix}/+/+/key`;
}

export function parseSigningKeyTopic(prefix: string, topic: string): { venue: string; gateway: string } | null {
  return parseGatewayTopic(prefix, topic, ['key']);
}

/** Subscription of a backend that registers units' new signing keys (shared, as batches are). */
export function signingKeyRequestFilter(prefix: string, shareGroup?: string): string {
  const filter = `${prefix}/+/+/key/req`;
  return shareGroup ? `$share/${shareGroup}/${filter}` : filter;
}

export function parseSigningKeyRequestTopic(prefix: string, topic: string): { venue: string; gateway: string } | null {
  return parseGatewayTopic(prefix, topic, ['key', 'req']);
}
