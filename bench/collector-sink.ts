// The collector alone, in a process of its own so that strace counts its syncs and nothing
// else's. argv: broker url, topic prefix, database path, registry file. Runs until its stdin
// closes (a signal would stop strace, not it), then prints its counters as one JSON object.
import { Collector, GatewayRegistry } from '../collector/index.js';
import { randomBytes } from 'node:crypto';
import { createLogger } from '../core/log/index.js';
import { ControlSigner } from '../core/wire/index.js';

const [url, prefix, dbPath, registryPath] = process.argv.slice(2);
const collector = new Collector(
  { broker: { url, clientId: `bench-collector-${process.pid}`, keepaliveS: 30, connectTimeoutS: 5, reconnectS: 1 }, prefix, database: dbPath, registry: new GatewayRegistry(registryPath),
    control: new ControlSigner(randomBytes(32)) }, // its acks go to publishers that do not check them
  createLogger('warn'),
);
await collector.start();
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  void collector.stop().then(() => {
    process.stdout.write(JSON.stringify(collector.counters) + '\n');
    process.exit(0);
  });
});
