//! RocketMQ's remoting protocol: frames, commands, codes and JSON bodies.

pub mod batch;
pub mod body;
pub mod codes;
pub mod command;
pub mod ext;
pub mod header;
pub mod json;
pub mod lenient;

pub use command::{check_frame, ProtoError, RemotingCommand, SerializeType, FRAME_SIZE_MAX};
pub use ext::ExtFields;
