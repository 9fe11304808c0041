//! Requests as other RocketMQ clients write them, which raftmq's own client never does:
//! the C++ client's booleans, JSON numbers and enum ordinals, the Java push consumer's
//! pull without a subscription, the 5.x lite pull code, and the lock reply's field name.
//! `interop/` runs the real clients; these pin each dialect without them.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use client::{Message, Producer};
use proto::net::rpc::RpcClient;
use proto::net::CommandReader;
use proto::remoting::body::{from_json, ConsumerListBody, MessageQueue};
use proto::remoting::codes::{request, response};
use proto::remoting::header::PullMessageHeader;
use proto::remoting::RemotingCommand;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::cluster::TestCluster;

const TIMEOUT: Duration = Duration::from_secs(5);

/// One request's answer, which must come in time.
async fn call(rpc: &RpcClient, request: RemotingCommand) -> RemotingCommand {
    rpc.invoke(request, TIMEOUT).await.unwrap()
}

/// A frame with a JSON header written by hand, as librocketmq writes it.
fn json_frame(header: &str, body: &[u8]) -> BytesMut {
    let mut frame = BytesMut::new();
    frame.put_u32((4 + header.len() + body.len()) as u32);
    frame.put_u32(header.len() as u32); // serialize type 0: JSON
    frame.put_slice(header.as_bytes());
    frame.put_slice(body);
    frame
}

async fn exchange(addr: std::net::SocketAddr, frame: &[u8]) -> RemotingCommand {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(frame).await.unwrap();
    let (read_half, _write_half) = tokio::io::split(stream);
    let mut reader = CommandReader::new(read_half);
    loop {
        let frame = tokio::time::timeout(TIMEOUT, reader.read())
            .await
            .expect("an answer in time")
            .expect("a readable answer")
            .expect("an answer, not a close");
        // Skip what the broker asks of the client (NOTIFY_CONSUMER_IDS_CHANGED after a
        // heartbeat); the answer is the response frame.
        if frame.flag & proto::remoting::command::FLAG_RESPONSE != 0 {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpp_clients_send_and_heartbeat_are_accepted() {
    let cluster = TestCluster::start().await;
    let broker = cluster.broker.as_ref().unwrap().local_addr;
    Producer::new("PG", cluster.client_config())
        .send(Message::new("CppTopic", "creates the topic"))
        .await
        .unwrap();

    // A SEND_MESSAGE exactly as librocketmq 2.x writes one: "0"/"1" booleans and some
    // numbers as JSON numbers.
    let send = r#"{"code":10,"extFields":{"batch":"0","bornTimestamp":"1796402866956","defaultTopic":"TBW102","defaultTopicQueueNums":4,"flag":0,"producerGroup":"cpp-pg","properties":"TAGS\u0001TagA\u0002","queueId":0,"reconsumeTimes":"0","sysFlag":0,"topic":"CppTopic","unitMode":"0"},"flag":0,"language":"CPP","opaque":2,"remark":"","version":63}"#;
    let reply = exchange(broker, &json_frame(send, b"hello")).await;
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);

    // Its heartbeat: enums by ordinal, subVersion as a string, no tagsSet.
    let body = br#"{"clientID":"77-127.0.0.1@DEFAULT","consumerDataSet":[{"consumeFromWhere":0,"consumeType":1,"groupName":"cpp-cg","messageModel":1,"subscriptionDataSet":[{"subString":"*","subVersion":"1796402866958","topic":"CppTopic"}]}],"producerDataSet":[{"groupName":"cpp-pg"}]}"#;
    let heartbeat = r#"{"code":34,"extFields":{},"flag":0,"language":"CPP","opaque":3,"remark":"","version":63}"#;
    let reply = exchange(broker, &json_frame(heartbeat, body)).await;
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);

    // The heartbeat registered the consumer (on the connection, which `exchange` closed:
    // the broker keeps it until the channel is found gone, so look it up at once on a
    // second connection that heartbeats the same way).
    let rpc = RpcClient::connect(&broker.to_string(), None).await.unwrap();
    let mut hb = RemotingCommand::request(request::HEART_BEAT).with_body(body.to_vec());
    hb.language = proto::remoting::codes::language::CPP;
    let reply = call(&rpc, hb).await;
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    let list = call(
        &rpc,
        RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
            .with_ext("consumerGroup", "cpp-cg"),
    )
    .await;
    assert_eq!(list.code, response::SUCCESS, "{:?}", list.remark);
    let members: ConsumerListBody = from_json(&list.body).unwrap();
    assert!(
        members
            .consumer_id_list
            .contains(&"77-127.0.0.1@DEFAULT".to_string()),
        "{members:?}"
    );
    cluster.shutdown().await;
}

fn pull(topic: &str, group: &str, code: i32, subscription: Option<&str>) -> RemotingCommand {
    let mut c = PullMessageHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id: 0,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: 0,
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: subscription.map(str::to_string),
        sub_version: 0,
        expression_type: None,
    }
    .to_command();
    c.code = code;
    c
}

