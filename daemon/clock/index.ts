// Whether the wall clock can be trusted, and a clock that steps never move.
export * from './clock-monitor.js';
