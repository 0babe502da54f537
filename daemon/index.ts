// The gateway daemon: its concerns composed into one process.
export * from './daemon.js';
export { effectiveConfig, prepareRemoteStart, remoteStatePath, type RemoteStart } from './remote-config.js';
export { guard, linkedVersion, pointLink, readSlotState, releaseDir, releasesDir, writeSlotState } from './release-slots.js';
