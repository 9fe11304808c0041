//! The client's error type.

use proto::net::rpc::RpcError;
use proto::remoting::ProtoError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("no name server address: pass one, or set NAMESRV_ADDR")]
    NoNameServer,
    #[error("no route for topic {0}: create it, or enable auto-create on the broker")]
    NoRoute(String),
    #[error("broker {addr} answered code {code}: {remark}")]
    Broker {
        addr: String,
        code: i32,
        remark: String,
    },
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The name servers route to no master of this broker group: none is registered,
    /// or one is being elected.
    #[error("broker group {0} has no master registered with the name servers")]
    NoMaster(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A lookup (by id, by key) found nothing; the text says where it looked.
    #[error("not found: {0}")]
    NotFound(String),
    #[error("client is shut down")]
    Shutdown,
    /// While a request to a broker group's master waited for its answer, the name
    /// servers named another master: the request's outcome is unknown, and the old
    /// master (paused, cut off, or dead) may never answer.
    #[error("broker group {broker}'s master moved from {from} to {to} while a request to it waited; its outcome is unknown")]
    MasterMoved {
        broker: String,
        from: String,
        to: String,
    },
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
