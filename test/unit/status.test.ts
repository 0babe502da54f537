import { describe, expect, it } from 'vitest';
import { parseStatus, StatusError, statusDocument } from '../../core/wire/index.js';
import { nonCamelKeys } from '../harness/casing.js';

const software = { version: '0.1.0', commit: '0123456789ab' };
const config = { version: 'sha256:0123456789ab', source: 'file' as const };
const id = { gateway: 'gw-1', venue: 'mall-01', startedAt: Date.UTC(2026, 10, 23, 8), software, config };
const at = Date.UTC(2026, 10, 23, 9);

describe('the status document', () => {
  it('has the three forms protocol.md gives: online with counters, stopped, and the Will without at; each says which software and config', () => {
    expect(statusDocument('stopped', id, undefined, at)).toEqual({
      v: 3, gateway: 'gw-1', venue: 'mall-01', startedAt: '2026-11-23T08:00:00.000Z', software, config, state: 'offline', reason: 'stopped', at: '2026-11-23T09:00:00.000Z',
    });
    const will = statusDocument('will', id);
    expect(will).toEqual({ v: 3, gateway: 'gw-1', venue: 'mall-01', startedAt: '2026-11-23T08:00:00.000Z', software, config, state: 'offline', reason: 'connection lost' });
    expect(nonCamelKeys(will)).toEqual([]);
  });

  it('reads back what it wrote, and refuses what is not one by field', () => {
    const stopped = statusDocument('stopped', id, undefined, at);
    expect(parseStatus(JSON.parse(JSON.stringify(stopped)), 'test')).toEqual(stopped);
    expect(() => parseStatus({ ...stopped, v: 1 }, 'the topic')).toThrow(new StatusError('the topic: not a status document: v: must be 3'));
    expect(() => parseStatus({ ...stopped, gateway: 7 }, 'x')).toThrow(/^x: not a status document: gateway: /);
    expect(() => parseStatus({ ...stopped, state: 'online' }, 'x')).toThrow('x: not a status document: an online status needs at and counters');
    expect(() => parseStatus([1, 2], 'x')).toThrow(StatusError);
  });

  it('finds keys in another casing wherever they are nested', () => {
    expect(nonCamelKeys({ a: { rotation_failures: 0, ok: [{ Bad: 1 }] }, nextRotationAt: 1 })).toEqual(['.a.rotation_failures', '.a.ok[0].Bad']);
  });
});
