// The wire format of protocol 2 (docs/protocol.md, docs/protocol.cddl), shared by the gateway and
// the backend: batches, acks and requests, topics, the status document.
export * from './codec.js';
export * from './messages.js';
export * from './topics.js';
export * from './status.js';
export * from './cose.js';
export * from './control.js';
export * from './unit-message.js';
