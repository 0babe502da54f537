// The gateway daemon: its concerns composed into one process.
export * from './daemon.js';
