// The gateway's side of the MQTT protocol: outbox batches, acks, requests, status.
export * from './uplink.js';