/// Messages in a pull reply, as (tag-free) bodies.
fn pulled_bodies(reply: &RemotingCommand) -> Vec<String> {
    client::MessageExt::decode_all(&reply.body)
        .unwrap()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_without_subscription_filters_by_the_heartbeat_and_lite_pull_is_a_pull() {
    let cluster = TestCluster::start().await;
    let broker = cluster.broker.as_ref().unwrap().local_addr;
    let admin = client::Admin::new(cluster.client_config());
    admin.create_topic("Tagged", 1, None, false).await.unwrap();
    let producer = Producer::new("PG", cluster.client_config());
    for (body, tag) in [
        ("a1", "TagA"),
        ("b1", "TagB"),
        ("a2", "TagA"),
        ("c1", "TagC"),
    ] {
        producer
            .send(Message::new("Tagged", body).with_tags(tag))
            .await
            .unwrap();
    }
    let rpc = RpcClient::connect(&broker.to_string(), None).await.unwrap();
    let body = br#"{"clientID":"java@1","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"tag-group","messageModel":"CLUSTERING","subscriptionDataSet":[{"subString":"TagA || TagC","topic":"Tagged"}]}],"producerDataSet":[]}"#;
    let reply = call(
        &rpc,
        RemotingCommand::request(request::HEART_BEAT).with_body(body.to_vec()),
    )
    .await;
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);

    // Java's push consumer leaves the subscription out of its pulls: the broker filters
    // by the one the group registered.
    let reply = call(
        &rpc,
        pull("Tagged", "tag-group", request::PULL_MESSAGE, None),
    )
    .await;
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    assert_eq!(pulled_bodies(&reply), ["a1", "a2", "c1"]);
    // A subscription in the pull wins; a group that registered none gets everything.
    let reply = call(
        &rpc,
        pull("Tagged", "tag-group", request::PULL_MESSAGE, Some("TagB")),
    )
    .await;
    assert_eq!(pulled_bodies(&reply), ["b1"]);
    // The 5.x lite pull consumer's code is served as a pull.
    let reply = call(
        &rpc,
        pull("Tagged", "other", request::LITE_PULL_MESSAGE, None),
    )
    .await;
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    assert_eq!(pulled_bodies(&reply), ["a1", "b1", "a2", "c1"]);

    // LOCK_BATCH_MQ answers with Java's field name, which the C++ client reads exactly.
    let lock = format!(
        r#"{{"consumerGroup":"tag-group","clientId":"java@1","onlyThisBroker":false,"mqSet":[{}]}}"#,
        String::from_utf8(proto::remoting::body::to_json(&MessageQueue {
            topic: "Tagged".into(),
            broker_name: "broker-a".into(),
            queue_id: 0,
        }))
        .unwrap()
    );
    let reply = call(
        &rpc,
        RemotingCommand::request(request::LOCK_BATCH_MQ).with_body(lock.into_bytes()),
    )
    .await;
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(text.contains(r#""lockOKMQSet":[{"#), "{text}");

    // What 5.x `mqadmin consumerProgress` asks: the topic's config, then the group's
    // stats, whose table fastjson keys by MessageQueue objects.
    let reply = call(
        &rpc,
        RemotingCommand::request(request::GET_TOPIC_CONFIG).with_ext("topic", "Tagged"),
    )
    .await;
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    let config: proto::remoting::body::TopicConfigBody = from_json(&reply.body).unwrap();
    assert_eq!(
        (config.topic_name.as_str(), config.read_queue_nums),
        ("Tagged", 1)
    );
    let reply = call(
        &rpc,
        RemotingCommand::request(request::GET_TOPIC_CONFIG).with_ext("topic", "Nowhere"),
    )
    .await;
    assert_eq!(reply.code, response::TOPIC_NOT_EXIST);
    let reply = call(
        &rpc,
        RemotingCommand::request(request::GET_CONSUME_STATS)
            .with_ext("consumerGroup", "tag-group")
            .with_ext("topic", "Tagged"),
    )
    .await;
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(
        text.contains(r#""offsetTable":{{"topic":"Tagged""#),
        "{text}"
    );
    let stats: proto::remoting::body::ConsumeStats = from_json(&reply.body).unwrap();
    assert_eq!(stats.offset_table[0].1.broker_offset, 4);
    cluster.shutdown().await;
}
