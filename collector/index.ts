// The backend: the collector, its database, batch verification and on-demand pulls.
export * from './collector.js';
export * from './database.js';
export { GatewayRegistry, verifyBatch } from './verify.js';
export { answerTempIdRequest, loadBluetraceKey, REFRESH_INTERVAL_S } from './tempids.js';
