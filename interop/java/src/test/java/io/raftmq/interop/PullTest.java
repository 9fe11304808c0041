package io.raftmq.interop;

import java.util.ArrayList;
import java.util.List;

import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.producer.MessageQueueSelector;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Pull consumers with explicit offsets: DefaultMQPullConsumer and DefaultLitePullConsumer. */
class PullTest extends WithProducer {

    static final MessageQueueSelector QUEUE_ARG = (mqs, msg, arg) -> {
        for (MessageQueue mq : mqs) if (mq.getQueueId() == (Integer) arg) return mq;
        throw new IllegalStateException("no queue " + arg + " in " + mqs);
    };

    /** Sends n messages "prefix-i" to queue 1 of a fresh 2-queue topic; returns the queue. */
    MessageQueue fill(String topic, String prefix, int n) throws Exception {
        Env.createTopic(producer, topic, 2);
        MessageQueue mq = null;
        for (int i = 0; i < n; i++) {
            SendResult r = producer.send(new Message(topic, "TagL", Env.utf8(prefix + "-" + i)), QUEUE_ARG, 1);
            assertEquals(i, r.getQueueOffset(), "queue offset of send " + i);
            mq = r.getMessageQueue();
        }
        return mq;
    }

    @Test
    void pullConsumerFromExplicitOffsets() throws Exception {
        String topic = Env.name("Pull");
        MessageQueue sentTo = fill(topic, "pull", 10);
        DefaultMQPullConsumer c = Env.configure(new DefaultMQPullConsumer(Env.name("pullg")));
        c.start();
        try {
            List<MessageQueue> mqs = new ArrayList<>(c.fetchSubscribeMessageQueues(topic));
            assertEquals(2, mqs.size(), "read queues " + mqs);
            MessageQueue mq = mqs.stream().filter(q -> q.getQueueId() == 1).findFirst().orElseThrow();
            assertEquals(sentTo, mq);
            assertEquals(0, c.minOffset(mq), "minOffset");
            assertEquals(10, c.maxOffset(mq), "maxOffset");

            PullResult r = c.pull(mq, "*", 3, 4);
            assertEquals(PullStatus.FOUND, r.getPullStatus(), r.toString());
            assertEquals(4, r.getMsgFoundList().size(), r.toString());
            for (int i = 0; i < 4; i++) {
                MessageExt m = r.getMsgFoundList().get(i);
                assertEquals(3 + i, m.getQueueOffset(), "queue offset");
                assertEquals("pull-" + (3 + i), Env.str(m.getBody()));
                assertEquals(1, m.getQueueId());
            }
            assertEquals(7, r.getNextBeginOffset(), "nextBeginOffset");
            assertEquals(0, r.getMinOffset(), "minOffset in pull result");
            assertEquals(10, r.getMaxOffset(), "maxOffset in pull result");

            PullResult rest = c.pull(mq, "*", 7, 32);
            assertEquals(PullStatus.FOUND, rest.getPullStatus());
            assertEquals(3, rest.getMsgFoundList().size());
            assertEquals(10, rest.getNextBeginOffset());

            PullResult end = c.pull(mq, "*", 10, 32);
            assertEquals(PullStatus.NO_NEW_MSG, end.getPullStatus(), end.toString());
            assertEquals(10, end.getNextBeginOffset());

            PullResult empty = c.pull(mqs.stream().filter(q -> q.getQueueId() == 0).findFirst().orElseThrow(), "*", 0, 32);
            assertEquals(PullStatus.NO_NEW_MSG, empty.getPullStatus(), "empty queue 0: " + empty);

            // tag filtering by the broker: nothing in the queue matches TagX, so the broker answers
            // NO_MATCHED_MSG (PULL_RETRY_IMMEDIATELY) past the scanned range; a broker that does
            // not filter returns FOUND and leaves the filtering to the client
            PullResult none = c.pull(mq, "TagX", 0, 32);
            assertTrue(none.getMsgFoundList() == null || none.getMsgFoundList().isEmpty(),
                    "TagX matched: " + none);
            assertEquals(PullStatus.NO_MATCHED_MSG, none.getPullStatus(), "pull with TagX: " + none);
            assertEquals(10, none.getNextBeginOffset(), "nextBeginOffset after scanning for TagX");

            // far past the end: RocketMQ answers PULL_OFFSET_MOVED (OFFSET_ILLEGAL) with the max offset
            PullResult bad = c.pull(mq, "*", 100, 32);
            assertEquals(PullStatus.OFFSET_ILLEGAL, bad.getPullStatus(), bad.toString());
            assertEquals(10, bad.getNextBeginOffset(), "nextBeginOffset for an offset past the end");

            // an offset committed with a (synchronous) UPDATE_CONSUMER_OFFSET is read back by
            // another client of the group with QUERY_CONSUMER_OFFSET
            c.updateConsumeOffset(mq, 7);
            c.getOffsetStore().updateConsumeOffsetToBroker(mq, 7, false);
            DefaultMQPullConsumer c2 = Env.configure(new DefaultMQPullConsumer(c.getConsumerGroup()));
            c2.start();
            try {
                c2.fetchSubscribeMessageQueues(topic);
                assertEquals(7, c2.fetchConsumeOffset(mq, true), "committed offset read back from the broker");
            } finally {
                Env.shutdown(c2);
            }
        } finally {
            Env.shutdown(c);
        }
    }

    @Test
    void litePullConsumerAssignAndSeek() throws Exception {
        String topic = Env.name("Lite");
        MessageQueue mq = fill(topic, "lite", 10);
        DefaultLitePullConsumer c = Env.configure(new DefaultLitePullConsumer(Env.name("liteg")));
        c.setAutoCommit(false);
        c.setPullBatchSize(4);
        c.start();
        try {
            List<MessageQueue> mqs = new ArrayList<>(c.fetchMessageQueues(topic));
            assertEquals(2, mqs.size(), "queues " + mqs);
            c.assign(List.of(mq));
            List<MessageExt> first = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 15_000;
            while (first.size() < 10 && System.currentTimeMillis() < deadline) first.addAll(c.poll(500));
            assertEquals(10, first.size(), "initial read: " + first);
            assertEquals(0, first.get(0).getQueueOffset());
            // Read to the end first: the pull task then waits at offset 10, so the seek
            // cannot race a pull already carrying messages from offset 0, whose batch the
            // client (DefaultLitePullConsumerImpl, 4.9.x to 5.x) would still deliver.
            c.seek(mq, 5);
            List<MessageExt> got = new ArrayList<>();
            deadline = System.currentTimeMillis() + 15_000;
            while (got.size() < 5 && System.currentTimeMillis() < deadline) got.addAll(c.poll(500));
            assertEquals(5, got.size(), "polled from offset 5: " + got
                    + " (the lite pull consumer logs its pull errors to " + System.getProperty("rocketmq.log.root")
                    + "/rocketmq_client.log)");
            for (int i = 0; i < 5; i++) {
                assertEquals(5 + i, got.get(i).getQueueOffset());
                assertEquals("lite-" + (5 + i), Env.str(got.get(i).getBody()));
            }
            // seek back and read again
            c.seek(mq, 0);
            List<MessageExt> again = new ArrayList<>();
            deadline = System.currentTimeMillis() + 15_000;
            while (again.size() < 10 && System.currentTimeMillis() < deadline) again.addAll(c.poll(500));
            assertEquals(10, again.size());
            assertEquals(0, again.get(0).getQueueOffset());
            assertEquals("lite-9", Env.str(again.get(9).getBody()));
        } finally {
            Env.shutdown(c);
        }
    }
}
