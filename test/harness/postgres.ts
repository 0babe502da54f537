// A private PostgreSQL for one test file, like the broker: started before its tests, removed after.
import { afterAll, beforeAll } from 'vitest';
import { LocalPostgres } from '../../simulators/index.js';

export interface TestPostgres {
  server: LocalPostgres;
  /** A new empty database: its URL. */
  database(name: string): Promise<string>;
}

export function usePostgres(): () => TestPostgres {
  let server: LocalPostgres | undefined;
  let n = 0;
  beforeAll(async () => {
    server = await LocalPostgres.start();
  }, 60_000);
  afterAll(async () => {
    await server?.destroy();
  });
  return () => {
    if (!server) throw new Error('PostgreSQL is not started yet (use it inside a test)');
    const s = server;
    return { server: s, database: (name: string) => s.createDatabase(`${name}_${++n}`) };
  };
}
