// Encounters: the one record and its settled form (encounter.ts), and the aggregation of sightings into them.
export * from './encounter.js';
export * from './aggregator.js';
