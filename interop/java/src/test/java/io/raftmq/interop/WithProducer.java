package io.raftmq.interop;

import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;

/** A test class with one started producer, shared by its tests. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class WithProducer {
    DefaultMQProducer producer;

    @BeforeAll
    void startProducer() throws Exception {
        producer = Env.producer();
    }

    @AfterAll
    void stopProducer() {
        Env.shutdown(producer);
    }
}
