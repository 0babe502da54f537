// Builds the states a disk may hold after a power cut, from the record that powercut.c (loaded
// with LD_PRELOAD) keeps of a process's writes and syncs. At a cut point, each file holds what
// was written before its last sync there, plus any subset of the writes made since (a disk
// writes back on its own, in any order). Metadata (creation, unlink, truncation) is taken as
// it happened: the model is a journalling file system that orders it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Op =
  | { kind: 'open'; file: number; path: string }
  | { kind: 'write'; file: number; offset: number; data: Buffer }
  | { kind: 'truncate'; file: number; size: number }
  | { kind: 'sync'; file: number }
  | { kind: 'unlink'; path: string }
  | { kind: 'ack'; data: Buffer };

/** Compiles the recorder into `dir`; returns the library's path, or null without gcc. */
export function buildRecorder(dir: string): string | null {
  const source = join(dirname(fileURLToPath(import.meta.url)), 'powercut.c');
  const lib = join(dir, 'powercut.so');
  const cc = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-o', lib, source, '-ldl', '-lpthread'], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) return null;
  return lib;
}

/** The environment that records the files under `watched` to `log`. */
export function recorderEnv(lib: string, watched: string, log: string): Record<string, string> {
  return { LD_PRELOAD: lib, VGW_POWERCUT_DIR: watched, VGW_POWERCUT_LOG: log };
}

export function readRecord(log: string): Op[] {
  const b = readFileSync(log);
  const ops: Op[] = [];
  for (let i = 0; i < b.length; ) {
    const kind = String.fromCharCode(b[i]);
    const file = b.readUInt32LE(i + 1);
    const offset = Number(b.readBigUInt64LE(i + 5));
    const len = b.readUInt32LE(i + 13);
    const data = b.subarray(i + 17, i + 17 + len);
    i += 17 + len;
    if (kind === 'O') ops.push({ kind: 'open', file, path: data.toString() });
    else if (kind === 'W') ops.push({ kind: 'write', file, offset, data });
    else if (kind === 'T') ops.push({ kind: 'truncate', file, size: offset });
    else if (kind === 'S') ops.push({ kind: 'sync', file });
    else if (kind === 'U') ops.push({ kind: 'unlink', path: data.toString() });
    else if (kind === 'A') ops.push({ kind: 'ack', data });
    else throw new Error(`power-cut record: unknown kind ${kind} at byte ${i}`);
  }
  return ops;
}

/**
 * Writes into `out` the files under `watched` as a cut after ops[0..cut) may leave them.
 * `keep(i)` says whether unsynced write i reached the disk anyway (never: the synced state).
 */
export function buildState(ops: Op[], cut: number, watched: string, out: string, keep: (i: number) => boolean = () => false): string[] {
  const pathOf = new Map<number, string>();
  const lastSync = new Map<string, number>();
  for (let i = 0; i < cut; i++) {
    const op = ops[i];
    if (op.kind === 'open') pathOf.set(op.file, op.path);
    else if (op.kind === 'sync') lastSync.set(pathOf.get(op.file)!, i);
  }
  pathOf.clear();
  const files = new Map<string, Buffer>();
  const grow = (path: string, size: number) => {
    const cur = files.get(path) ?? Buffer.alloc(0);
    if (cur.length >= size) return cur;
    const next = Buffer.alloc(size);
    cur.copy(next);
    files.set(path, next);
    return next;
  };
  for (let i = 0; i < cut; i++) {
    const op = ops[i];
    if (op.kind === 'open') {
      pathOf.set(op.file, op.path);
      if (!files.has(op.path)) files.set(op.path, Buffer.alloc(0));
    } else if (op.kind === 'write') {
      const path = pathOf.get(op.file)!;
      if (i > (lastSync.get(path) ?? -1) && !keep(i)) continue;
      op.data.copy(grow(path, op.offset + op.data.length), op.offset);
    } else if (op.kind === 'truncate') {
      const path = pathOf.get(op.file)!;
      files.set(path, Buffer.from(grow(path, op.size).subarray(0, op.size)));
    } else if (op.kind === 'unlink') {
      files.delete(op.path);
    }
  }
  const written: string[] = [];
  for (const [path, data] of files) {
    // The shared-memory index is rebuilt by SQLite from the WAL; directories are not files.
    if (path.endsWith('-shm') || path === watched) continue;
    const target = join(out, relative(watched, path));
    mkdirSync(dirname(target), { recursive: true });
    try {
      writeFileSync(target, data);
      written.push(target);
    } catch {
      // a directory opened for its own fsync
    }
  }
  return written;
}
