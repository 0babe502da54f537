export * from './manifest.js';
export * from './slots.js';
