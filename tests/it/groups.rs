//! Subscription groups: created, listed, changed and deleted through the admin API, and
//! enforced on pulls (auto-creation off, consuming off, broadcasting off).

use std::time::Duration;

use client::{
    Admin, ClientError, ConsumeResult, Message, MessageModel, Producer, PullConsumer,
    PushConsumerBuilder,
};
use proto::remoting::body::SubscriptionGroupBody;
use proto::remoting::codes::response;

use crate::cluster::TestCluster;
use crate::roundtrip::eventually_async;

fn group(name: &str) -> SubscriptionGroupBody {
    SubscriptionGroupBody {
        group_name: name.to_string(),
        ..SubscriptionGroupBody::default()
    }
}

/// The response code of one pull of `queue` by `consumer` (0 when it succeeded).
async fn pull_code(consumer: &PullConsumer, queue: &client::MessageQueue) -> i32 {
    match consumer.pull(queue, "*", 0, 8).await {
        Ok(_) => response::SUCCESS,
        Err(ClientError::Broker { code, .. }) => code,
        Err(e) => panic!("pull failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_groups_are_managed_and_enforced() {
    let cluster = TestCluster::start_with(|c| c.auto_create_subscription_group = false).await;
    let config = cluster.client_config();
    let admin = Admin::new(config.clone());
    admin.create_topic("Groups", 1, None, false).await.unwrap();
    let producer = Producer::new("groups-producer", config.clone());
    producer
        .send(Message::new("Groups", "x".to_string()))
        .await
        .unwrap();
    let consumer = PullConsumer::new("G1", config.clone());
    let queue = consumer.fetch_queues("Groups").await.unwrap()[0].clone();

    // Unknown, and auto-creation is off.
    assert_eq!(
        pull_code(&consumer, &queue).await,
        response::SUBSCRIPTION_GROUP_NOT_EXIST
    );
    // Created with consuming off.
    let off = SubscriptionGroupBody {
        consume_enable: false,
        retry_max_times: 3,
        ..group("G1")
    };
    admin.create_subscription_group(&off, None).await.unwrap();
    assert_eq!(pull_code(&consumer, &queue).await, response::NO_PERMISSION);
    let tables = admin.subscription_groups(None).await.unwrap();
    let g1 = &tables[0].1.subscription_group_table["G1"];
    assert!(!g1.consume_enable);
    assert_eq!(g1.retry_max_times, 3);
    // Changed: consuming on.
    admin
        .create_subscription_group(&group("G1"), None)
        .await
        .unwrap();
    assert_eq!(pull_code(&consumer, &queue).await, response::SUCCESS);
    // Deleted: unknown again.
    admin.delete_subscription_group("G1", None).await.unwrap();
    assert_eq!(
        pull_code(&consumer, &queue).await,
        response::SUBSCRIPTION_GROUP_NOT_EXIST
    );
    // Bad input is named.
    let negative = SubscriptionGroupBody {
        retry_max_times: -1,
        ..group("G1")
    };
    let e = admin
        .create_subscription_group(&negative, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("retryMaxTimes"), "{e}");

    // Broadcasting off: once the group's consumers say they broadcast, its pulls are
    // refused.
    let no_broadcast = SubscriptionGroupBody {
        consume_broadcast_enable: false,
        ..group("G2")
    };
    admin
        .create_subscription_group(&no_broadcast, None)
        .await
        .unwrap();
    let pulls_g2 = PullConsumer::new("G2", config.clone());
    pulls_g2.fetch_queues("Groups").await.unwrap();
    assert_eq!(pull_code(&pulls_g2, &queue).await, response::SUCCESS);
    let broadcaster = PushConsumerBuilder::new("G2", config.clone())
        .subscribe("Groups", "*")
        .message_model(MessageModel::Broadcasting)
        .start(|_| ConsumeResult::Success)
        .await
        .unwrap();
    eventually_async(
        Duration::from_secs(10),
        "broadcast pulls refused",
        || async { (pull_code(&pulls_g2, &queue).await == response::NO_PERMISSION).then_some(()) },
    )
    .await;
    broadcaster.shutdown().await;
}
