// What the store remembers of its file between commits: one typed value, so a failed commit
// restores all of it (a field added here is restored with the rest).

export interface Life {
  life: string;
  firstId: number;
  nextSeq: number;
}

/** The store's memory of what is on the disk: a commit's transaction changes it, a rollback restores it whole. */
export interface WrittenState {
  /** Highest encounter id written; ids are contiguous from here on. */
  lastId: number;
  /** Highest encounter id inside a batch: everything above waits for a batch. */
  batchedThrough: number;
  /** When the oldest encounter waiting for a batch was written, by the steady clock (not the wall clock). */
  oldestUnbatchedAt: number | null;
  lives: Life[];
  /** Rows in `open_ids`, the live ones (referred to by open encounters) and the dead. */
  openIdsRows: number;
}

export const copyWritten = (w: WrittenState): WrittenState => ({ ...w, lives: w.lives.map((l) => ({ ...l })) });
