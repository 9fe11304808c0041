package io.raftmq.interop;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Producer send paths: admin topic creation, sync, async, oneway, batch. */
class SendTest extends WithProducer {

    @Test
    void adminCreateTopicRoutesRequestedQueues() throws Exception {
        String topic = Env.name("Create");
        // createTopic(TBW102, topic, 3) then the route must show exactly 3 write queues
        // (an auto-created topic would have the producer's default of 4).
        Env.createTopic(producer, topic, 3);
        List<MessageQueue> mqs = new ArrayList<>(producer.fetchPublishMessageQueues(topic));
        assertEquals(3, mqs.size(), "write queues of " + topic + ": " + mqs);
        Set<Integer> ids = new HashSet<>();
        for (MessageQueue mq : mqs) ids.add(mq.getQueueId());
        assertEquals(Set.of(0, 1, 2), ids);
    }

    @Test
    void syncSend() throws Exception {
        String topic = Env.name("Sync");
        Env.createTopic(producer, topic, 4);
        Map<String, SendResult> results = new HashMap<>();
        for (int i = 0; i < 20; i++) {
            String body = "sync-" + i;
            SendResult r = producer.send(new Message(topic, "TagS", Env.utf8(body)));
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), r.toString());
            assertEquals(topic, r.getMessageQueue().getTopic());
            assertNotNull(r.getMsgId());
            assertNotNull(r.getOffsetMsgId(), "offsetMsgId");
            assertTrue(r.getQueueOffset() >= 0, "queueOffset " + r.getQueueOffset());
            // offsetMsgId is store host + CommitLog offset
            MessageDecoder.decodeMessageId(r.getOffsetMsgId());
            results.put(body, r);
        }
        // offsets within a queue are consecutive from 0 on a fresh topic
        Map<Integer, List<Long>> perQueue = new HashMap<>();
        for (SendResult r : results.values())
            perQueue.computeIfAbsent(r.getMessageQueue().getQueueId(), k -> new ArrayList<>()).add(r.getQueueOffset());
        for (Map.Entry<Integer, List<Long>> e : perQueue.entrySet()) {
            List<Long> offs = new ArrayList<>(e.getValue());
            offs.sort(null);
            for (int i = 0; i < offs.size(); i++)
                assertEquals((long) i, offs.get(i), "queue " + e.getKey() + " offsets " + offs);
        }
        assertTrue(perQueue.size() > 1, "round robin should spread 20 sends over queues: " + perQueue.keySet());

        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            c.awaitBodies(results.keySet(), 20_000);
            for (MessageExt m : c.snapshot()) {
                SendResult r = results.get(Env.str(m.getBody()));
                assertEquals(r.getMsgId(), m.getMsgId(), "msgId (UNIQ_KEY)");
                assertEquals(r.getOffsetMsgId(), ((MessageClientExt) m).getOffsetMsgId(), "offsetMsgId");
                assertEquals(r.getMessageQueue().getQueueId(), m.getQueueId());
                assertEquals(r.getQueueOffset(), m.getQueueOffset());
                assertEquals(topic, m.getTopic());
                assertEquals("TagS", m.getTags());
            }
        }
    }

    @Test
    void asyncSend() throws Exception {
        String topic = Env.name("Async");
        Env.createTopic(producer, topic, 4);
        int n = 30;
        CountDownLatch done = new CountDownLatch(n);
        Map<String, SendResult> ok = new ConcurrentHashMap<>();
        Map<String, Throwable> failed = new ConcurrentHashMap<>();
        for (int i = 0; i < n; i++) {
            String body = "async-" + i;
            producer.send(new Message(topic, Env.utf8(body)), new SendCallback() {
                @Override
                public void onSuccess(SendResult r) {
                    ok.put(body, r);
                    done.countDown();
                }

                @Override
                public void onException(Throwable e) {
                    failed.put(body, e);
                    done.countDown();
                }
            });
        }
        assertTrue(done.await(20, TimeUnit.SECONDS), "async callbacks: " + done.getCount() + " missing");
        assertTrue(failed.isEmpty(), "async sends failed: " + failed);
        for (SendResult r : ok.values()) assertEquals(SendStatus.SEND_OK, r.getSendStatus());
        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            c.awaitBodies(ok.keySet(), 20_000);
        }
    }

    @Test
    void onewaySend() throws Exception {
        String topic = Env.name("Oneway");
        Env.createTopic(producer, topic, 4);
        Set<String> bodies = new HashSet<>();
        for (int i = 0; i < 20; i++) {
            String body = "oneway-" + i;
            producer.sendOneway(new Message(topic, Env.utf8(body)));
            bodies.add(body);
        }
        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            c.awaitBodies(bodies, 20_000);
        }
    }

    @Test
    void batchSend() throws Exception {
        String topic = Env.name("Batch");
        Env.createTopic(producer, topic, 4);
        List<Message> batch = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            Message m = new Message(topic, "TagB", "key-" + i, Env.utf8("batch-" + i));
            m.putUserProperty("idx", Integer.toString(i));
            batch.add(m);
        }
        SendResult r = producer.send(batch);
        assertEquals(SendStatus.SEND_OK, r.getSendStatus(), r.toString());
        String[] ids = r.getMsgId().split(",");
        assertEquals(16, ids.length, "msgIds of the batch: " + r.getMsgId());
        assertNotNull(r.getOffsetMsgId(), "offsetMsgId of the batch");
        String[] offIds = r.getOffsetMsgId().split(",");
        assertEquals(16, offIds.length, "offsetMsgIds of the batch: " + r.getOffsetMsgId());
        int queue = r.getMessageQueue().getQueueId();
        long first = r.getQueueOffset();

        Set<String> bodies = new HashSet<>();
        for (int i = 0; i < 16; i++) bodies.add("batch-" + i);
        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            c.awaitBodies(bodies, 20_000);
            for (MessageExt m : c.snapshot()) {
                int i = Integer.parseInt(m.getUserProperty("idx"));
                assertEquals("batch-" + i, Env.str(m.getBody()));
                assertEquals(queue, m.getQueueId(), "a batch goes to one queue");
                assertEquals(first + i, m.getQueueOffset(), "batch message " + i + " queue offset");
                assertEquals(ids[i], m.getMsgId(), "batch message " + i + " msgId");
                assertEquals(offIds[i], ((MessageClientExt) m).getOffsetMsgId(), "batch message " + i + " offsetMsgId");
                assertEquals("key-" + i, m.getKeys());
                assertEquals("TagB", m.getTags());
            }
        }
    }
}
