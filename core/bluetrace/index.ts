// BlueTrace (TraceTogether, OpenTrace, PeduliLindungi's Sijejak): temp IDs, the payloads two
// peers exchange over GATT, and what a BlueTrace encounter keeps of an exchange.
export * from './tempid.js';
export * from './payload.js';
export * from './metadata.js';
