// The virtual controller for the BlueTrace benchmark, in a process of its own: a crowd of
// OpenTrace phones advertising the service, for the gateway to connect to. argv: socket path.
import { VirtualController } from '../simulators/index.js';

const socketPath = process.argv[2];
const vc = new VirtualController({
  socketPath,
  bluetrace: {
    seed: 3, phones: 0, arrivalsPerMinute: 900, minDwellS: 100, maxDwellS: 140, anchor: Date.now() - 140_000, key: '42'.repeat(32),
    serviceUuid: 'B82AB3FC-1595-4F6A-80F0-FE094CC218F9', characteristicUuid: '117BDD58-57CE-4E7A-8E87-7CCCDDA2A804', org: 'ID_PL',
    connect: false, forgetDeparted: true,
  },
});
await vc.start();
process.send?.('ready');
