// Reads ../shared/reference (test vectors and samples). Vectors are facts quoted by the tests.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REFERENCE_DIR = resolve(__dirname, '../../../shared/reference');
export const hasReference = existsSync(REFERENCE_DIR);

export function readReference<T>(name: string): T {
  return JSON.parse(readFileSync(join(REFERENCE_DIR, name), 'utf8')) as T;
}
