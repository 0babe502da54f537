// A pull answer read and sent in bounded pieces: ids are read a few hundred at a time from the
// batches whose span overlaps the range, parts are published as they fill, and the event loop
// gets a turn between reads. A pull of half a million encounters must neither stall the daemon
// nor hold its answer in memory.
import type { StoredEncounter } from '../../core/encounters/index.js';

export interface PullSource {
  pullPlan(from: number, to: number): { ranges: Array<{ firstId: number; lastId: number }>; upperBound: number };
  readRange(firstId: number, lastId: number, from: number, to: number): StoredEncounter[];
}

export interface PullPart {
  index: number;
  last: boolean;
  /** Every encounter of a part belongs to this life (the part's header names it). */
  life: string;
  encounters: StoredEncounter[];
}

/** Ids read per query: a few milliseconds of work on a Pi. */
const READ_CHUNK_IDS = 256;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Streams the encounters overlapping [from, to) to `emit` in parts of at most `partSize`, each of
 * one life; the final part has `last` set (an empty answer is one empty part of `currentLife`).
 * Returns how many encounters were sent.
 */
export async function streamPull(
  source: PullSource, from: number, to: number, partSize: number, currentLife: string,
  emit: (part: PullPart) => Promise<void>,
): Promise<number> {
  const plan = source.pullPlan(from, to);
  let index = 0;
  let total = 0;
  // A full part waits here until the next one starts: only then is it known not to be the last.
  let held: { life: string; encounters: StoredEncounter[] } | null = null;
  let filling: { life: string; encounters: StoredEncounter[] } | null = null;
  const release = async (last: boolean) => {
    if (held) await emit({ index: index++, last, ...held });
    held = filling;
    filling = null;
  };
  for (const range of plan.ranges) {
    for (let first = range.firstId; first <= range.lastId; first += READ_CHUNK_IDS) {
      const rows = source.readRange(first, Math.min(range.lastId, first + READ_CHUNK_IDS - 1), from, to);
      for (const e of rows) {
        if (filling && (filling.life !== e.life || filling.encounters.length >= partSize)) await release(false);
        filling ??= { life: e.life, encounters: [] };
        filling.encounters.push(e);
        total++;
      }
      await turn();
    }
  }
  if (filling) await release(false);
  held ??= { life: currentLife, encounters: [] };
  await emit({ index: index++, last: true, ...held });
  return total;
}
