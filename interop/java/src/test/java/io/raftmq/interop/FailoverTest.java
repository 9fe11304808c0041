package io.raftmq.interop;

import java.io.File;
import java.nio.file.Files;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Group topology only: SIGKILL the master of broker-a (via $INTEROP_CTL kill-master) while a
 * producer sends continuously; every send acknowledged SEND_OK must then be consumed.
 * The pom runs it in its own surefire execution after all other tests, so no other test
 * sees the kill.
 */
class FailoverTest {

    @Test
    void killMasterWhileProducingLosesNoAcknowledgedSend() throws Exception {
        Assumptions.assumeTrue("group".equals(Env.topology()) && Env.ctl() != null,
                "needs INTEROP_TOPOLOGY=group and INTEROP_CTL");
        // Java clients learn a new master from the name server's route, which they poll every
        // pollNameServerInterval (30 s by default): 1 s here so the test is quick.
        DefaultMQProducer producer = Env.configure(new DefaultMQProducer(Env.name("pg")));
        producer.setPollNameServerInterval(1000);
        producer.setRetryTimesWhenSendFailed(3);
        producer.setSendMsgTimeout(3000);
        producer.start();
        String topic = Env.name("Failover");
        Env.createTopic(producer, topic, 4);

        Set<String> acked = ConcurrentHashMap.newKeySet();
        Map<String, AtomicInteger> outcomes = new ConcurrentHashMap<>();
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong killedAt = new AtomicLong(Long.MAX_VALUE);
        AtomicInteger ackedAfterKill = new AtomicInteger();
        AtomicLong firstAckAfterKill = new AtomicLong();
        Map<String, String> sampleErrors = new ConcurrentHashMap<>();
        Thread sender = new Thread(() -> {
            for (int i = 0; !stop.get(); i++) {
                String body = "fo-" + i;
                String outcome;
                try {
                    SendResult r = producer.send(new Message(topic, Env.utf8(body)));
                    outcome = r.getSendStatus().name();
                    if (r.getSendStatus() == SendStatus.SEND_OK) {
                        acked.add(body);
                        long now = System.currentTimeMillis();
                        if (now > killedAt.get() && ackedAfterKill.incrementAndGet() == 1) firstAckAfterKill.set(now);
                    }
                } catch (Exception e) {
                    outcome = e.getClass().getSimpleName();
                    sampleErrors.putIfAbsent(outcome, String.valueOf(e.getMessage()).split("\n")[0]);
                    try {
                        Thread.sleep(50);
                    } catch (InterruptedException ie) {
                        return;
                    }
                }
                outcomes.computeIfAbsent(outcome, k -> new AtomicInteger()).incrementAndGet();
                try {
                    Thread.sleep(5);
                } catch (InterruptedException ie) {
                    return;
                }
            }
        }, "failover-sender");
        sender.start();
        try {
            Env.await(10_000, () -> acked.size() >= 50, () -> "only " + acked.size() + " sends acknowledged before the kill");

            File out = Files.createTempFile("interop-ctl", ".log").toFile();
            Process p = new ProcessBuilder("bash", "-c", Env.ctl() + " kill-master")
                    .redirectErrorStream(true).redirectOutput(out).start();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "$INTEROP_CTL kill-master did not return in 60 s");
            killedAt.set(System.currentTimeMillis());
            assertEquals(0, p.exitValue(), "$INTEROP_CTL kill-master failed: " + Files.readString(out.toPath()));
            System.out.println("[" + Env.clientVersion() + "] kill-master: " + Files.readString(out.toPath()).trim());

            // the producer must recover: sends acknowledged again after the kill
            Env.await(30_000, () -> ackedAfterKill.get() >= 50,
                    () -> "only " + ackedAfterKill.get() + " sends acknowledged after the kill; outcomes " + outcomes);
        } finally {
            stop.set(true);
            sender.join(15_000);
        }
        System.out.println("[" + Env.clientVersion() + "] failover send outcomes: " + new TreeMap<>(outcomes)
                + ", acknowledged " + acked.size() + ", first ack " + (firstAckAfterKill.get() - killedAt.get())
                + " ms after kill-master returned; errors e.g. " + sampleErrors);

        try (Collector c = Collector.start(Env.name("cg"), topic, "*")) {
            c.awaitBodies(acked, 60_000);
        } finally {
            Env.shutdown(producer);
        }
    }
}
