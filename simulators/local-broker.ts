// A private Mosquitto on a free loopback port, with its own config and folder: used by
// `vgw demo` and by the test harness (which also stops and restarts it).
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';

export const MOSQUITTO_CANDIDATES = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'];

export function findMosquitto(): string | null {
  return MOSQUITTO_CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class LocalBroker {
  private proc: ChildProcess | null = null;
  readonly configPath: string;

  private constructor(readonly dir: string, readonly port: number, private readonly binary: string) {
    this.configPath = join(dir, 'mosquitto.conf');
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  static async start(dir: string, extraConfig = ''): Promise<LocalBroker> {
    const binary = findMosquitto();
    if (!binary) throw new Error('mosquitto not found: install it with `apt-get install mosquitto`');
    mkdirSync(dir, { recursive: true });
    const broker = new LocalBroker(dir, await freePort(), binary);
    writeFileSync(
      broker.configPath,
      [
        `listener ${broker.port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence true',
        `persistence_location ${dir}/`,
        `log_dest file ${join(dir, 'mosquitto.log')}`,
        'log_type error',
        'log_type warning',
        'log_type notice',
        'max_queued_messages 100000',
        extraConfig,
      ].join('\n') + '\n',
    );
    await broker.restart();
    return broker;
  }

  /** A broker on a config of the caller's (TLS listeners, ACLs); `port` is the one to wait for. */
  static async fromConfig(dir: string, port: number, config: string): Promise<LocalBroker> {
    const binary = findMosquitto();
    if (!binary) throw new Error('mosquitto not found: install it with `apt-get install mosquitto`');
    mkdirSync(dir, { recursive: true });
    const broker = new LocalBroker(dir, port, binary);
    writeFileSync(broker.configPath, config);
    await broker.restart();
    return broker;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null;
  }

  /** Starts (again) on the same port with the same persistence folder. */
  async restart(): Promise<void> {
    if (this.running) return;
    const proc = spawn(this.binary, ['-c', this.configPath], { stdio: 'ignore' });
    this.proc = proc;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}; see ${join(this.dir, 'mosquitto.log')}`);
      if (await portOpen(this.port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`mosquitto did not listen on ${this.port} within 10 s`);
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
    this.proc = null;
  }
}
