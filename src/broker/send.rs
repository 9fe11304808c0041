//! SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE.

use proto::net::server::Channel;
use proto::properties::Properties;
use proto::remoting::batch;
use proto::remoting::body::perm;
use proto::remoting::codes::response;
use proto::remoting::header::SendMessageHeader;
use proto::remoting::{ProtoError, RemotingCommand};
use proto::NewMessage;
use store::meta::{MetaStore, TopicConfig};
use store::Disk;

use super::park::{BadDelay, Later};
use super::timer::BadTimer;
use super::topics::AUTO_CREATE_TOPIC;
use super::transaction;
use super::write::{put_error, with_put_fields, PutError, WriteError};
use super::Broker;
use crate::metrics::traffic::MessageType;

impl<D: Disk, M: MetaStore> Broker<D, M> {
    pub(super) async fn send(
        &self,
        req: &RemotingCommand,
        channel: &Channel,
    ) -> Result<RemotingCommand, ProtoError> {
        let header = SendMessageHeader::parse(req)?;
        let refuse =
            |code, remark: String| Ok(RemotingCommand::response_to(req, code, Some(remark)));
        if let Err(e) = proto::names::validate_name("topic", header.topic) {
            return refuse(response::MESSAGE_ILLEGAL, e);
        }
        if is_system_topic(header.topic) {
            return refuse(
                response::NO_PERMISSION,
                format!(
                    "Sending message to topic[{}] is forbidden: the broker writes it",
                    header.topic
                ),
            );
        }
        if header.topic == AUTO_CREATE_TOPIC {
            return refuse(
                response::NO_PERMISSION,
                format!("topic {AUTO_CREATE_TOPIC} is the auto-create template"),
            );
        }
        // The topic is almost always known; creating one (through the log in a replica
        // group) is a large future, boxed so it does not size every send's.
        let found = match self.topics.get(header.topic) {
            Some(topic) => Ok(topic),
            None => Box::pin(self.auto_create_topic(&header)).await,
        };
        let topic = match found {
            Ok(topic) => topic,
            Err(response) => {
                return Ok(RemotingCommand::response_to(
                    req,
                    response.0,
                    Some(response.1),
                ))
            }
        };
        if topic.perm & perm::WRITE == 0 {
            return refuse(
                response::NO_PERMISSION,
                format!("topic {} is not writable on this broker", topic.topic_name),
            );
        }
        let queue_id = match u32::try_from(header.queue_id) {
            Ok(q) if q < topic.write_queue_nums => q,
            _ => {
                return refuse(
                    response::SYSTEM_ERROR,
                    format!(
                        "queueId {} is illegal: topic {} has {} write queues",
                        header.queue_id, topic.topic_name, topic.write_queue_nums
                    ),
                )
            }
        };
        let template = NewMessage {
            topic: header.topic.to_string(),
            queue_id,
            flag: header.flag,
            body: req.body.clone(),
            properties: Properties::decode(header.properties),
            sys_flag: header.sys_flag,
            born_timestamp_ms: header.born_timestamp,
            born_host: channel.peer,
            reconsume_times: header.reconsume_times,
            prepared_transaction_offset: 0,
        };
        let mut template = template;
        if template.topic.starts_with(super::retry::RETRY_PREFIX) {
            // Rare, and it may create a topic: boxed, as above.
            let spent =
                self.dead_letter_if_spent(&mut template, req.version, header.max_reconsume_times);
            if let Err(e) = Box::pin(spent).await {
                return Ok(put_error(req, &e));
            }
        }
        // Where a delayed or half message was really sent, which the response names.
        let mut rerouted_from_queue = None;
        let mut transaction_id = None;
        // How a delayed or timer message was parked, to wake its deliverer once stored.
        let mut later = None;
        let messages: Vec<NewMessage> = if header.batch {
            match batch::decode(&req.body) {
                Ok(entries) if !entries.is_empty() => entries
                    .into_iter()
                    .map(|e| NewMessage {
                        flag: e.flag,
                        body: e.body,
                        properties: Properties::decode(&e.properties),
                        ..template.clone()
                    })
                    .collect(),
                Ok(_) => return refuse(response::MESSAGE_ILLEGAL, "empty batch".into()),
                Err(e) => return refuse(response::MESSAGE_ILLEGAL, e.to_string()),
            }
        } else {
            let mut message = template;
            let real_queue = message.queue_id;
            if transaction::prepare_half(&mut message) {
                rerouted_from_queue = Some(real_queue);
                transaction_id = message
                    .properties
                    .get(transaction::property::TRANSACTION_ID)
                    .map(str::to_string);
            } else {
                match self.park_if_later(&mut message) {
                    Ok(parked) => {
                        rerouted_from_queue = parked.as_ref().map(Later::real_queue);
                        later = parked;
                    }
                    // As Java answers WHEEL_TIMER_NOT_ENABLE.
                    Err(e @ BadDelay::Timer(BadTimer::Disabled { .. })) => {
                        return refuse(response::SYSTEM_ERROR, e.to_string())
                    }
                    Err(e) => return refuse(response::MESSAGE_ILLEGAL, e.to_string()),
                }
            }
            vec![message]
        };
        if header.batch && messages.iter().any(is_transactional) {
            return refuse(
                response::MESSAGE_ILLEGAL,
                "a batch cannot hold transactional messages (TRAN_MSG)".into(),
            );
        }
        let delayed_entry = || messages.iter().find_map(delay_property);
        if let Some(name) = header.batch.then(delayed_entry).flatten() {
            return refuse(
                response::MESSAGE_ILLEGAL,
                format!("a batch cannot hold delayed or timer messages ({name})"),
            );
        }
        let message_type = if messages
            .first()
            .is_some_and(|m| m.topic == transaction::HALF_TOPIC)
        {
            MessageType::Transaction
        } else if rerouted_from_queue.is_some() {
            MessageType::Delay
        } else if topic.order {
            MessageType::Fifo
        } else {
            MessageType::Normal
        };
        // Body sizes for metrics, kept before the messages move into the store; a single
        // message's body is the request's, so only a batch needs a list.
        let batch_sizes: Vec<usize> = match header.batch {
            true => messages.iter().map(|m| m.body.len()).collect(),
            false => Vec::new(),
        };
        let single_size = [req.body.len()];
        let sizes = if header.batch {
            &batch_sizes[..]
        } else {
            &single_size[..]
        };
        match self.put_messages(messages).await {
            Ok(results) => {
                self.traffic.record_in(header.topic, message_type, sizes);
                let mut first = *results.first().expect("one result per message");
                if let Some(queue_id) = rerouted_from_queue {
                    // The client names the queue it sent to, as Java's broker answers;
                    // the offset is the message's place in the schedule or half queue
                    // (a transaction's END_TRANSACTION names it back).
                    first.queue_id = queue_id;
                }
                if let Some(later) = &later {
                    self.wake_for(later);
                }
                let response = RemotingCommand::response_to(req, response::SUCCESS, None);
                let response = with_put_fields(response, &results, &first);
                Ok(match transaction_id {
                    Some(id) => response.with_ext("transactionId", id),
                    None => response,
                })
            }
            Err(e) => Ok(put_error(req, &e)),
        }
    }

