package io.raftmq.interop;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.client.producer.TransactionSendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Transactional messages: commit, rollback, and an undecided transaction resolved by the
 * broker's check-back. Each test fails fast on the first wrong observation (a rolled-back
 * or undecided message delivered), and waits long only for what a broker does slowly
 * (a check comes after transactionTimeOut, at the next transactionCheckInterval).
 */
class TransactionTest extends WithProducer {

    /** Commit is delivered (only after the local transaction committed); rollback never is. */
    @Test
    void transactionCommitAndRollback() throws Exception {
        String topic = Env.name("Tx");
        Env.createTopic(producer, topic, 2);
        Map<String, Long> decidedAt = new ConcurrentHashMap<>();
        TransactionMQProducer tp = Env.configure(new TransactionMQProducer(Env.name("txpg")));
        tp.setTransactionListener(new TransactionListener() {
            @Override
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                String body = Env.str(msg.getBody());
                try {
                    Thread.sleep(1000); // the half message must stay invisible meanwhile
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                decidedAt.put(body, System.currentTimeMillis());
                return body.startsWith("commit") ? LocalTransactionState.COMMIT_MESSAGE
                        : LocalTransactionState.ROLLBACK_MESSAGE;
            }

            @Override
            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                return Env.str(msg.getBody()).startsWith("commit") ? LocalTransactionState.COMMIT_MESSAGE
                        : LocalTransactionState.ROLLBACK_MESSAGE;
            }
        });
        tp.start();
        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            TransactionSendResult rc = tp.sendMessageInTransaction(new Message(topic, Env.utf8("commit-1")), null);
            TransactionSendResult rr = tp.sendMessageInTransaction(new Message(topic, Env.utf8("rollback-1")), null);
            assertEquals(SendStatus.SEND_OK, rc.getSendStatus());
            assertEquals(LocalTransactionState.COMMIT_MESSAGE, rc.getLocalTransactionState());
            assertEquals(LocalTransactionState.ROLLBACK_MESSAGE, rr.getLocalTransactionState());
            long deadline = System.currentTimeMillis() + 15_000;
            while (!c.bodies().contains("commit-1") && System.currentTimeMillis() < deadline) {
                assertFalse(c.bodies().contains("rollback-1"), "rolled-back message delivered");
                Thread.sleep(20);
            }
            assertTrue(c.bodies().contains("commit-1"), "committed message not delivered in 15 s");
            int i = c.snapshot().stream().map(m -> Env.str(m.getBody())).toList().indexOf("commit-1");
            assertTrue(c.arrivals.get(i) >= decidedAt.get("commit-1"),
                    "half message delivered before the local transaction committed");
            Thread.sleep(2000);
            assertFalse(c.bodies().contains("rollback-1"), "rolled-back message delivered");
            MessageExt m = c.snapshot().get(i);
            assertEquals(rc.getMsgId(), m.getMsgId());
        } finally {
            Env.shutdown(tp);
        }
    }

    /** UNKNOW leaves the half message pending until the broker's check-back commits it. */
    @Test
    void transactionUnknownResolvedByCheckBack() throws Exception {
        String topic = Env.name("TxCheck");
        Env.createTopic(producer, topic, 2);
        Set<String> checked = ConcurrentHashMap.newKeySet();
        Map<String, Long> checkedAt = new ConcurrentHashMap<>();
        TransactionMQProducer tp = Env.configure(new TransactionMQProducer(Env.name("txpg")));
        tp.setTransactionListener(new TransactionListener() {
            @Override
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                return LocalTransactionState.UNKNOW;
            }

            @Override
            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                String body = Env.str(msg.getBody());
                checked.add(body);
                checkedAt.putIfAbsent(body, System.currentTimeMillis());
                return LocalTransactionState.COMMIT_MESSAGE;
            }
        });
        tp.start();
        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            Message msg = new Message(topic, Env.utf8("unknown-1"));
            // first check after 1 s instead of the broker's transactionTimeOut (6 s)
            msg.putUserProperty("CHECK_IMMUNITY_TIME_IN_SECONDS", "1");
            TransactionSendResult r = tp.sendMessageInTransaction(msg, null);
            assertEquals(SendStatus.SEND_OK, r.getSendStatus());
            assertEquals(LocalTransactionState.UNKNOW, r.getLocalTransactionState());
            // the Java broker checks every transactionCheckInterval (60 s in 4.9, 30 s in 5.x)
            long deadline = System.currentTimeMillis() + 75_000;
            while (System.currentTimeMillis() < deadline) {
                if (c.bodies().contains("unknown-1")) {
                    assertTrue(checked.contains("unknown-1"), "undecided message delivered before any check-back");
                    break;
                }
                Thread.sleep(20);
            }
            assertTrue(checked.contains("unknown-1"), "no CHECK_TRANSACTION_STATE within 75 s");
            assertTrue(c.bodies().contains("unknown-1"), "message committed by check-back not delivered");
            int i = c.snapshot().stream().map(m -> Env.str(m.getBody())).toList().indexOf("unknown-1");
            assertTrue(c.arrivals.get(i) >= checkedAt.get("unknown-1"), "delivered before the check-back");
        } finally {
            Env.shutdown(tp);
        }
    }
}
