// Builds the states a disk may hold after a power cut, from the record that powercut.c (loaded
// with LD_PRELOAD) keeps of a process's writes and syncs. At a cut point, each file holds what
// was written before its last sync there, plus any subset of the writes made since (a disk
// writes back on its own, in any order). Metadata (creation, rename, unlink, truncation) is
// taken as it happened: the model is a journalling file system that orders it.
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
  | { kind: 'rename'; from: string; to: string }
  /** Acks and log lines carry the tag of the process that wrote them (VGW_POWERCUT_TAG). */
  | { kind: 'ack'; tag: number; data: Buffer }
  | { kind: 'log'; tag: number; data: Buffer };

/** Compiles the recorder into `dir`; returns the library's path, or null without gcc. */
export function buildRecorder(dir: string): string | null {
  const source = join(dirname(fileURLToPath(import.meta.url)), 'powercut.c');
  const lib = join(dir, 'powercut.so');
  const cc = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-o', lib, source, '-ldl', '-lpthread'], { encoding: 'utf8' });
  if (cc.error || cc.status !== 0) return null;
  return lib;
}

/** The environment that records the files under `watched` to `log`, as process `tag` (0-255). */
export function recorderEnv(lib: string, watched: string, log: string, tag = 0): Record<string, string> {
  return { LD_PRELOAD: lib, VGW_POWERCUT_DIR: watched, VGW_POWERCUT_LOG: log, VGW_POWERCUT_TAG: String(tag) };
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
    else if (kind === 'R') {
      const nul = data.indexOf(0);
      ops.push({ kind: 'rename', from: data.subarray(0, nul).toString(), to: data.subarray(nul + 1).toString() });
    } else if (kind === 'A') ops.push({ kind: 'ack', tag: file >>> 24, data });
    else if (kind === 'L') ops.push({ kind: 'log', tag: file >>> 24, data });
    else throw new Error(`power-cut record: unknown kind ${kind} at byte ${i}`);
  }
  return ops;
}

/**
 * Writes into `out` the files under `watched` as a cut after ops[0..cut) may leave them.
 * `keep(i)` says whether unsynced write i reached the disk anyway (never: the synced state;
 * always: the page cache, as a process killed there left it). `initial` holds the files that
 * were there, synced, when the record began.
 */
export function buildState(
  ops: Op[], cut: number, watched: string, out: string, keep: (i: number) => boolean = () => false, initial: Map<string, Buffer> = new Map(),
): string[] {
  // A path names an inode until it is unlinked or renamed over; a sync covers the writes to its
  // inode through any descriptor, made before it.
  const walk = (visit: (i: number, inode: number | undefined) => void) => {
    const inodeOfPath = new Map<string, number>();
    const inodeOfFile = new Map<number, number>();
    let inodes = 0;
    for (const path of initial.keys()) inodeOfPath.set(path, inodes++);
    for (let i = 0; i < cut; i++) {
      const op = ops[i];
      if (op.kind === 'open') {
        if (!inodeOfPath.has(op.path)) inodeOfPath.set(op.path, inodes++);
        inodeOfFile.set(op.file, inodeOfPath.get(op.path)!);
      } else if (op.kind === 'unlink') inodeOfPath.delete(op.path);
      else if (op.kind === 'rename') {
        const inode = inodeOfPath.get(op.from);
        inodeOfPath.delete(op.from);
        if (inode !== undefined) inodeOfPath.set(op.to, inode);
      }
      visit(i, op.kind === 'write' || op.kind === 'truncate' || op.kind === 'sync' ? inodeOfFile.get(op.file) : undefined);
    }
    return inodeOfPath;
  };
  const lastSync = new Map<number, number>();
  walk((i, inode) => {
    if (ops[i].kind === 'sync' && inode !== undefined) lastSync.set(inode, i);
  });
  const data = new Map<number, Buffer>();
  [...initial.values()].forEach((b, inode) => data.set(inode, Buffer.from(b)));
  const grow = (inode: number, size: number) => {
    const cur = data.get(inode) ?? Buffer.alloc(0);
    if (cur.length >= size) return cur;
    const next = Buffer.alloc(size);
    cur.copy(next);
    data.set(inode, next);
    return next;
  };
  const paths = walk((i, inode) => {
    const op = ops[i];
    if (inode === undefined) return;
    if (op.kind === 'write') {
      if (i > (lastSync.get(inode) ?? -1) && !keep(i)) return;
      op.data.copy(grow(inode, op.offset + op.data.length), op.offset);
    } else if (op.kind === 'truncate') {
      data.set(inode, Buffer.from(grow(inode, op.size).subarray(0, op.size)));
    }
  });
  const written: string[] = [];
  for (const [path, inode] of paths) {
    // The shared-memory index is rebuilt by SQLite from the WAL; directories are not files.
    if (path.endsWith('-shm') || !path.startsWith(`${watched}/`)) continue;
    const target = join(out, relative(watched, path));
    mkdirSync(dirname(target), { recursive: true });
    try {
      writeFileSync(target, data.get(inode) ?? Buffer.alloc(0));
      written.push(target);
    } catch {
      // a directory opened for its own fsync
    }
  }
  return written;
}
