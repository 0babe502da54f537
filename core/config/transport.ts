// Where a controller is, as the config names it: the kernel's HCI socket (hci:0, the default on
// a Pi) or an H4 byte stream over a serial port, a unix socket or TCP. Parsing only; the radio
// opens them (daemon/radio/transport.ts).
export type TransportSpec =
  | { kind: 'hci'; devId: number }
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'serial'; path: string; baudRate: number };

export const TRANSPORT_HELP = 'use hci:0, serial:/dev/ttyACM0[:1000000], unix:/path/to/socket or tcp:host:port';

export function parseTransport(text: string): TransportSpec {
  const m = /^(hci|unix|tcp|serial):(.+)$/.exec(text);
  if (!m) throw new Error(`"${text}" is not a transport: ${TRANSPORT_HELP}`);
  const [, kind, rest] = m;
  if (kind === 'hci') {
    if (!/^\d+$/.test(rest)) throw new Error(`"${text}": the device number after hci: must be a whole number, e.g. hci:0`);
    return { kind, devId: Number(rest) };
  }
  if (kind === 'unix') return { kind, path: rest };
  if (kind === 'tcp') {
    const t = /^(.+):(\d{1,5})$/.exec(rest);
    if (!t || Number(t[2]) > 65535) throw new Error(`"${text}": expected tcp:host:port, e.g. tcp:127.0.0.1:9000`);
    return { kind, host: t[1], port: Number(t[2]) };
  }
  const s = /^(.+?)(?::(\d+))?$/.exec(rest)!;
  return { kind: 'serial', path: s[1], baudRate: s[2] ? Number(s[2]) : 1_000_000 };
}

export function formatTransport(t: TransportSpec): string {
  switch (t.kind) {
    case 'hci':
      return `hci:${t.devId}`;
    case 'unix':
      return `unix:${t.path}`;
    case 'tcp':
      return `tcp:${t.host}:${t.port}`;
    case 'serial':
      return `serial:${t.path}:${t.baudRate}`;
  }
}
