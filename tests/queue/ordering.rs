//! Priority order (critical > core > normal, FIFO within) and aging.

use crate::harness::*;
use hivebus::ops::queue::QueueConfig;
use std::time::Duration;

async fn drain_order(q: &Q, n: usize) -> Vec<String> {
    let mut c = q.consumer(&["work"], 1).await;
    let mut order = Vec::new();
    for _ in 0..n {
        let l = next_lease(&mut c).await;
        order.push(l.payload["args"]["k"].as_str().unwrap().to_owned());
        finish(&c, &l, "ok").await.unwrap();
    }
    order
}

#[tokio::test(start_paused = true)]
async fn leases_go_critical_then_core_then_normal_fifo_within_each() {
    let q = start(config()).await;
    let c = q.client().await;
    for (k, p) in [
        ("n1", "normal"),
        ("c1", "critical"),
        ("o1", "core"),
        ("c2", "critical"),
        ("n2", "normal"),
        ("o2", "core"),
    ] {
        submit(&c, task("work", k, p)).await.unwrap();
    }
    assert_eq!(
        drain_order(&q, 6).await,
        ["c1", "c2", "o1", "o2", "n1", "n2"]
    );
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn aging_lets_a_waiting_normal_task_pass_a_later_critical_flood() {
    let q = start(QueueConfig {
        aging_ms: 1_000,
        ..config()
    })
    .await;
    let c = q.client().await;
    submit(&c, task("work", "old-normal", "normal"))
        .await
        .unwrap();
    // Two aging periods later the normal task ranks as critical, and it is older.
    tokio::time::advance(Duration::from_millis(2_100)).await;
    for i in 0..5 {
        submit(&c, task("work", &format!("flood-{i}"), "critical"))
            .await
            .unwrap();
    }
    // Without the wait, a fresh normal task stays behind the flood.
    submit(&c, task("work", "new-normal", "normal"))
        .await
        .unwrap();
    let order = drain_order(&q, 7).await;
    assert_eq!(order[0], "old-normal", "{order:?}");
    assert_eq!(
        &order[1..6],
        ["flood-0", "flood-1", "flood-2", "flood-3", "flood-4"]
    );
    assert_eq!(order[6], "new-normal");
    q.stop().await;
}
