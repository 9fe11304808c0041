//! Bad input gets an error response or a closed connection, and the broker keeps serving
//! other clients (DESIGN §7).

use std::time::Duration;

use client::{Message, Producer};
use proto::net::rpc::RpcClient;
use proto::net::CommandReader;
use proto::remoting::codes::response;
use proto::remoting::header::SendMessageHeader;
use proto::remoting::RemotingCommand;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::cluster::TestCluster;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn still_serves(cluster: &TestCluster) {
    let producer = Producer::new("PG-ok", cluster.client_config());
    producer
        .send(Message::new("Healthy", "still here"))
        .await
        .expect("broker keeps serving");
}

/// Writes raw bytes and returns what the broker answered before closing, if anything.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Option<RemotingCommand> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let (read_half, _write_half) = tokio::io::split(stream);
    let mut reader = CommandReader::new(read_half);
    match tokio::time::timeout(TIMEOUT, reader.read()).await {
        Ok(Ok(Some(reply))) => {
            // After an error reply the broker closes the connection.
            let next = tokio::time::timeout(TIMEOUT, reader.read())
                .await
                .expect("closed promptly");
            assert!(
                !matches!(next, Ok(Some(_))),
                "no further frames after a malformed one"
            );
            Some(reply)
        }
        Ok(_) => None,
        Err(_) => panic!("broker neither answered nor closed"),
    }
}

fn send_request(topic: &str, body: Vec<u8>) -> RemotingCommand {
    SendMessageHeader {
        producer_group: "PG",
        topic,
        default_topic: "TBW102",
        default_topic_queue_nums: 4,
        queue_id: 0,
        ..SendMessageHeader::default()
    }
    .to_command()
    .with_body(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_close_the_connection_with_a_reason() {
    let cluster = TestCluster::start().await;
    let addr = cluster.broker.as_ref().unwrap().local_addr;
    // A frame claiming 2 GiB.
    let reply = raw(addr, &[0x80, 0, 0, 0, 0, 0, 0, 0])
        .await
        .expect("an error response");
    assert_eq!(reply.code, response::SYSTEM_ERROR);
    assert!(reply.remark.unwrap().contains("exceeds"), "names the limit");
    // A well-sized frame full of random bytes (serialize type 0x5A is unknown).
    let mut junk = vec![0u8, 0, 0, 64];
    junk.extend((0..64u8).map(|i| i.wrapping_mul(97).wrapping_add(0x5A)));
    let reply = raw(addr, &junk).await.expect("an error response");
    assert!(reply.remark.unwrap().contains("malformed"));
    // Random bytes that never make a frame: the broker waits; closing is fine.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&[1, 2]).await.unwrap();
    drop(stream);
    still_serves(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_responses_on_a_live_connection() {
    let cluster = TestCluster::start().await;
    let addr = cluster.broker.as_ref().unwrap().local_addr.to_string();
    let rpc = RpcClient::connect(&addr, None).await.unwrap();
    // Unknown request code.
    let reply = rpc
        .invoke(RemotingCommand::request(9999), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply.code, response::REQUEST_CODE_NOT_SUPPORTED);
    // A message over the 4 MiB limit (the frame itself is within 16 MiB).
    let reply = rpc
        .invoke(send_request("BigTopic", vec![0u8; 5 << 20]), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply.code, response::MESSAGE_ILLEGAL);
    assert!(reply.remark.unwrap().contains("message_size_max"));
    // An invalid topic name.
    let reply = rpc
        .invoke(send_request("bad/topic name", b"x".to_vec()), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply.code, response::MESSAGE_ILLEGAL);
    assert!(reply.remark.unwrap().contains("topic"));
    // A request missing a required header field names the field.
    let reply = rpc
        .invoke(
            RemotingCommand::request(proto::remoting::codes::request::PULL_MESSAGE),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(reply.code, response::SYSTEM_ERROR);
    assert!(reply.remark.unwrap().contains("consumerGroup"));
    // The same connection still works, and so does everyone else's.
    let reply = rpc
        .invoke(send_request("GoodTopic", b"ok".to_vec()), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply.code, response::SUCCESS);
    still_serves(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topics_are_refused_when_auto_create_is_off() {
    let cluster = TestCluster::start_with(|c| c.auto_create_topic_enable = false).await;
    let addr = cluster.broker.as_ref().unwrap().local_addr.to_string();
    let rpc = RpcClient::connect(&addr, None).await.unwrap();
    let reply = rpc
        .invoke(send_request("NoSuchTopic", b"x".to_vec()), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply.code, response::TOPIC_NOT_EXIST);
    assert!(reply.remark.unwrap().contains("NoSuchTopic"));
    let producer = Producer::new("PG", cluster.client_config());
    let e = producer
        .send(Message::new("NoSuchTopic", "x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("NoSuchTopic"), "{e}");
    cluster.shutdown().await;
}
