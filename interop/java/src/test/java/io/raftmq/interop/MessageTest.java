package io.raftmq.interop;

import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.rocketmq.client.QueryResult;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** What a message carries: tags and tag filtering, keys, user properties, ids; queries. */
class MessageTest extends WithProducer {

    @Test
    void tagExpressionFiltersTagC() throws Exception {
        String topic = Env.name("Tags");
        // one queue: the TagC messages sit before every TagA/TagB message in it, so once all
        // A and B arrived any C that got through would have arrived too
        Env.createTopic(producer, topic, 1);
        Set<String> wanted = new HashSet<>();
        for (int i = 0; i < 5; i++) producer.send(new Message(topic, "TagC", Env.utf8("C-" + i)));
        for (int i = 0; i < 5; i++) {
            producer.send(new Message(topic, "TagA", Env.utf8("A-" + i)));
            producer.send(new Message(topic, "TagB", Env.utf8("B-" + i)));
            wanted.add("A-" + i);
            wanted.add("B-" + i);
        }
        for (int i = 5; i < 10; i++) producer.send(new Message(topic, "TagC", Env.utf8("C-" + i)));
        try (Collector c = Collector.start(Env.name("cg"), topic, "TagA || TagB")) {
            c.awaitBodies(wanted, 20_000);
            Thread.sleep(500);
            for (MessageExt m : c.snapshot()) {
                assertNotEquals("TagC", m.getTags(), "TagC delivered to 'TagA || TagB': " + Env.str(m.getBody()));
                assertEquals(Env.str(m.getBody()).substring(0, 1), m.getTags().substring(3), "tag of " + Env.str(m.getBody()));
            }
            assertEquals(wanted, c.bodies());
        }
    }

    @Test
    void keysPropertiesAndIdsRoundTrip() throws Exception {
        String topic = Env.name("Props");
        Env.createTopic(producer, topic, 2);
        Message msg = new Message(topic, "TagP", Env.utf8("props-body"));
        msg.setKeys(Arrays.asList("order-" + Env.RUN_ID, "user-42"));
        msg.putUserProperty("color", "red");
        msg.putUserProperty("n", "42");
        msg.putUserProperty("unicode", "h\u00e9llo \u4e16\u754c");
        msg.setFlag(7);
        long before = System.currentTimeMillis();
        SendResult r = producer.send(msg);
        assertEquals(SendStatus.SEND_OK, r.getSendStatus());

        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            c.awaitBodies(Set.of("props-body"), 20_000);
            MessageExt m = c.snapshot().get(0);
            assertEquals(topic, m.getTopic());
            assertEquals("TagP", m.getTags());
            assertEquals("order-" + Env.RUN_ID + " user-42", m.getKeys(), "KEYS (space separated)");
            assertEquals("red", m.getUserProperty("color"));
            assertEquals("42", m.getUserProperty("n"));
            assertEquals("h\u00e9llo \u4e16\u754c", m.getUserProperty("unicode"));
            assertEquals(7, m.getFlag(), "flag");
            assertEquals(r.getMsgId(), m.getMsgId(), "msgId = UNIQ_KEY from the send result");
            assertEquals(r.getMsgId(), m.getProperty("UNIQ_KEY"));
            String offsetMsgId = ((MessageClientExt) m).getOffsetMsgId();
            assertEquals(r.getOffsetMsgId(), offsetMsgId, "offsetMsgId");
            // the offset msg id encodes the store host and the message's CommitLog offset
            var decoded = MessageDecoder.decodeMessageId(offsetMsgId);
            assertEquals(m.getStoreHost(), decoded.getAddress(), "store host in offsetMsgId");
            assertEquals(m.getCommitLogOffset(), decoded.getOffset(), "CommitLog offset in offsetMsgId");
            assertEquals(r.getQueueOffset(), m.getQueueOffset());
            assertEquals(r.getMessageQueue().getQueueId(), m.getQueueId());
            assertEquals(0, m.getReconsumeTimes());
            assertTrue(m.getBornTimestamp() >= before - 1000 && m.getBornTimestamp() <= System.currentTimeMillis(),
                    "bornTimestamp " + m.getBornTimestamp());
            assertTrue(m.getStoreTimestamp() >= m.getBornTimestamp() - 1000, "storeTimestamp " + m.getStoreTimestamp());
            assertNotNull(m.getBornHost(), "bornHost");
            assertTrue(m.getStoreSize() > 0, "storeSize");
            assertTrue(m.getBodyCRC() != 0, "bodyCRC");
        }
    }

    @Test
    void queryByKeyAndViewById() throws Exception {
        String topic = Env.name("Query");
        Env.createTopic(producer, topic, 2);
        String key = "qk-" + Env.RUN_ID;
        Map<String, SendResult> sent = new HashMap<>();
        for (int i = 0; i < 3; i++) {
            Message m = new Message(topic, "TagQ", key, Env.utf8("query-" + i));
            sent.put("query-" + i, producer.send(m));
        }
        producer.send(new Message(topic, "TagQ", "other-key", Env.utf8("not-me")));

        // QUERY_MESSAGE by key (index topic#key)
        long now = System.currentTimeMillis();
        QueryResult q = producer.queryMessage(topic, key, 32, now - 600_000, now + 600_000);
        Set<String> bodies = new HashSet<>();
        for (MessageExt m : q.getMessageList()) {
            assertEquals(topic, m.getTopic());
            assertTrue(Arrays.asList(m.getKeys().split(" ")).contains(key), "keys " + m.getKeys());
            bodies.add(Env.str(m.getBody()));
        }
        assertEquals(sent.keySet(), bodies, "queryMessage(topic, key) bodies");

        // VIEW_MESSAGE_BY_ID with the offset msg id, and lookup by the producer's msgId (UNIQ_KEY)
        SendResult r = sent.get("query-1");
        MessageExt byOffsetId = producer.viewMessage(topic, r.getOffsetMsgId());
        assertEquals("query-1", Env.str(byOffsetId.getBody()), "viewMessage(topic, offsetMsgId)");
        assertEquals(r.getMsgId(), byOffsetId.getMsgId());
        MessageExt byUniq = producer.viewMessage(topic, r.getMsgId());
        assertEquals("query-1", Env.str(byUniq.getBody()), "viewMessage(topic, msgId)");
        assertEquals(key, byUniq.getKeys());
    }
}
