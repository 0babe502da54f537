// What each figure of bench/report.json measures, and its target where an issue set one: the one
// list that `make bench` prints beside its figures and writes into docs/benchmarks.md.

export interface Figure {
  what: string;
  target?: string;
}

export const FIGURES: Record<string, Figure> = {
  decode_aggregate_adverts_per_s: { what: 'decode + aggregate on one core, pre-generated adverts of a busy entrance', target: '≥ 500000' },
  decode_aggregate_ns_per_advert: { what: 'the same, per advert' },
  bench_adverts: { what: 'adverts in that run' },
  bench_encounters: { what: 'encounters they made' },
  wire_bytes_per_encounter: { what: 'EN, signed protocol-2 batches as the pipeline cuts them (60 phones/min, a batch at least every 30 s)', target: '≤ 40' },
  wire_bytes_per_encounter_full_batches: { what: 'the same in full 256-encounter batches' },
  mqtt_bytes_per_encounter_full_batches: { what: 'the same with MQTT framing (topic, properties)' },
  disk_bytes_per_encounter: { what: 'bytes written to disk (/proc/self/io) per encounter: 60 phones/min, one commit per 60 s', target: '≤ 400' },
  disk_bytes_per_hour: { what: 'the same run, per hour' },
  disk_fsyncs_per_hour: { what: 'syncs per hour of that run (strace)' },
  write_tx_per_s: { what: 'write transactions per second in steady state (one per store.checkpointS)', target: '≤ 1' },
  pipeline_adverts_per_s: { what: 'crowd generation + decode + aggregate + SQLite' },
  rss_mb: { what: 'peak RSS of the pipeline process' },
  pull_rss_growth_mb: { what: 'a pull of 500,000 encounters: peak RSS over the baseline of a daemon that has been ingesting', target: '≤ 30' },
  pull_max_loop_block_ms: { what: 'longest event-loop stall during that pull', target: '≤ 50' },
  pull_seconds: { what: 'that pull, to a requester in another process' },
  pull_cold_rss_growth_mb: { what: 'the same pull in a process that has just started' },
  hci_stack_adverts_per_s: { what: 'virtual controller → H4 → noble → decoders → aggregation → SQLite', target: '≥ 50000' },
  heap_used_growth_mb_per_1m_addresses: { what: 'JS heap growth over 1,000,000 rotating addresses through that stack' },
  rss_growth_mb_per_1m_addresses: { what: 'least-squares slope of RSS sampled at rest over those addresses', target: '< 10' },
  bluetrace_exchanges_per_min: { what: 'the gateway as BlueTrace central: unmodified noble against OpenTrace phones on the virtual controller', target: '≥ 300' },
  bluetrace_rss_growth_mb_per_10k_exchanges: { what: 'least-squares slope of RSS over the second half of that run', target: '< 10' },
  bluetrace_heap_growth_mb_per_10k_exchanges: { what: 'the same, JS heap after a collection' },
  wire_bytes_per_bluetrace_encounter: { what: 'BlueTrace encounters, 256 per batch (61 bytes are the temp ID)' },
  collector_fsyncs_per_batch: { what: 'collector syncs per batch, one gateway sending a batch only once the previous is acked' },
  collector_fsyncs_per_batch_fleet_burst: { what: 'the same with 200 gateways sending at once (batches that arrive together share a commit)' },
  collector_batches_per_s_fleet_burst: { what: 'batches stored per second in that burst' },
  collector_encounters_per_s_sqlite_1: { what: 'a queued backlog of 512,000 encounters in 256-encounter batches, one `vgw collect` on SQLite' },
  collector_encounters_per_s_sqlite_2: { what: 'the same, two collectors in a shared group, each with its own file' },
  collector_encounters_per_s_postgres_1: { what: 'the same backlog into one PostgreSQL 15, one collector', target: '≥ 20000' },
  collector_encounters_per_s_postgres_2: { what: 'the same, two collectors', target: '≥ 20000' },
  collector_postgres_encounter_bytes: { what: 'PostgreSQL bytes on disk per encounter, indexes included' },
  collector_postgres_batch_record_bytes: { what: 'PostgreSQL bytes on disk per batch record' },
  collector_postgres_database_bytes_per_encounter: { what: 'the whole PostgreSQL database per encounter' },
  collector_sqlite_database_bytes_per_encounter: { what: 'the SQLite database per encounter' },
  fleet_gateways: { what: '`vgw fleet-sim` gateways at the venue mix for 10 minutes, two collectors on PostgreSQL, broker stopped for 10 s at minute 7; counted only with 0 lost and 0 duplicated', target: '≥ 1000' },
  fleet_reconnect_drain_s: { what: "from the broker's restart until every batch cut before it is acknowledged", target: '≤ 60' },
  fleet_reconnect_all_connected_s: { what: 'from the restart until every gateway is connected again' },
  fleet_latency_p50_s: { what: "an encounter's closing → its batch's ack at the gateway (after the backend's commit), median" },
  fleet_latency_p99_s: { what: 'the same, 99th percentile' },
  fleet_status_bytes: { what: 'one online status document of a simulated unit' },
  control_verify_us: { what: 'a unit checking one signed control message (COSE_Sign1, Ed25519, schema), requests and acks alternating' },
  command_roundtrip_p50_ms: { what: 'a signed command (status, logLevel) to a real `vgw run` over a private Mosquitto and its signed answer verified, median' },
  command_roundtrip_p99_ms: { what: 'the same, 99th percentile' },
  command_roundtrips: { what: 'commands in that run' },
  fleet_config_gateways: { what: 'simulated gateways (real uplink and signing, the unit\'s rules for remote configuration) taken through staged rollouts by a collector' },
  fleet_config_converge_s: {
    what: 'a fleet-wide change (statuses every 300 s instead of 30), canary 5 %, then 1,200 units a minute: from the stage after the canary until the last unit reported it applied',
    target: '≤ 120',
  },
  fleet_config_not_applied: { what: 'units of that rollout not running the change at its end', target: '= 0' },
  fleet_config_total_s: { what: 'the same, from the rollout\'s start (the canary included)' },
  fleet_config_applied: { what: 'units that applied it' },
  fleet_config_abort_units: { what: 'a change that cuts units off their broker, canary 5 %, stopping at 2 % failed: units it reached before it stopped' },
  fleet_config_abort_bound: { what: 'canary + threshold of that rollout, in units' },
  fleet_config_abort_overshoot: { what: 'units it reached beyond canary + threshold', target: '= 0' },
  fleet_config_abort_not_rolled_back: { what: 'units it reached that did not roll back by themselves and come back to their broker', target: '= 0' },
  fleet_config_abort_s: { what: 'from its start until it stopped itself (the units\' health gate: 30 s)' },
  fleet_config_lost: { what: 'encounters lost across both rollouts (-1: the fleet did not drain)', target: '= 0' },
  fleet_config_duplicates: { what: 'encounters stored twice across both rollouts', target: '= 0' },
  release_bytes: { what: '`make release` for this machine: the tarball a unit downloads (code, production dependencies, native addons, the systemd unit)' },
  release_unpacked_bytes: { what: 'the same release unpacked on the unit (releases/<version>)' },
  release_build_s: { what: '`make release` on this machine, from a built tree' },
  update_install_s: {
    what: "a unit's update with the download excluded, median of 5: the tarball's SHA-256 and the manifest's signature checked, unpacked beside the running release, flushed to the disk, renamed into place, the trial written and `current` moved (the restart and health gate are the daemon's start)",
  },
};

/** The figure's description and target, or its key alone for a figure not listed above. */
export function figure(key: string): Figure {
  return FIGURES[key] ?? { what: '' };
}
