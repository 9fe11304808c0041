package io.raftmq.interop;

import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** A producer's delay level: delivered to its topic no earlier than the level's delay. */
class DelayTest extends WithProducer {

    @Test
    void producerDelayLevel() throws Exception {
        String topic = Env.name("Delay");
        Env.createTopic(producer, topic, 2);
        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            // A plain message first: once it arrives the consumer is pulling, so a late
            // delivery can only be the delay's doing.
            assertEquals(SendStatus.SEND_OK, producer.send(new Message(topic, Env.utf8("probe"))).getSendStatus());
            c.awaitBodies(java.util.Set.of("probe"), 20_000);
            // level 2 = 5 s with the default messageDelayLevel "1s 5s 10s ..."
            Message m = new Message(topic, Env.utf8("delayed"));
            m.setDelayTimeLevel(2);
            long sentAt = System.currentTimeMillis();
            SendResult r = producer.send(m);
            assertEquals(SendStatus.SEND_OK, r.getSendStatus());
            long deadline = sentAt + 20_000;
            while (c.received.size() < 2 && System.currentTimeMillis() < deadline) Thread.sleep(20);
            assertEquals(2, c.received.size(), "delayed message never delivered");
            long latency = c.arrivals.get(1) - sentAt;
            assertTrue(latency >= 5000, "delay level 2 (5 s) delivered after " + latency + " ms");
            assertEquals("delayed", Env.str(c.received.get(1).getBody()));
            assertEquals(topic, c.received.get(1).getTopic());
            assertEquals(r.getMsgId(), c.received.get(1).getMsgId());
        }
    }
}
