export * from './layers.js';
export * from './rollout.js';
export * from './command.js';
