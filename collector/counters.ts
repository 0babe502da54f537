// What the collector counts, in its health document and (as Prometheus metrics) on /metrics.

export interface CollectorCounters {
  batchesStored: number;
  batchesDuplicate: number;
  batchesRejected: number;
  batchesUnverified: number;
  batchesOutOfSequence: number;
  encountersStored: number;
  encountersDuplicate: number;
  acksSent: number;
  tempIdBatchesIssued: number;
  tempIdRequestsRefused: number;
  /** TLS client certificates issued to units renewing theirs, and requests refused (with why, in the answer). */
  certificatesIssued: number;
  certificateRequestsRefused: number;
  /** Gateways' new signing keys registered (a rotation), and requests refused (with why, in the answer). */
  signingKeysRegistered: number;
  signingKeyRequestsRefused: number;
  /** Statuses and temp-ID requests not signed by the registered key of the gateway their topic names: ignored. */
  unitMessagesRefused: number;
  /** Group commits that failed (nothing acked: the gateways re-send). */
  commitFailures: number;
  retentionDaysPurged: number;
}
