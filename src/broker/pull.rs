//! PULL_MESSAGE, with long polling: a pull that finds nothing new parks until a message
//! arrives in its queue or its suspend timeout passes (RocketMQ `PullRequestHoldService`,
//! here driven by the store's arrival notifications instead of a 5 s rescan).

use std::time::Duration;

use bytes::BytesMut;
use proto::remoting::body::perm;
use proto::remoting::codes::response;
use proto::remoting::header::{pull_flag, PullMessageHeader};
use proto::remoting::{ProtoError, RemotingCommand};
use store::meta::MetaStore;
use store::{Disk, GetStatus};

use super::{store_error, Broker};

/// Most messages one pull returns.
const PULL_BATCH_MAX: u32 = 256;
/// Longest a pull may be held.
const SUSPEND_MAX: Duration = Duration::from_secs(30);

/// A tag filter over ConsumeQueue tag hashes.
struct HashFilter(Option<Vec<i64>>);

impl HashFilter {
    fn parse(subscription: Option<&str>) -> Self {
        let expression = subscription.unwrap_or("*").trim();
        if expression.is_empty() || expression == "*" {
            return HashFilter(None);
        }
        HashFilter(Some(
            expression
                .split("||")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(proto::hash::java_string_hash)
                .collect(),
        ))
    }

    fn matches(&self, tag_hash: i64) -> bool {
        self.0
            .as_ref()
            .is_none_or(|codes| codes.contains(&tag_hash))
    }
}

impl<D: Disk, M: MetaStore> Broker<D, M> {
    pub(super) async fn pull(&self, req: &RemotingCommand) -> Result<RemotingCommand, ProtoError> {
        let h = PullMessageHeader::parse(req)?;
        let Some(topic) = self.topics.get(&h.topic) else {
            return Ok(RemotingCommand::response_to(
                req,
                response::TOPIC_NOT_EXIST,
                Some(format!("topic[{}] not exist, apply first please!", h.topic)),
            ));
        };
        if topic.perm & perm::READ == 0 {
            return Ok(RemotingCommand::response_to(
                req,
                response::NO_PERMISSION,
                Some(format!("topic {} is not readable", h.topic)),
            ));
        }
        if h.queue_id >= topic.read_queue_nums {
            return Ok(RemotingCommand::response_to(
                req,
                response::SYSTEM_ERROR,
                Some(format!(
                    "queueId {} is illegal: topic {} has {} read queues",
                    h.queue_id, h.topic, topic.read_queue_nums
                )),
            ));
        }
        if let Err(refusal) = self.may_pull(&h.consumer_group).await {
            return Ok(refusal.response(req, &h.consumer_group));
        }
        // In a replicated group offsets go through the log; a pull commits none there
        // (clients commit with UPDATE_CONSUMER_OFFSET every few seconds and at shutdown).
        if h.sys_flag & pull_flag::COMMIT_OFFSET != 0
            && h.commit_offset >= 0
            && self.replica.is_none()
        {
            if let Err(e) = self.meta.put_consumer_offset(
                &h.consumer_group,
                &h.topic,
                h.queue_id,
                h.commit_offset as u64,
            ) {
                tracing::warn!(error = %e, "commit offset with pull failed");
            }
        }
        let registered = match &h.subscription {
            Some(_) => None,
            None => self.consumers.subscription(&h.consumer_group, &h.topic),
        };
        let filter = HashFilter::parse(h.subscription.as_deref().or(registered.as_deref()));
        let max = h.max_msg_nums.clamp(1, PULL_BATCH_MAX) as usize;
        let suspend = (h.sys_flag & pull_flag::SUSPEND != 0 && self.config.long_polling_enable)
            .then(|| Duration::from_millis(h.suspend_timeout_millis).min(SUSPEND_MAX));
        let deadline = tokio::time::Instant::now() + suspend.unwrap_or_default();
        let mut arrivals = self.store.queue_arrivals(&h.topic, h.queue_id);
        loop {
            // Mark what has been seen before reading, so a dispatch that lands between
            // the read and the wait still wakes the wait.
            arrivals.borrow_and_update();
            let got = match self
                .store
                .get_messages(&h.topic, h.queue_id, h.queue_offset, max, |t| {
                    filter.matches(t)
                })
                .await
            {
                Ok(got) => got,
                Err(e) => return Ok(store_error(req, &e)),
            };
            let nothing_new = matches!(got.status, GetStatus::OffsetOverflowOne)
                || (got.status == GetStatus::NoMessageInQueue && h.queue_offset == 0);
            let now = tokio::time::Instant::now();
            if nothing_new && suspend.is_some() && now < deadline {
                // Park until the store dispatches more, then look again. (`timeout`
                // rather than `timeout_at`: madsim's time module has only the former.)
                if tokio::time::timeout(deadline - now, arrivals.changed())
                    .await
                    .is_ok()
                {
                    continue;
                }
            }
            return Ok(self.pull_response(req, &h, got));
        }
    }

    fn pull_response(
        &self,
        req: &RemotingCommand,
        h: &PullMessageHeader,
        got: store::GetMessages,
    ) -> RemotingCommand {
        let code = match got.status {
            GetStatus::Found => response::SUCCESS,
            GetStatus::NoMatchedMessage => response::PULL_RETRY_IMMEDIATELY,
            GetStatus::OffsetOverflowOne => response::PULL_NOT_FOUND,
            GetStatus::NoMessageInQueue if h.queue_offset == 0 => response::PULL_NOT_FOUND,
            GetStatus::NoMessageInQueue
            | GetStatus::OffsetTooSmall
            | GetStatus::OffsetOverflowBadly => response::PULL_OFFSET_MOVED,
        };
        let mut body = BytesMut::with_capacity(got.messages.iter().map(|m| m.len()).sum());
        for message in &got.messages {
            body.extend_from_slice(message);
        }
        if !got.messages.is_empty() {
            self.traffic
                .record_out(&h.topic, &h.consumer_group, got.messages.len(), body.len());
        }
        RemotingCommand::response_to(req, code, None)
            .with_ext("nextBeginOffset", got.next_offset)
            .with_ext("minOffset", got.min_offset)
            .with_ext("maxOffset", got.max_offset)
            .with_ext("suggestWhichBrokerId", 0)
            .with_body(body.freeze())
    }
}
