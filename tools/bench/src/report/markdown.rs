//! The Markdown report: one table per question, ratios beside the figures they divide.

use std::fmt::Write as _;

use super::Results;

fn mib(kib: u64) -> String {
    format!("{:.0}", kib as f64 / 1024.0)
}

pub fn render(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmark run {}\n", r.run_id);
    let _ = writeln!(
        s,
        "{} → {}; {} cores, kernel {}; load average at start `{}`, at end `{}`; \
         throughput windows {} s, {} API clients.\n",
        r.started_at,
        r.finished_at,
        r.machine.cores,
        r.machine.kernel,
        r.machine.load_at_start,
        r.machine.load_at_end,
        r.seconds,
        r.concurrency
    );

    if !r.targets.is_empty() {
        s.push_str("## Targets\n\n| measurement | target | reached | |\n|---|---|---|---|\n");
        for t in &r.targets {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                t.name,
                t.target,
                t.reached,
                if t.met { "met" } else { "**short**" }
            );
        }
        s.push('\n');
    }

    if r.api.is_some() || r.relay.is_some() || r.consumer.is_some() {
        s.push_str("## Throughput against the ceilings\n\n");
        s.push_str("| what | project | ceiling | ratio |\n|---|---|---|---|\n");
        if let Some(api) = &r.api {
            let ceiling = api.pgbench_two_inserts.tps;
            for run in [&api.relay_off, &api.relay_on] {
                let _ = writeln!(
                    s,
                    "| order API, relay {}, orders/s ({} clients; p50 {:.1} ms, p99 {:.1} ms; {} failed) | {:.0} | pgbench two inserts: {:.0} tps | {:.0} % |",
                    if run.relay_enabled {
                        "on (as deployed)"
                    } else {
                        "off"
                    },
                    run.clients,
                    run.latency_ms.p50,
                    run.latency_ms.p99,
                    run.failed,
                    run.orders_per_s,
                    ceiling,
                    run.orders_per_s / ceiling.max(f64::EPSILON) * 100.0
                );
            }
            let _ = writeln!(
                s,
                "| pgbench: the two inserts + the two reads of the answer, tps | {:.0} | pgbench two inserts: {:.0} tps | {:.0} % |",
                api.pgbench_with_read_back.tps,
                ceiling,
                api.pgbench_with_read_back.tps / ceiling.max(f64::EPSILON) * 100.0
            );
        }
        if let Some(relay) = &r.relay {
            let of_raw = |rate: f64| rate / relay.raw_pipelined_per_s.max(f64::EPSILON) * 100.0;
            let _ = writeln!(
                s,
                "| relay streaming, events/s ({} events of {} B, claims of {}, at most {} rows in flight: as deployed) | {:.0} | raw producer, all in flight: {:.0}/s | {:.0} % |",
                relay.events,
                relay.payload_bytes,
                relay.batch_size,
                relay.max_in_flight,
                relay.stream_events_per_s,
                relay.raw_pipelined_per_s,
                relay.ratio * 100.0
            );
            for (bound, rate) in &relay.stream_sweep {
                let _ = writeln!(
                    s,
                    "| relay streaming, `RELAY_MAX_IN_FLIGHT={bound}`, events/s | {rate:.0} | raw producer, all in flight: {:.0}/s | {:.0} % |",
                    relay.raw_pipelined_per_s,
                    of_raw(*rate)
                );
            }
            let _ = writeln!(
                s,
                "| relay in waves (`RELAY_MODE=wave`, {} passes in flight), events/s | {:.0} | raw producer, all in flight: {:.0}/s | {:.0} % |",
                relay.concurrency,
                relay.wave_events_per_s,
                relay.raw_pipelined_per_s,
                relay.wave_ratio * 100.0
            );
            let _ = writeln!(
                s,
                "| relay in waves, one pass in flight (`RELAY_CONCURRENCY=1`), events/s | {:.0} | raw producer, all in flight: {:.0}/s | {:.0} % |",
                relay.one_lane_events_per_s,
                relay.raw_pipelined_per_s,
                of_raw(relay.one_lane_events_per_s)
            );
            let _ = writeln!(
                s,
                "| raw producer in waves of {} (the wave's send pattern), events/s | {:.0} | raw producer, all in flight: {:.0}/s | {:.0} % |",
                relay.batch_size,
                relay.raw_waves_per_s,
                relay.raw_pipelined_per_s,
                of_raw(relay.raw_waves_per_s)
            );
        }
        if let Some(c) = &r.consumer {
            for p in &c.sweep {
                let _ = writeln!(
                    s,
                    "| consumer (payment-service), `CONSUMER_CONCURRENCY={}`{}, messages/s ({} messages) | {:.0} | pgbench dedup + payment, {} clients: {:.0} tps | {:.0} % |",
                    p.concurrency,
                    if p.concurrency == c.default_concurrency {
                        " (the default)"
                    } else {
                        ""
                    },
                    c.messages,
                    p.messages_per_s,
                    p.pgbench.clients,
                    p.pgbench.tps,
                    p.ratio * 100.0
                );
            }
            if let Some(d) = c.deployed() {
                let _ = writeln!(
                    s,
                    "| consumer at the default with its outcome relay off (`RELAY_ENABLED=false`), messages/s | {:.0} | pgbench dedup + payment, {} clients: {:.0} tps | {:.0} % |",
                    c.relay_off_messages_per_s,
                    d.pgbench.clients,
                    d.pgbench.tps,
                    c.relay_off_messages_per_s / d.pgbench.tps.max(f64::EPSILON) * 100.0
                );
            }
        }
        s.push('\n');
    }

    if let Some(relay) = &r.relay {
        let p = relay.pass_ms;
        let _ = writeln!(
            s,
            "## One wave of {} rows (`RELAY_MODE=wave`, one pass in flight), where the time goes\n\n\
             | stage | ms per pass | share |\n|---|---|---|\n\
             | claim (`Relay::claim` alone: {:.0} rows/s) | {:.1} | {:.0} % |\n\
             | publish, all acks awaited (raw producer in waves) | {:.1} | {:.0} % |\n\
             | mark sent (one statement per batch) and the rest | {:.1} | {:.0} % |\n\
             | whole pass (one-lane relay events/s) | {:.1} | 100 % |\n",
            relay.batch_size,
            relay.claim_only_rows_per_s,
            p.claim,
            p.claim / p.total * 100.0,
            p.publish,
            p.publish / p.total * 100.0,
            p.mark_and_rest,
            p.mark_and_rest / p.total * 100.0,
            p.total
        );
    }

    if let Some(relay) = &r.relay {
        let (one, wave) = (relay.single_request_ms, relay.wave_ack_ms);
        let _ = writeln!(
            s,
            "## The ack wait of a wave, measured\n\n\
             | what | p50 ms | p99 ms | max ms | samples |\n|---|---|---|---|---|\n\
             | one `acks=all` produce request (one record, linger 0, awaited before the next) | {:.1} | {:.1} | {:.1} | {} |\n\
             | a raw wave of {} records (linger 5 ms), sent → last ack | {:.1} | {:.1} | {:.1} | {} |\n",
            one.p50,
            one.p99,
            one.max,
            one.count,
            relay.batch_size,
            wave.p50,
            wave.p99,
            wave.max,
            wave.count
        );
    }

    if let Some(c) = &r.consumer {
        s.push_str(
            "## The consumer's sweep: where the CPU went while it drained\n\n\
             | concurrency | applied | messages/s | pgbench tps | ratio | CPU during the drain (cores; machine busy share) |\n\
             |---|---|---|---|---|---|\n",
        );
        for p in &c.sweep {
            let _ = writeln!(
                s,
                "| {} | {} of {} | {:.0} | {:.0} | {:.0} % | {} |",
                p.concurrency,
                p.applied,
                c.messages,
                p.messages_per_s,
                p.pgbench.tps,
                p.ratio * 100.0,
                p.cpu.describe()
            );
        }
        if let Some(best) = c.fastest() {
            let _ = writeln!(
                s,
                "\nFastest: concurrency {} ({:.0} messages/s); the default is {}.\n",
                best.concurrency, best.messages_per_s, c.default_concurrency
            );
        }
    }

    if let Some(sat) = &r.saturation {
        let _ = writeln!(
            s,
            "## Saturation: the highest fixed arrival rate that holds\n\n\
             Bisection up to {} orders/s, {} s per step. A step passes when the achieved \
             rate is ≥ 95 % of the offered one with no failed request, and (chain) every \
             order is `PAID`/`PAYMENT_FAILED` within {} s after the last answer.\n\n\
             | what | saturation, orders/s | ratio |\n|---|---|---|\n\
             | API alone, relay on (as deployed) | {}{} | 100 % |\n\
             | the chain: order → relay → payment → outcome → order settled | {}{} | {:.0} % |\n",
            sat.upper_end,
            sat.step_seconds,
            sat.settle_seconds,
            if sat.api.at_upper_end { "≥ " } else { "" },
            sat.api.saturation,
            if sat.chain.at_upper_end { "≥ " } else { "" },
            sat.chain.saturation,
            sat.ratio * 100.0
        );
        s.push_str(
            "| search | offered/s | achieved/s | created | failed | dropped | settled after the load | backlog at the last answer: not relayed / not applied / not settled | CPU during the step | |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
        for (name, search) in [("api", &sat.api), ("chain", &sat.chain)] {
            for st in &search.steps {
                let chain = name == "chain";
                let _ = writeln!(
                    s,
                    "| {name} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
                    st.offered,
                    st.achieved,
                    st.created,
                    st.failed,
                    st.dropped,
                    match (chain, st.settled_after_ms) {
                        (false, _) => "–".to_owned(),
                        (true, Some(ms)) => format!("{ms:.0} ms"),
                        (true, None) => format!("{} unsettled", st.unsettled),
                    },
                    if chain {
                        format!(
                            "{} / {} / {}",
                            st.backlog_at_stop.not_relayed,
                            st.backlog_at_stop.not_applied,
                            st.backlog_at_stop.not_settled
                        )
                    } else {
                        "–".to_owned()
                    },
                    st.cpu.describe(),
                    if st.passed { "pass" } else { "**fail**" }
                );
            }
        }
        s.push('\n');
    }

    if let Some(e2e) = &r.e2e {
        let _ = writeln!(
            s,
            "## End-to-end latency: order accepted → payment applied ({} s per rate; polling period {} ms)\n",
            e2e.seconds_per_rate, e2e.poll_ms
        );
        s.push_str(
            "| relay wake-up | rate | achieved/s | created | dropped | unsettled | HTTP p50 / p99 ms | e2e p50 ms | e2e p99 ms | e2e max ms | relay stage p50 / p99 | consume stage p50 / p99 |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for p in &e2e.points {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {} | {} | {} | {:.1} / {:.1} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} |",
                p.wake.label(),
                p.target_rate,
                p.achieved_rate,
                p.created,
                p.dropped,
                p.unsettled,
                p.http_ms.p50,
                p.http_ms.p99,
                p.e2e_ms.p50,
                p.e2e_ms.p99,
                p.e2e_ms.max,
                p.relay_stage_ms.p50,
                p.relay_stage_ms.p99,
                p.consume_stage_ms.p50,
                p.consume_stage_ms.p99
            );
        }
        s.push('\n');
    }

    s.push_str(
        "## Memory (RSS, MiB)\n\n| service | run | idle | under load (peak) |\n|---|---|---|---|\n",
    );
    if let Some(e2e) = &r.e2e {
        let m = e2e.memory;
        let _ = writeln!(
            s,
            "| order-service | e2e, NOTIFY, all rates | {} | {} |",
            mib(m.order_service_idle_kib),
            mib(m.order_service_load_kib)
        );
        let _ = writeln!(
            s,
            "| payment-service | e2e, NOTIFY, all rates | {} | {} |",
            mib(m.payment_service_idle_kib),
            mib(m.payment_service_load_kib)
        );
    }
    if let Some(api) = &r.api {
        for run in [&api.relay_off, &api.relay_on] {
            let _ = writeln!(
                s,
                "| order-service | API closed loop, relay {} | {} | {} |",
                if run.relay_enabled { "on" } else { "off" },
                mib(run.rss_idle_kib),
                mib(run.rss_load_kib)
            );
        }
    }
    if let Some(c) = &r.consumer {
        let _ = writeln!(
            s,
            "| payment-service | consumer drain at the default concurrency | – | {} |",
            mib(c.rss_load_kib)
        );
    }
    s.push('\n');

    if let Some(rows) = &r.claim {
        s.push_str("## Outbox claim strategies (release build, claim_bench)\n\n| strategy | relays | rows | seconds | rows/s |\n|---|---|---|---|---|\n");
        for row in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {:.0} |",
                row.strategy, row.relays, row.rows, row.seconds, row.rows_per_s
            );
        }
        let mut relays: Vec<u32> = rows.iter().map(|r| r.relays).collect();
        relays.sort_unstable();
        relays.dedup();
        for n in relays {
            if let Some(best) = rows
                .iter()
                .filter(|r| r.relays == n)
                .max_by(|a, b| a.rows_per_s.total_cmp(&b.rows_per_s))
            {
                let _ = writeln!(s, "\n{} relay(s): **{}** is faster.", n, best.strategy);
            }
        }
        s.push('\n');
    }

    if !r.errors.is_empty() {
        s.push_str("## Measurements that failed\n\n");
        for e in &r.errors {
            let _ = writeln!(s, "- {e}");
        }
    }
    s
}
