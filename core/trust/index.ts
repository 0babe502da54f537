// What lets the backend trust a gateway: its Ed25519 signing key, the secrets file that holds
// it (and the beacon identity key), and the registration record the backend keeps of it.
export * from './signing.js';
export * from './identity.js';
export * from './expiry.js';
export * from './renewal.js';
export * from './backend-keys.js';
export * from './gateway-key.js';
