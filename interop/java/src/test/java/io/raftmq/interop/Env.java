package io.raftmq.interop;

import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

import org.apache.rocketmq.client.ClientConfig;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.message.MessageQueue;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * The suite's contract with its runner (shared by all interop suites):
 * NAMESRV_ADDR (required), INTEROP_TOPOLOGY = single (default) | group, INTEROP_CTL (group only).
 * Also the few places where the 4.9 and 5.3 client APIs differ, bridged by reflection so one
 * source tree compiles against both.
 */
public final class Env {
    private Env() {}

    /** Unique per JVM run: every topic and group name carries it, so reruns never collide. */
    public static final String RUN_ID = Long.toString(System.currentTimeMillis(), 36)
            + Integer.toString(ThreadLocalRandom.current().nextInt(36 * 36 * 36), 36);
    private static final AtomicInteger SEQ = new AtomicInteger();

    /** RocketMQ's default topic key: admin createTopic creates on every master holding it. */
    public static final String CREATE_TOPIC_KEY = "TBW102";

    public static String namesrv() {
        String addr = System.getenv("NAMESRV_ADDR");
        if (addr == null || addr.isBlank()) {
            throw new IllegalStateException(
                    "NAMESRV_ADDR is not set: export NAMESRV_ADDR=host:port of raftmq's name server");
        }
        return addr.trim();
    }

    public static String topology() {
        String t = System.getenv("INTEROP_TOPOLOGY");
        return t == null || t.isBlank() ? "single" : t.trim();
    }

    public static String ctl() {
        String c = System.getenv("INTEROP_CTL");
        return c == null || c.isBlank() ? null : c.trim();
    }

    public static String clientVersion() {
        return System.getProperty("rocketmq.client.version", "?");
    }

    /** A fresh name: prefix + run id + sequence (letters, digits, '_' and '-' only). */
    public static String name(String prefix) {
        return prefix + "_" + RUN_ID + "_" + SEQ.incrementAndGet();
    }

    public static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    public static String str(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    static <T extends ClientConfig> T configure(T client) {
        client.setNamesrvAddr(namesrv());
        client.setInstanceName(name("inst"));
        client.setVipChannelEnabled(false);
        return client;
    }

    public static DefaultMQProducer producer() throws Exception {
        DefaultMQProducer p = configure(new DefaultMQProducer(name("pg")));
        p.setSendMsgTimeout(5000);
        p.start();
        return p;
    }

    /**
     * Creates a topic through the client's own admin path
     * (DefaultMQProducer.createTopic(key, topic, queues), MQAdminImpl: UPDATE_AND_CREATE_TOPIC to
     * every master in the key topic's route), then waits until the name server routes it with
     * that many write queues.
     */
    public static void createTopic(DefaultMQProducer p, String topic, int queues) throws Exception {
        invokeCreateTopic(p, CREATE_TOPIC_KEY, topic, queues);
        awaitRoute(p, topic, queues);
    }

    static void invokeCreateTopic(DefaultMQProducer p, String key, String topic, int queues)
            throws Exception {
        // 4.9: createTopic(String key, String newTopic, int queueNum)
        // 5.3: createTopic(String key, String newTopic, int queueNum, Map<String,String> attributes)
        for (Method m : p.getClass().getMethods()) {
            if (!m.getName().equals("createTopic")) continue;
            Class<?>[] ps = m.getParameterTypes();
            try {
                if (ps.length == 3 && ps[2] == int.class) {
                    m.invoke(p, key, topic, queues);
                    return;
                }
                if (ps.length == 4 && ps[2] == int.class && ps[3] == Map.class) {
                    m.invoke(p, key, topic, queues, null);
                    return;
                }
            } catch (java.lang.reflect.InvocationTargetException e) {
                throw (e.getCause() instanceof Exception) ? (Exception) e.getCause() : e;
            }
        }
        throw new IllegalStateException("no createTopic(key, topic, queueNum[, attrs]) on " + p.getClass());
    }

    static void awaitRoute(DefaultMQProducer p, String topic, int queues) throws Exception {
        long deadline = System.currentTimeMillis() + 10_000;
        Exception last = null;
        int seen = -1;
        while (System.currentTimeMillis() < deadline) {
            try {
                Collection<MessageQueue> mqs = p.fetchPublishMessageQueues(topic);
                seen = mqs.size();
                if (seen == queues) return;
            } catch (Exception e) {
                last = e;
            }
            Thread.sleep(100);
        }
        AssertionError err = new AssertionError("topic " + topic + " created with " + queues
                + " queues is not routed with them by the name server within 10 s (last saw "
                + seen + " write queues)");
        if (last != null) err.initCause(last);
        throw err;
    }

    /** BROADCASTING or CLUSTERING: MessageModel moved packages between 4.9 and 5.x. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public static void setMessageModel(DefaultMQPushConsumer c, String model) throws Exception {
        for (Method m : c.getClass().getMethods()) {
            if (m.getName().equals("setMessageModel") && m.getParameterCount() == 1) {
                Class<? extends Enum> type = (Class<? extends Enum>) m.getParameterTypes()[0];
                m.invoke(c, Enum.valueOf(type, model));
                return;
            }
        }
        throw new IllegalStateException("no setMessageModel");
    }

    /** Polls cond every 20 ms until it holds or timeoutMs passed; returns whether it held. */
    public static boolean waitFor(long timeoutMs, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < deadline) {
            if (cond.getAsBoolean()) return true;
            Thread.sleep(20);
        }
        return cond.getAsBoolean();
    }

    public static void await(long timeoutMs, BooleanSupplier cond, java.util.function.Supplier<String> what)
            throws InterruptedException {
        if (!waitFor(timeoutMs, cond)) fail("timed out after " + timeoutMs + " ms: " + what.get());
    }

    public static void shutdown(Object... clients) {
        for (Object c : clients) {
            if (c == null) continue;
            try {
                c.getClass().getMethod("shutdown").invoke(c);
            } catch (Exception ignored) {
                // best effort
            }
        }
    }
}
