// The backend's side of the pull benchmark, in a process of its own so the answer it holds
// does not count against the gateway's memory. argv: broker url, prefix, from, to, backend key seed (hex),
// the gateway's public key (hex).
import { pull } from '../collector/pull.js';
import { ControlSigner } from '../core/wire/index.js';

const [url, prefix, from, to, seed, gatewayKey] = process.argv.slice(2);
const parts = await pull({
  broker: { url, clientId: `bench-puller-${process.pid}`, keepaliveS: 30, connectTimeoutS: 5, reconnectS: 1 },
  prefix, venue: 'mall-01', gateway: 'gw-01', from: Number(from), to: Number(to), timeoutMs: 600_000,
  control: new ControlSigner(Buffer.from(seed, 'hex')), gatewayKeys: [Buffer.from(gatewayKey, 'hex')],
});
process.stdout.write(JSON.stringify({ parts: parts.length, encounters: parts.reduce((n, p) => n + p.encounters.length, 0) }) + '\n');
