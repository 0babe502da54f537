// A private Mosquitto for one test file: started before its tests, stopped after them.
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { LocalBroker } from '../../simulators/index.js';

export function useLocalBroker(dir: string): () => LocalBroker {
  let broker: LocalBroker | undefined;
  beforeAll(async () => {
    broker = await LocalBroker.start(join(dir, 'broker'));
  });
  afterAll(async () => {
    await broker?.stop();
  });
  return () => {
    if (!broker) throw new Error('the broker is not started yet (use it inside a test)');
    return broker;
  };
}
