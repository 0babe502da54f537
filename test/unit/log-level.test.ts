// The log level a signed command raises falls back by itself at the end of its window.
import pino from 'pino';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LogLevelWindow } from '../../daemon/log-level.js';
import { FakeTimers } from '../harness/fake-timers.js';

function captured() {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }); done(); } });
  return { log: pino({ level: 'info' }, sink), lines };
}

describe('a log level raised by a command', () => {
  it('holds for its window, falls back to the configured level at its end, and a new command replaces the window', () => {
    const T = Date.UTC(2026, 11, 7, 12);
    const timers = new FakeTimers(T);
    const { log, lines } = captured();
    const window = new LogLevelWindow(log, 'info', timers);
    expect(window.raise('debug', 600_000)).toBe(T + 600_000);
    expect(log.level).toBe('debug');
    timers.advance(599_999);
    expect(log.level).toBe('debug');
    timers.advance(1);
    expect(log.level).toBe('info');
    expect(lines.map((l) => l.msg)).toEqual(['log level set by a signed command', 'log level back to the configured one']);
    // a second command before the first window ends: its own window counts, not the first's
    window.raise('trace', 60_000);
    timers.advance(30_000);
    window.raise('debug', 60_000);
    timers.advance(45_000);
    expect(log.level).toBe('debug');
    timers.advance(15_000);
    expect(log.level).toBe('info');
    // stopped: no timer left to fire
    window.raise('debug', 60_000);
    window.stop();
    expect(timers.count).toBe(0);
  });
});
