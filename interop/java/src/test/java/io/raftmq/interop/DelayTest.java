package io.raftmq.interop;

import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import static org.junit.jupiter.api.Assertions.*;

/** A producer's delay level: delivered to its topic no earlier than the level's delay. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DelayTest {
    DefaultMQProducer producer;

    @BeforeAll
    void start() throws Exception {
        producer = Env.producer();
    }

    @AfterAll
    void stop() {
        Env.shutdown(producer);
    }

    @Test
    void producerDelayLevel() throws Exception {
        String topic = Env.name("Delay");
        Env.createTopic(producer, topic, 2);
        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            // level 2 = 5 s with the default messageDelayLevel "1s 5s 10s ..."
            Message m = new Message(topic, Env.utf8("delayed"));
            m.setDelayTimeLevel(2);
            long sentAt = System.currentTimeMillis();
            SendResult r = producer.send(m);
            assertEquals(SendStatus.SEND_OK, r.getSendStatus());
            long deadline = sentAt + 20_000;
            while (c.received.isEmpty() && System.currentTimeMillis() < deadline) Thread.sleep(20);
            assertFalse(c.received.isEmpty(), "delayed message never delivered");
            long latency = c.arrivals.get(0) - sentAt;
            assertTrue(latency >= 5000, "delay level 2 (5 s) delivered after " + latency + " ms");
            assertEquals("delayed", Env.str(c.received.get(0).getBody()));
            assertEquals(topic, c.received.get(0).getTopic());
            assertEquals(r.getMsgId(), c.received.get(0).getMsgId());
        }
    }
}
