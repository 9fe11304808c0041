//! Queue allocation across a consumer group's instances.

use proto::remoting::body::MessageQueue;

/// RocketMQ's `AllocateMessageQueueAveragely`: with queues and client ids both sorted,
/// each client takes a contiguous block; the first `queues % clients` take one extra.
pub fn allocate_averagely(
    queues: &[MessageQueue],
    client_ids: &[String],
    me: &str,
) -> Vec<MessageQueue> {
    let Some(index) = client_ids.iter().position(|c| c == me) else {
        return Vec::new();
    };
    let (n, c) = (queues.len(), client_ids.len());
    if n == 0 {
        return Vec::new();
    }
    let rem = n % c;
    let average = if n <= c {
        1
    } else if rem > 0 && index < rem {
        n / c + 1
    } else {
        n / c
    };
    let start = if rem > 0 && index < rem {
        index * average
    } else {
        index * average + rem
    };
    let range = average.min(n.saturating_sub(start));
    queues[start.min(n)..start.min(n) + range].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mqs(n: u32) -> Vec<MessageQueue> {
        (0..n)
            .map(|i| MessageQueue {
                topic: "T".into(),
                broker_name: "b".into(),
                queue_id: i,
            })
            .collect()
    }

    #[test]
    fn every_queue_goes_to_exactly_one_client() {
        for queues in 0..12u32 {
            for clients in 1..6usize {
                let ids: Vec<String> = (0..clients).map(|i| format!("c{i}")).collect();
                let mut all: Vec<u32> = ids
                    .iter()
                    .flat_map(|me| allocate_averagely(&mqs(queues), &ids, me))
                    .map(|q| q.queue_id)
                    .collect();
                all.sort();
                assert_eq!(
                    all,
                    (0..queues).collect::<Vec<_>>(),
                    "{queues} queues, {clients} clients"
                );
            }
        }
    }

    #[test]
    fn matches_rocketmq_blocks() {
        let ids: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let ids_of = |me| {
            allocate_averagely(&mqs(8), &ids, me)
                .iter()
                .map(|q| q.queue_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids_of("a"), vec![0, 1, 2]);
        assert_eq!(ids_of("b"), vec![3, 4, 5]);
        assert_eq!(ids_of("c"), vec![6, 7]);
        assert!(allocate_averagely(&mqs(8), &ids, "stranger").is_empty());
    }
}
