// A private PostgreSQL server on a free loopback port, in a folder of its own: started by the test
// harness, the fleet simulator and the benchmarks like the private Mosquitto. initdb refuses to run
// as root, so as root the server runs as the `postgres` user that Debian's package creates.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './local-broker.js';

/** The newest server Debian installed (/usr/lib/postgresql/<major>/bin), or null. */
export function findPostgres(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const majors = readdirSync(root).filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a));
  return majors.length > 0 ? join(root, majors[0], 'bin') : null;
}

interface RunAs {
  uid: number;
  gid: number;
}

/** Root runs the server as `postgres`; anyone else as themselves. */
function runAs(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root, and there is no `postgres` user to run PostgreSQL as: `apt-get install postgresql` creates it');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export class LocalPostgres {
  private proc: ChildProcess | null = null;
  private settings: Record<string, string | number> = {};
  private readonly dataDir: string;
  private readonly socketDir: string;

  private constructor(readonly dir: string, readonly port: number, private readonly bin: string, private readonly user: RunAs | null) {
    this.dataDir = join(dir, 'data');
    this.socketDir = join(dir, 'socket');
  }

  /** The superuser's URL for `database` (the server's default database when omitted). */
  url(database = 'postgres'): string {
    return `postgres://vgw@127.0.0.1:${this.port}/${database}`;
  }

  /**
   * initdb in a new private folder, then start. `dir` defaults to a folder of its own under the
   * system's temp folder (the server's user must be able to reach it; test folders are 0700).
   */
  static async start(options: { dir?: string; settings?: Record<string, string | number> } = {}): Promise<LocalPostgres> {
    const bin = findPostgres();
    if (!bin) throw new Error('PostgreSQL not found under /usr/lib/postgresql: install it with `apt-get install postgresql`');
    const user = runAs();
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'vgw-pg-'));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const server = new LocalPostgres(dir, await freePort(), bin, user);
    mkdirSync(server.socketDir, { mode: 0o700 });
    if (user) {
      chownSync(dir, user.uid, user.gid);
      chownSync(server.socketDir, user.uid, user.gid);
    }
    // Trust on loopback only: the server listens on 127.0.0.1 and a private socket folder.
    // --no-sync: the empty cluster need not survive a power cut; the server's commits do (fsync on).
    execFileSync(join(bin, 'initdb'), ['-D', server.dataDir, '-U', 'vgw', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'], {
      stdio: 'pipe',
      ...(user ?? {}),
    });
    server.settings = { max_connections: 300, shared_buffers: '256MB', ...options.settings };
    await server.restart();
    return server;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null;
  }

  async restart(): Promise<void> {
    if (this.running) return;
    const args = ['-D', this.dataDir, '-p', String(this.port), '-k', this.socketDir, '-c', 'listen_addresses=127.0.0.1'];
    for (const [k, v] of Object.entries(this.settings)) args.push('-c', `${k}=${v}`);
    const proc = spawn(join(this.bin, 'postgres'), args, { stdio: ['ignore', 'ignore', 'pipe'], ...(this.user ?? {}) });
    let log = '';
    proc.stderr!.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-20_000);
    });
    this.proc = proc;
    this.logTail = () => log;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`postgres exited with ${proc.exitCode}: ${log.slice(-2000)}`);
      if (await this.accepts()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`postgres did not accept connections on ${this.port} within 30 s: ${log.slice(-2000)}`);
  }

  /** The server's own log, the last 20,000 characters. */
  logTail: () => string = () => '';

  private async accepts(): Promise<boolean> {
    const client = new pg.Client({ connectionString: this.url(), connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** A new empty database; returns its URL. */
  async createDatabase(name: string): Promise<string> {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name}: lower-case letters, digits and _ only`);
    const client = new pg.Client({ connectionString: this.url() });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  /**
   * Freezes the server (SIGSTOP to the postmaster and every backend), as a hung disk or a paused
   * VM would: connections stay open and nothing answers. `thaw()` lets it run on.
   */
  freeze(): void {
    this.signalAll('SIGSTOP');
  }

  thaw(): void {
    this.signalAll('SIGCONT');
  }

  private signalAll(signal: NodeJS.Signals): void {
    const pid = this.proc?.pid;
    if (pid === undefined) throw new Error('postgres is not running');
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    for (const p of [pid, ...children]) process.kill(p, signal);
  }

  /** Fast shutdown (SIGINT): open transactions roll back, committed ones stay. */
  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGINT');
    });
  }

  /** Stops and removes the folder. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
