// Where a controller is: the kernel's HCI socket (hci:0, the default on a Pi) or an H4 byte
// stream over a serial port (a Zephyr hci_uart or nRF52840 dongle), a unix socket or TCP.
import { Duplex } from 'node:stream';
import net from 'node:net';

import type { TransportSpec } from '../../core/config/transport.js';

export { formatTransport, parseTransport, TRANSPORT_HELP } from '../../core/config/transport.js';
export type { TransportSpec } from '../../core/config/transport.js';

/** Opens the byte stream of an H4 transport; 'connect' (or 'open') fires when it is usable. */
export async function openStream(t: Exclude<TransportSpec, { kind: 'hci' }>): Promise<Duplex> {
  if (t.kind === 'unix' || t.kind === 'tcp') {
    const socket = t.kind === 'unix' ? net.createConnection({ path: t.path }) : net.createConnection({ host: t.host, port: t.port });
    socket.setNoDelay?.(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return socket;
  }
  const { SerialPort } = await import('serialport');
  const port = new SerialPort({ path: t.path, baudRate: t.baudRate, rtscts: true, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  return port;
}
