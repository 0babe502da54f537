// The one place SQLite databases are opened.
export * from './open.js';
export * from './where-in.js';
