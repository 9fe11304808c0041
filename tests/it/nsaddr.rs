//! Name-server discovery over HTTP: the address server raftmq serves, and the client
//! crate finding the name servers through it instead of being given them.

use std::time::Duration;

use client::{ClientConfig, Message, Producer, SendStatus};

use crate::cluster::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_given_a_domain_finds_the_name_servers_and_sends() {
    let cluster = TestCluster::start().await;
    // The answer lists a name server that is down first: clients try the next.
    let addrs = format!("127.0.0.1:1;{}", cluster.namesrv);
    let (http, _task) = raftmq::http::serve(
        "name-server address server",
        "127.0.0.1:0".parse().unwrap(),
        raftmq::http::nsaddr(addrs.clone()),
    )
    .await
    .unwrap();
    // RocketMQ's rule: a domain with a port is asked at that port.
    let found = client::nsaddr::fetch(&http.to_string(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        found,
        vec!["127.0.0.1:1".to_string(), cluster.namesrv.to_string()]
    );
    // A unit's subgroup gets the same answer (Java: nsaddr-{unit}?nofix=1).
    let unit = format!("http://{http}/rocketmq/nsaddr-unit1?nofix=1");
    assert_eq!(
        client::nsaddr::fetch(&unit, Duration::from_secs(5))
            .await
            .unwrap(),
        found
    );

    let config = ClientConfig {
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::with_namesrv_domain(&http.to_string())
    };
    let producer = Producer::new("nsaddr-producer", config);
    let sent = producer
        .send(Message::new("DiscoveredTopic", "found by domain"))
        .await
        .unwrap();
    assert_eq!(sent.status, SendStatus::Ok);

    // A wrong path is a clear error naming the address server and its answer.
    let wrong = format!("http://{http}/elsewhere");
    let error = client::nsaddr::fetch(&wrong, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("404") && error.contains(&wrong), "{error}");
    let producer = Producer::new(
        "lost-producer",
        ClientConfig {
            request_timeout: Duration::from_secs(2),
            ..ClientConfig::with_namesrv_domain(&wrong)
        },
    );
    let error = producer
        .send(Message::new("DiscoveredTopic", "nowhere"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("404"), "{error}");
    cluster.shutdown().await;
}
