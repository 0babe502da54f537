// Reference data. test/fixtures holds what its licence lets the project carry (see its README);
// ../shared/reference, beside the clone, holds the rest (unlicensed captures), read in place
// when present. Vectors are facts quoted by the tests.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const FIXTURES_DIR = resolve(__dirname, '../fixtures');
export const REFERENCE_DIR = resolve(__dirname, '../../../shared/reference');
export const hasReference = existsSync(REFERENCE_DIR);

export function readFixture<T>(name: string): T {
  return JSON.parse(readFileSync(join(FIXTURES_DIR, name), 'utf8')) as T;
}
