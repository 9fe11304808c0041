package io.raftmq.interop;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;

import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * RECONSUME_LATER: CONSUMER_SEND_MSG_BACK puts the message into %RETRY%group with
 * reconsumeTimes + 1 (after delay level 1 = 1 s here); after maxReconsumeTimes it goes to
 * %DLQ%group, which is readable (perm R|W since RocketMQ 4.9.2).
 */
class RetryDlqTest extends WithProducer {

    record Delivery(int reconsumeTimes, String topic, String retryTopicProp, String msgId, long at) {}

    @Test
    void reconsumeLaterThroughRetryTopicThenDlq() throws Exception {
        String topic = Env.name("Retry");
        Env.createTopic(producer, topic, 1);
        String group = Env.name("rg");
        String retryTopic = "%RETRY%" + group;
        String dlqTopic = "%DLQ%" + group;
        int maxReconsume = 2;

        List<Delivery> deliveries = new CopyOnWriteArrayList<>();
        DefaultMQPushConsumer c = Env.configure(new DefaultMQPushConsumer(group));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setMaxReconsumeTimes(maxReconsume);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs)
                deliveries.add(new Delivery(m.getReconsumeTimes(), m.getTopic(), m.getProperty("RETRY_TOPIC"),
                        m.getMsgId(), System.currentTimeMillis()));
            ctx.setDelayLevelWhenNextConsume(1);
            return ConsumeConcurrentlyStatus.RECONSUME_LATER;
        });
        c.start();
        DefaultMQPullConsumer reader = Env.configure(new DefaultMQPullConsumer(Env.name("dlqreader")));
        reader.start();
        try {
            SendResult sent = producer.send(new Message(topic, "TagR", "retry-key", Env.utf8("retry-me")));
            assertEquals(SendStatus.SEND_OK, sent.getSendStatus());

            // 45 s: a 5.x push consumer of a brand-new group picks up its %RETRY% queue only at its
            // next 20 s rebalance (the retry route is created by its first heartbeat)
            Env.await(45_000, () -> deliveries.size() >= maxReconsume + 1,
                    () -> "deliveries so far " + deliveries);

            // the dead-lettered message is readable from %DLQ%group queue 0
            List<MessageExt> dlq = new ArrayList<>();
            String[] lastError = {null};
            Env.await(20_000, () -> {
                dlq.clear();
                try {
                    dlq.addAll(readAll(reader, dlqTopic));
                } catch (AssertionError e) {
                    lastError[0] = e.getMessage();
                }
                return dlq.stream().anyMatch(m -> sent.getMsgId().equals(m.getMsgId()));
            }, () -> "message " + sent.getMsgId() + " not in " + dlqTopic + " (read " + dlq.size()
                    + " messages there; last error: " + lastError[0] + "; deliveries " + deliveries + ")");
            MessageExt dead = dlq.stream().filter(m -> sent.getMsgId().equals(m.getMsgId())).findFirst().get();
            assertEquals("retry-me", Env.str(dead.getBody()));
            assertEquals(dlqTopic, dead.getTopic());
            assertEquals(0, dead.getQueueId(), "DLQ queue");
            assertEquals(topic, dead.getProperty("RETRY_TOPIC"), "RETRY_TOPIC (original topic) on the DLQ copy");
            assertEquals("retry-key", dead.getKeys());

            Thread.sleep(1500); // nothing may come back once it is dead-lettered
            List<Integer> times = deliveries.stream().map(Delivery::reconsumeTimes).collect(Collectors.toList());
            System.out.println("[" + Env.clientVersion() + "] retry deliveries (reconsumeTimes, gap ms): "
                    + gaps(deliveries));
            assertEquals(List.of(0, 1, 2), times, "reconsumeTimes of the deliveries " + deliveries);
            for (Delivery d : deliveries) {
                assertEquals(sent.getMsgId(), d.msgId(), "msgId stays the same across retries");
                assertEquals(topic, d.topic(), "the consumer sees the original topic");
            }
            for (Delivery d : deliveries.subList(1, deliveries.size()))
                assertEquals(topic, d.retryTopicProp(), "a retry carries RETRY_TOPIC = original topic");

            // the retries came through %RETRY%group: it holds the copies with reconsumeTimes 1 and 2
            List<Integer> retried = readAll(reader, retryTopic).stream()
                    .filter(m -> sent.getMsgId().equals(m.getMsgId()))
                    .map(MessageExt::getReconsumeTimes).sorted().collect(Collectors.toList());
            assertEquals(List.of(1, 2), retried, "copies of the message in " + retryTopic);
        } finally {
            Env.shutdown(c, reader);
        }
    }

    static String gaps(List<Delivery> ds) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ds.size(); i++) {
            sb.append('(').append(ds.get(i).reconsumeTimes()).append(", ")
                    .append(i == 0 ? 0 : ds.get(i).at() - ds.get(i - 1).at()).append(") ");
        }
        return sb.toString();
    }

    static List<MessageExt> readAll(DefaultMQPullConsumer reader, String topic) {
        List<MessageExt> out = new ArrayList<>();
        try {
            for (MessageQueue mq : reader.fetchSubscribeMessageQueues(topic)) {
                long offset = 0;
                for (int round = 0; round < 100; round++) {
                    PullResult r = reader.pull(mq, "*", offset, 32);
                    if (r.getPullStatus() != PullStatus.FOUND) break;
                    out.addAll(r.getMsgFoundList());
                    offset = r.getNextBeginOffset();
                }
            }
        } catch (Exception e) {
            throw new AssertionError("reading " + topic + ": " + e, e);
        }
        return out;
    }
}