    /// A topic this broker does not have, auto-created from the template when allowed.
    async fn auto_create_topic(
        &self,
        header: &SendMessageHeader<&str>,
    ) -> Result<TopicConfig, (i32, String)> {
        let template = self
            .topics
            .get(header.default_topic)
            .filter(|t| t.perm & perm::INHERIT != 0);
        let Some(template) = template.filter(|_| self.config.auto_create_topic_enable) else {
            return Err((
                response::TOPIC_NOT_EXIST,
                format!(
                    "topic[{}] not exist, apply first please! (auto-create is off)",
                    header.topic
                ),
            ));
        };
        let queues = header
            .default_topic_queue_nums
            .clamp(1, template.write_queue_nums);
        let config = TopicConfig {
            topic_name: header.topic.to_string(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: perm::READ_WRITE,
            order: false,
        };
        if let Err(e) = self.put_topic(config.clone()).await {
            let code = match e {
                PutError::Replica(WriteError::NotMaster { .. }) => response::SERVICE_NOT_AVAILABLE,
                _ => response::SYSTEM_ERROR,
            };
            return Err((code, format!("creating topic {}: {e}", header.topic)));
        }
        tracing::info!(topic = %header.topic, queues, "auto-created topic");
        self.register_all().await;
        Ok(config)
    }
}

fn is_transactional(message: &NewMessage) -> bool {
    message
        .properties
        .get(transaction::property::TRAN_MSG)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The property that makes a message delayed or a timer message, if any: a batch's
/// entries cannot be (Java's producer refuses a delayed batch).
fn delay_property(message: &NewMessage) -> Option<&'static str> {
    use super::timer::property::{DELAY, DELAY_MS, DELAY_SEC, DELIVER_MS};
    let props = &message.properties;
    if props.get(DELAY).is_some_and(|level| level.trim() != "0") {
        return Some(DELAY);
    }
    [DELAY_SEC, DELAY_MS, DELIVER_MS]
        .into_iter()
        .find(|name| props.get(name).is_some())
}

/// Topics the broker writes itself: a producer may not send to them (Java's
/// `TopicValidator.isNotAllowedSendTopic`).
fn is_system_topic(topic: &str) -> bool {
    [
        super::retry::SCHEDULE_TOPIC,
        super::timer::TIMER_TOPIC,
        transaction::HALF_TOPIC,
        transaction::OP_TOPIC,
        transaction::CHECK_MAX_TOPIC,
    ]
    .contains(&topic)
}
