package io.raftmq.interop;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.client.producer.MessageQueueSelector;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Push consumers: orderly, clustering split, broadcasting. */
class ConsumerTest extends WithProducer {

    static final MessageQueueSelector BY_KEY =
            (mqs, msg, arg) -> mqs.get(Math.floorMod(arg.hashCode(), mqs.size()));

    @Test
    void orderlyPerShardingKey() throws Exception {
        String topic = Env.name("Orderly");
        Env.createTopic(producer, topic, 4);
        int keys = 8, perKey = 15;
        String group = Env.name("cg");
        Map<String, List<Integer>> seen = new ConcurrentHashMap<>();
        Map<String, Set<Integer>> queuesSeen = new ConcurrentHashMap<>();
        List<String> problems = new CopyOnWriteArrayList<>();
        DefaultMQPushConsumer c = Env.configure(new DefaultMQPushConsumer(group));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerOrderly) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String[] kv = Env.str(m.getBody()).split(":");
                if (!ctx.getMessageQueue().equals(new MessageQueue(topic, ctx.getMessageQueue().getBrokerName(), m.getQueueId())))
                    problems.add("message of queue " + m.getQueueId() + " delivered for " + ctx.getMessageQueue());
                seen.computeIfAbsent(kv[0], k -> new CopyOnWriteArrayList<>()).add(Integer.parseInt(kv[1]));
                queuesSeen.computeIfAbsent(kv[0], k -> ConcurrentHashMap.newKeySet()).add(m.getQueueId());
            }
            return ConsumeOrderlyStatus.SUCCESS;
        });
        c.start();
        try {
            // interleave keys so that order only holds if the queue keeps it
            Map<String, Set<Integer>> sendQueues = new HashMap<>();
            for (int i = 0; i < perKey; i++) {
                for (int k = 0; k < keys; k++) {
                    String key = "order-" + k;
                    SendResult r = producer.send(new Message(topic, "TagO", key, Env.utf8(key + ":" + i)), BY_KEY, key);
                    assertEquals(SendStatus.SEND_OK, r.getSendStatus());
                    sendQueues.computeIfAbsent(key, x -> new HashSet<>()).add(r.getMessageQueue().getQueueId());
                }
            }
            Env.await(30_000, () -> seen.values().stream().mapToInt(List::size).sum() >= keys * perKey
                            && seen.size() == keys,
                    () -> "orderly consumer got " + seen.values().stream().mapToInt(List::size).sum()
                            + " of " + keys * perKey);
            Thread.sleep(300);
            assertTrue(problems.isEmpty(), problems.toString());
            for (int k = 0; k < keys; k++) {
                String key = "order-" + k;
                assertEquals(1, sendQueues.get(key).size(), key + " sent to queues " + sendQueues.get(key));
                assertEquals(sendQueues.get(key), queuesSeen.get(key), key + " consumed from queues");
                List<Integer> expected = new ArrayList<>();
                for (int i = 0; i < perKey; i++) expected.add(i);
                assertEquals(expected, seen.get(key), "order of " + key);
            }
        } finally {
            Env.shutdown(c);
        }
    }

    @Test
    void clusteringSplitsBetweenInstances() throws Exception {
        String topic = Env.name("Cluster");
        Env.createTopic(producer, topic, 4);
        String group = Env.name("cg");
        try (Collector a = Collector.start(group, topic, "*");
             Collector b = Collector.start(group, topic, "*")) {
            // both instances join; the broker's NOTIFY_CONSUMER_IDS_CHANGED / consumer list makes
            // them rebalance to two disjoint halves of the 4 queues
            Env.await(25_000, () -> {
                Set<MessageQueue> qa = a.assigned(), qb = b.assigned();
                Set<MessageQueue> union = new HashSet<>(qa);
                union.addAll(qb);
                return qa.size() == 2 && qb.size() == 2 && union.size() == 4;
            }, () -> "rebalance of 2 instances over 4 queues: a=" + a.assigned() + " b=" + b.assigned());
            Set<String> bodies = new HashSet<>();
            for (int i = 0; i < 40; i++) {
                producer.send(new Message(topic, Env.utf8("cl-" + i)));
                bodies.add("cl-" + i);
            }
            Env.await(20_000, () -> {
                Set<String> u = new HashSet<>(a.bodies());
                u.addAll(b.bodies());
                return u.containsAll(bodies);
            }, () -> "union of a (" + a.received.size() + ") and b (" + b.received.size() + ") lacks messages");
            Thread.sleep(300);
            assertFalse(a.received.isEmpty(), "instance a got nothing");
            assertFalse(b.received.isEmpty(), "instance b got nothing");
            Set<String> both = new HashSet<>(a.bodies());
            both.retainAll(b.bodies());
            assertTrue(both.isEmpty(), "delivered to both instances of one group: " + both);
            for (MessageExt m : a.snapshot())
                assertTrue(a.assigned().stream().anyMatch(q -> q.getQueueId() == m.getQueueId()), "a got queue " + m.getQueueId());
            for (MessageExt m : b.snapshot())
                assertTrue(b.assigned().stream().anyMatch(q -> q.getQueueId() == m.getQueueId()), "b got queue " + m.getQueueId());
            assertEquals(40, a.received.size() + b.received.size(), "no duplicates in a clean run");
        }
    }

    @Test
    void broadcastingDeliversToEveryInstance() throws Exception {
        String topic = Env.name("Bcast");
        Env.createTopic(producer, topic, 4);
        String group = Env.name("cg");
        try (Collector a = Collector.start(group, topic, "*", "BROADCASTING");
             Collector b = Collector.start(group, topic, "*", "BROADCASTING")) {
            Env.await(15_000, () -> a.assigned().size() == 4 && b.assigned().size() == 4,
                    () -> "broadcasting instances hold all queues: a=" + a.assigned() + " b=" + b.assigned());
            Set<String> bodies = new HashSet<>();
            for (int i = 0; i < 20; i++) {
                producer.send(new Message(topic, Env.utf8("bc-" + i)));
                bodies.add("bc-" + i);
            }
            a.awaitBodies(bodies, 20_000);
            b.awaitBodies(bodies, 20_000);
        }
    }
}
