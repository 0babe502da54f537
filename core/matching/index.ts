// Exposure matching, the question the system exists for: was a confirmed case at this venue,
// and when? Diagnosis keys (TEKs) → their RPIs per the EN cryptography spec → the venue
// encounters that carry them; and BlueTrace tracing at venues (trace.ts). Pure functions; the
// CLI (`vgw match`, `vgw trace`) reads files and databases.
export * from './diagnosis-keys.js';
export * from './match.js';
export * from './trace.js';
