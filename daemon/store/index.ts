// The gateway's encounter store: SQLite, the outbox and retention.
export * from './store.js';
