package io.raftmq.interop;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

/** A concurrent push consumer that records every delivery (with its arrival time). */
public final class Collector implements AutoCloseable {
    public final DefaultMQPushConsumer consumer;
    public final String topic;
    public final List<MessageExt> received = new CopyOnWriteArrayList<>();
    public final List<Long> arrivals = new CopyOnWriteArrayList<>();

    private Collector(DefaultMQPushConsumer consumer, String topic) {
        this.consumer = consumer;
        this.topic = topic;
    }

    public static Collector start(String group, String topic, String expression) throws Exception {
        return start(group, topic, expression, "CLUSTERING");
    }

    public static Collector start(String group, String topic, String expression, String model)
            throws Exception {
        DefaultMQPushConsumer c = Env.configure(new DefaultMQPushConsumer(group));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        Env.setMessageModel(c, model);
        c.subscribe(topic, expression);
        Collector col = new Collector(c, topic);
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            long now = System.currentTimeMillis();
            for (MessageExt m : msgs) {
                col.received.add(m);
                col.arrivals.add(now);
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        return col;
    }

    /** The queues of the subscribed topic this instance currently holds (rebalance result). */
    public Set<MessageQueue> assigned() {
        return consumer.getDefaultMQPushConsumerImpl().getRebalanceImpl().getProcessQueueTable().keySet()
                .stream().filter(mq -> mq.getTopic().equals(topic)).collect(Collectors.toSet());
    }

    public Set<String> bodies() {
        Set<String> s = ConcurrentHashMap.newKeySet();
        for (MessageExt m : received) s.add(Env.str(m.getBody()));
        return s;
    }

    public List<MessageExt> snapshot() {
        return new ArrayList<>(received);
    }

    public void awaitBodies(Set<String> expected, long timeoutMs) throws InterruptedException {
        Env.await(timeoutMs, () -> bodies().containsAll(expected), () -> {
            Set<String> missing = new java.util.TreeSet<>(expected);
            missing.removeAll(bodies());
            return "consumer " + consumer.getConsumerGroup() + " on " + topic + " received "
                    + received.size() + " messages; missing " + missing.size() + " of " + expected.size()
                    + " e.g. " + missing.stream().limit(5).collect(Collectors.toList());
        });
    }

    @Override
    public void close() {
        Env.shutdown(consumer);
    }
}
