export * from './layers.js';
export * from './rollout.js';
