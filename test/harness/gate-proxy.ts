// A TCP relay between one client and a broker whose client-to-broker direction a test can hold:
// what the broker sends still arrives, what the client sends waits (PUBACKs, replies) until
// released. It makes "a reply in flight" a state a test can put a daemon in, with no timing.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class GateProxy {
  private server: Server | null = null;
  private held = false;
  private readonly waiting: Array<{ to: Socket; chunk: Buffer }> = [];
  private readonly sockets = new Set<Socket>();
  /** Bytes the client sent while held, still waiting. */
  heldBytes = 0;

  constructor(private readonly brokerPort: number) {}

  async start(): Promise<string> {
    this.server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: this.brokerPort });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined); // either end closing is the test's business, not an error here
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      upstream.on('data', (chunk: Buffer) => client.write(chunk));
      client.on('data', (chunk: Buffer) => {
        if (!this.held) return void upstream.write(chunk);
        this.waiting.push({ to: upstream, chunk });
        this.heldBytes += chunk.length;
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP port');
    return `mqtt://127.0.0.1:${address.port}`;
  }

  /** From now on, what the client sends waits. */
  hold(): void {
    this.held = true;
  }

  /** Sends what waited, in order, and lets the rest through. */
  release(): void {
    this.held = false;
    for (const { to, chunk } of this.waiting.splice(0)) to.write(chunk);
    this.heldBytes = 0;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
