//! The group changes under a running stream: member B joins while A consumes, later A
//! leaves with a graceful stop. Partitions move twice (cooperative-sticky), and still
//! every message is applied exactly once: nothing lost at a hand-over, nothing applied
//! twice — duplicates delivered are counted, and the inbox suppresses them.

use std::time::Duration;

use test_support::eventually_with;

use crate::inbox_recorder::{deliveries_by_member, install, start_member, tally, wait_all_applied};
use crate::support::Fixture;

const MESSAGES: i64 = 300;

/// Waits (up to 60 s) until `member` has handled at least `n` deliveries.
async fn wait_deliveries(fx: &Fixture, member: &str, n: i64) {
    eventually_with(
        &format!("member {member} handled {n} deliveries"),
        Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let by_member = deliveries_by_member(&fx.pool).await;
            let handled = by_member
                .iter()
                .find(|(m, _)| m == member)
                .map_or(0, |(_, c)| *c);
            if handled >= n { Ok(()) } else { Err(by_member) }
        },
    )
    .await;
}

/// What this does **not** show: the commit-after-effect rule. A graceful hand-over
/// crashes nothing, so a consumer that commits before the effect passes it as well; the
/// failure matrix's C1 row (`tools/drills/tests/matrix_subset.rs`) is the test
/// that loses an order when the offset goes first. What goes red here is the revoke
/// hand-over (`hand_over.rs`): without it the new owner re-delivers what was in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_and_one_leaving_mid_stream_lose_nothing_and_apply_nothing_twice() {
    let fx = Fixture::with_partitions(6).await;
    install(&fx.pool).await;

    // The stream: 300 messages keyed by sequence number (spread over the 6 partitions),
    // one every 40 ms, produced while the group changes.
    let a = start_member(&fx, "A", Duration::ZERO);
    let producing = {
        let fx = &fx;
        async move {
            for seq in 0..MESSAGES {
                fx.publish_keyed(seq, 1).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
    };
    let changing_the_group = async {
        // B joins once A is well into the stream: A gives up some partitions.
        wait_deliveries(&fx, "A", 30).await;
        let b = start_member(&fx, "B", Duration::ZERO);
        // A leaves once B is consuming: B takes over A's partitions.
        wait_deliveries(&fx, "B", 5).await;
        a.stop().await;
        b
    };
    let ((), b) = tokio::join!(producing, changing_the_group);

    wait_all_applied(&fx, MESSAGES).await;
    b.stop().await;

    let t = tally(&fx.pool, &fx.group).await;
    let by_member = deliveries_by_member(&fx.pool).await;
    let report = format!(
        "delivered {}, duplicates suppressed {}, applied {} ({} distinct) of {MESSAGES} produced; \
         deliveries by member {by_member:?}",
        t.delivered, t.duplicates_suppressed, t.applied, t.distinct_applied
    );
    eprintln!("rebalance: {report}");
    assert_eq!(
        (t.distinct_applied, t.applied),
        (MESSAGES, MESSAGES),
        "(distinct applied, applications): none lost, none applied twice; {report}"
    );
    assert_eq!(
        t.delivered,
        t.applied + t.duplicates_suppressed,
        "every delivery was either applied or suppressed by the inbox; {report}"
    );
    // The hand-overs were graceful (a join, a stop): the revoking member committed what
    // it had applied as it let go (librdkafka's commit of removed partitions, see
    // `MessageConsumer::new`), so no copy was delivered.
    assert_eq!(
        t.duplicates_suppressed, 0,
        "a graceful hand-over re-delivers nothing; {report}"
    );
}
