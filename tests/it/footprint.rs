//! The broker's per-request future stays small.
//!
//! A connection keeps one future per request in flight (256 for a producer with an
//! async window of 256), and each is moved into the connection's set when it starts: a
//! copy of its whole size, however little of it the request uses. Rare handlers with
//! large futures (a topic created through the Raft log, say) are boxed so that they do
//! not size every send's; before that, a request's future was 2.7 KB and copying
//! it was 7 % of a single broker's CPU at 256 in flight. This test keeps it that way.

use proto::net::server::{Channel, Service};
use proto::remoting::codes::request;
use proto::remoting::RemotingCommand;

use crate::cluster::TestCluster;

/// Bytes a request's future may take (1.3 KB now; 2.7 KB before the boxing).
const REQUEST_FUTURE_BYTES_MAX: usize = 1536;

#[tokio::test]
async fn a_request_future_is_small() {
    let cluster = TestCluster::start().await;
    let broker = cluster.broker.as_ref().unwrap().broker.clone();
    let channel = Channel::closed("127.0.0.1:1".parse().unwrap());
    let future = broker.call(
        RemotingCommand::request(request::SEND_MESSAGE_V2),
        channel.clone(),
    );
    let bytes = std::mem::size_of_val(&future);
    drop(future);
    assert!(
        bytes <= REQUEST_FUTURE_BYTES_MAX,
        "the broker's request future is {bytes} bytes (at most {REQUEST_FUTURE_BYTES_MAX}): \
         box the large handler that grew it"
    );
    cluster.shutdown().await;
}
