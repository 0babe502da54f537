export * from './build-info.js';
