// The backend: the collector, its database, batch verification and on-demand pulls.
export * from './collector.js';
export * from './database.js';
export * from './encounter-row.js';
export type { CollectorCounters } from './counters.js';
export * from './store.js';
export { partitionName, PostgresCollectorStore, POSTGRES_MIGRATIONS } from './postgres.js';
export { openCollectorStore } from './open-store.js';
export type { PostgresStoreOptions } from './postgres.js';
export { GatewayRegistry, verifyBatch } from './verify.js';
export { answerTempIdRequest, loadBluetraceKey, REFRESH_INTERVAL_S } from './tempids.js';
export { CollectorHttp } from './http.js';
export type { CollectorHttpOptions } from './http.js';
export * from './fleet.js';
export { CollectorMetrics } from './metrics.js';
export { answerCertificateRequest, checkCertificateAuthority, type CertificateAuthority } from './certificates.js';
