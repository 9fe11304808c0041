"""The RocketMQ C++ client (librocketmq, through its Python binding) against raftmq.

Everything here is the C++ client's own behaviour on the wire; raftmq's CLI only creates
topics, which the C++ client has no API for. What the client does not offer (query by key
or id) is not tested here; see docs/compatibility.md.
"""

import threading
import time
from collections import defaultdict

import pytest
from rocketmq.client import (
    ConsumeStatus,
    Message,
    MessageModel,
    Producer,
    PushConsumer,
    SendStatus,
    TransactionMQProducer,
    TransactionStatus,
)

import capi
from conftest import CTL, NAMESRV, TOPOLOGY, create_topic, unique, wait_until


def message(topic, body, tags="", keys="", **props):
    m = Message(topic)
    m.set_body(body)
    if tags:
        m.set_tags(tags)
    if keys:
        m.set_keys(keys)
    for k, v in props.items():
        m.set_property(k, v)
    return m


def start_producer(group, orderly=False):
    p = Producer(group, orderly=orderly)
    p.set_namesrv_addr(NAMESRV)
    p.start()
    return p


def start_consumer(group, topic, delivered, expression="*", model=MessageModel.CLUSTERING,
                   orderly=False, instance=None, on_message=None):
    c = PushConsumer(group, orderly=orderly, message_model=model)
    c.set_namesrv_addr(NAMESRV)
    if instance:
        c.set_instance_name(instance)

    def callback(msg):
        if on_message is not None:
            return on_message(msg)
        delivered.record(msg, p1=msg.get_property("p1").decode(), uniq=msg.get_property("UNIQ_KEY").decode())
        return ConsumeStatus.CONSUME_SUCCESS

    c.subscribe(topic, callback, expression)
    c.start()
    return c


def test_sync_send_round_trips_tags_keys_and_properties(delivered):
    topic, group = unique("Sync"), unique("SyncG")
    create_topic(topic)
    p = start_producer(unique("SyncP"))
    sent = {}
    for i in range(8):
        r = p.send_sync(message(topic, "sync-%d" % i, tags="TagA", keys="key-%d" % i, p1="v%d" % i))
        assert r.status == SendStatus.OK, r
        sent["sync-%d" % i] = r
    p.shutdown()
    c = start_consumer(group, topic, delivered)
    try:
        wait_until(lambda: set(delivered.bodies()) >= set(sent), 30, "all 8 messages")
    finally:
        c.shutdown()
    for item in delivered.snapshot():
        i = item["body"].split("-")[1]
        assert item["topic"] == topic
        assert item["tags"] == "TagA"
        assert item["keys"] == "key-%s" % i
        assert item["p1"] == "v%s" % i
        # The id the consumer sees is the producer's unique id, as on RocketMQ.
        assert item["id"] == sent[item["body"]].msg_id
        assert item["uniq"] == sent[item["body"]].msg_id


def test_oneway_send_is_delivered(delivered):
    topic = unique("Oneway")
    create_topic(topic)
    p = start_producer(unique("OnewayP"))
    for i in range(5):
        p.send_oneway(message(topic, "oneway-%d" % i))
    c = start_consumer(unique("OnewayG"), topic, delivered)
    try:
        wait_until(lambda: len(set(delivered.bodies())) == 5, 30, "5 oneway messages")
    finally:
        c.shutdown()
        p.shutdown()


def test_async_send_reports_success_and_is_delivered(delivered):
    topic = unique("Async")
    create_topic(topic)
    p = start_producer(unique("AsyncP"))
    sends = capi.AsyncSends()
    msgs = [message(topic, "async-%d" % i) for i in range(10)]
    for m in msgs:
        sends.send(p, m)
    wait_until(lambda: sends.done() == 10, 30, "10 async send callbacks")
    assert sends.errors == []
    assert all(status == 0 for status, _, _ in sends.ok)
    c = start_consumer(unique("AsyncG"), topic, delivered)
    try:
        wait_until(lambda: len(set(delivered.bodies())) == 10, 30, "10 async messages")
    finally:
        c.shutdown()
        p.shutdown()


def test_batch_send_delivers_each_message(delivered):
    topic = unique("Batch")
    create_topic(topic)
    p = start_producer(unique("BatchP"))
    status, msg_id, _ = capi.send_batch(p, [message(topic, "batch-%d" % i, keys="b%d" % i) for i in range(6)])
    assert status == 0, (status, msg_id)
    p.shutdown()
    c = start_consumer(unique("BatchG"), topic, delivered)
    try:
        wait_until(lambda: len(set(delivered.bodies())) == 6, 30, "6 batched messages")
    finally:
        c.shutdown()
    assert sorted(delivered.bodies()) == ["batch-%d" % i for i in range(6)]
    for item in delivered.snapshot():
        assert item["keys"] == "b" + item["body"].split("-")[1]


def test_tag_expression_filters(delivered):
    topic = unique("Tags")
    create_topic(topic)
    p = start_producer(unique("TagsP"))
    for i in range(12):
        p.send_sync(message(topic, "tags-%d" % i, tags="Tag" + "ABC"[i % 3]))
    # A last message the consumer waits for, so everything before it was looked at.
    p.send_sync(message(topic, "tags-end", tags="TagB"))
    p.shutdown()
    c = start_consumer(unique("TagsG"), topic, delivered, expression="TagA || TagB")
    try:
        wait_until(lambda: "tags-end" in delivered.bodies(), 30, "the last TagB message")
        time.sleep(1)
    finally:
        c.shutdown()
    tags = [i["tags"] for i in delivered.snapshot()]
    assert "TagC" not in tags, tags
    assert sorted(set(delivered.bodies())) == sorted(
        ["tags-%d" % i for i in range(12) if i % 3 != 2] + ["tags-end"]
    )


def test_orderly_send_and_consume_keeps_per_key_order(delivered):
    topic = unique("Order")
    create_topic(topic)
    p = start_producer(unique("OrderP"), orderly=True)
    keys = ["order-%d" % k for k in range(4)]
    per_key = 10
    for i in range(per_key):
        for key in keys:
            r = p.send_orderly_with_sharding_key(message(topic, "%s:%d" % (key, i), keys=key), key)
            assert r.status == SendStatus.OK
    p.shutdown()
    c = start_consumer(unique("OrderG"), topic, delivered, orderly=True)
    try:
        wait_until(lambda: len(set(delivered.bodies())) == per_key * len(keys), 40, "all ordered messages")
    finally:
        c.shutdown()
    seen = defaultdict(list)
    queues = defaultdict(set)
    for item in delivered.snapshot():
        key, seq = item["body"].split(":")
        seen[key].append(int(seq))
        queues[key].add(item["queue_id"])
    for key in keys:
        # At least once: a redelivery may repeat a run, but never goes backwards within one.
        first = [s for n, s in enumerate(seen[key]) if s not in seen[key][:n]]
        assert first == list(range(per_key)), (key, seen[key])
        assert len(queues[key]) == 1, (key, queues[key])


def test_clustering_splits_between_two_instances():
    topic, group = unique("Cluster"), unique("ClusterG")
    create_topic(topic)
    a, b = conftest_delivered(), conftest_delivered()
    ca = start_consumer(group, topic, a, instance="cpp-a")
    cb = start_consumer(group, topic, b, instance="cpp-b")
    try:
        # Let both instances join and rebalance the topic's 4 queues between them.
        time.sleep(6)
        p = start_producer(unique("ClusterP"))
        for i in range(40):
            p.send_sync(message(topic, "cl-%d" % i))
        p.shutdown()
        everything = {"cl-%d" % i for i in range(40)}
        wait_until(lambda: set(a.bodies()) | set(b.bodies()) >= everything, 40, "all 40 messages")
    finally:
        ca.shutdown()
        cb.shutdown()
    assert a.bodies() and b.bodies(), "one instance got nothing: %d / %d" % (len(a.bodies()), len(b.bodies()))


def test_broadcasting_gives_each_instance_everything():
    topic, group = unique("Bcast"), unique("BcastG")
    create_topic(topic)
    a, b = conftest_delivered(), conftest_delivered()
    ca = start_consumer(group, topic, a, model=MessageModel.BROADCASTING, instance="cpp-ba")
    cb = start_consumer(group, topic, b, model=MessageModel.BROADCASTING, instance="cpp-bb")
    try:
        time.sleep(5)
        p = start_producer(unique("BcastP"))
        for i in range(20):
            p.send_sync(message(topic, "bc-%d" % i))
        p.shutdown()
        everything = {"bc-%d" % i for i in range(20)}
        wait_until(lambda: set(a.bodies()) >= everything and set(b.bodies()) >= everything, 40,
                   "both instances to get all 20 messages")
    finally:
        ca.shutdown()
        cb.shutdown()


def test_pull_consumer_reads_at_explicit_offsets():
    topic = unique("Pull")
    create_topic(topic, queues=2)
    p = start_producer(unique("PullP"))
    sent = [p.send_sync(message(topic, "pull-%d" % i, tags="TagA" if i % 2 else "TagB")) for i in range(20)]
    assert all(r.status == SendStatus.OK for r in sent)
    p.shutdown()
    pc = capi.PullConsumer(unique("PullG"), NAMESRV)
    try:
        queues = pc.queues(topic)
        assert sorted(q.queueId for q in queues) == [0, 1]
        total, tag_a = 0, []
        for q in queues:
            status, next_offset, min_offset, max_offset, found = pc.pull(q, 0, 64)
            assert status == capi.PULL_FOUND, status
            assert min_offset == 0 and next_offset == max_offset == len(found)
            assert [o for o, _, _ in found] == list(range(len(found)))
            total += len(found)
            # From the middle: the same messages from that offset on.
            mid = len(found) // 2
            status, _, _, _, tail = pc.pull(q, mid, 64)
            assert status == capi.PULL_FOUND and tail == found[mid:]
            # Past the end: nothing new.
            status, _, _, _, none = pc.pull(q, max_offset, 64)
            assert status == capi.PULL_NO_NEW_MSG and none == [], status
            # With a tag expression only that tag comes back.
            status, _, _, _, tagged = pc.pull(q, 0, 64, "TagA")
            assert all(t == "TagA" for _, _, t in tagged), tagged
            tag_a += [body for _, body, _ in tagged]
        assert total == 20
        assert sorted(tag_a) == sorted("pull-%d" % i for i in range(20) if i % 2)
    finally:
        pc.close()


def test_producer_delay_level_is_honoured(delivered):
    topic = unique("Delay")
    create_topic(topic)
    c = start_consumer(unique("DelayG"), topic, delivered)
    try:
        # A plain message first: once it arrives the consumer is pulling, so a delivery
        # that comes late can only be the delay's doing.
        p = start_producer(unique("DelayP"))
        assert p.send_sync(message(topic, "probe")).status == SendStatus.OK
        wait_until(lambda: "probe" in delivered.bodies(), 30, "the probe message")
        m = message(topic, "delayed")
        m.set_delay_time_level(2)  # 5 s
        sent_at = time.time()
        assert p.send_sync(m).status == SendStatus.OK
        p.shutdown()
        wait_until(lambda: "delayed" in delivered.bodies(), 30, "the delayed message")
    finally:
        c.shutdown()
    at = [i["at"] for i in delivered.snapshot() if i["body"] == "delayed"][0]
    assert at - sent_at >= 5.0 - 0.05


def test_reconsume_later_comes_back_through_retry(delivered):
    topic, group = unique("Retry"), unique("RetryG")
    create_topic(topic)

    def on_message(msg):
        delivered.record(msg, retry_topic=msg.get_property("RETRY_TOPIC").decode())
        return ConsumeStatus.RECONSUME_LATER if msg.reconsume_times == 0 else ConsumeStatus.CONSUME_SUCCESS

    c = start_consumer(group, topic, delivered, on_message=on_message)
    try:
        time.sleep(3)
        p = start_producer(unique("RetryP"))
        assert p.send_sync(message(topic, "retry-me", keys="rk")).status == SendStatus.OK
        p.shutdown()
        # The first retry waits at delay level 3 (10 s), as RocketMQ's broker does.
        wait_until(lambda: len(delivered.snapshot()) >= 2, 40, "the message to come back")
    finally:
        c.shutdown()
    first, again = delivered.snapshot()[:2]
    assert first["reconsume_times"] == 0 and again["reconsume_times"] == 1
    assert again["body"] == "retry-me" and again["keys"] == "rk"
    # It came back through the group's retry topic; the client restores the topic.
    assert again["topic"] == topic and again["retry_topic"] == topic
    assert again["at"] - first["at"] >= 10.0 - 0.5


def test_dead_letters_after_the_groups_retry_max_times(delivered):
    """The C++ client has no maxReconsumeTimes setting and writes version V3_1_8, whose
    send-back bound RocketMQ's broker ignores in favour of the group's retryMaxTimes."""
    import subprocess

    from conftest import CLI

    topic, group = unique("Dlq"), unique("DlqG")
    create_topic(topic)
    subprocess.run([CLI, "group", "create", "-g", group, "--retry-max-times", "1", "-n", NAMESRV],
                   check=True, stdout=subprocess.DEVNULL)

    def on_message(msg):
        delivered.record(msg)
        return ConsumeStatus.RECONSUME_LATER

    c = start_consumer(group, topic, delivered, on_message=on_message)
    try:
        p = start_producer(unique("DlqP"))
        assert p.send_sync(message(topic, "doomed", keys="dk")).status == SendStatus.OK
        p.shutdown()
        # Delivered, retried once after 10 s, then dead.
        wait_until(lambda: len(delivered.snapshot()) >= 2, 40, "the retry")
        pc = capi.PullConsumer(unique("DlqReader"), NAMESRV)
        try:
            found = []

            def dead():
                try:
                    queues = pc.queues("%DLQ%" + group)
                except RuntimeError:
                    return False
                for q in queues:
                    found.extend(pc.pull(q, 0, 8)[4])
                return bool(found)

            wait_until(dead, 20, "the message in %DLQ%" + group)
        finally:
            pc.close()
    finally:
        c.shutdown()
    assert [body for _, body, _ in found] == ["doomed"]
    assert [i["reconsume_times"] for i in delivered.snapshot()] == [0, 1]


def test_transactions_commit_rollback_and_check_back(delivered):
    topic = unique("Tx")
    create_topic(topic)
    decisions = {"tx-commit": TransactionStatus.COMMIT, "tx-rollback": TransactionStatus.ROLLBACK,
                 "tx-unknown": TransactionStatus.UNKNOWN}
    checked = []

    def check(msg):
        checked.append(msg.body.decode())
        return TransactionStatus.COMMIT

    tp = TransactionMQProducer(unique("TxP"), check)
    tp.set_namesrv_addr(NAMESRV)
    tp.start()
    c = start_consumer(unique("TxG"), topic, delivered)
    try:
        for body, decision in decisions.items():
            r = tp.send_message_in_transaction(message(topic, body), lambda m, a, d=decision: d)
            assert r.status == SendStatus.OK
        # The unknown one is resolved (committed) by the broker's check-back (after 6 s).
        wait_until(lambda: {"tx-commit", "tx-unknown"} <= set(delivered.bodies()), 60,
                   "the committed and the checked-back message")
        time.sleep(2)
    finally:
        c.shutdown()
        tp.shutdown()
    assert "tx-rollback" not in delivered.bodies()
    assert "tx-unknown" in checked


@pytest.mark.skipif(TOPOLOGY != "group" or not CTL, reason="needs a 3-replica group (scripts/interop)")
def test_master_kill_loses_nothing_acknowledged(delivered):
    import subprocess

    topic = unique("Failover")
    create_topic(topic)
    p = start_producer(unique("FailoverP"))
    acked, failed = [], 0
    stop = threading.Event()

    def produce():
        nonlocal failed
        i = 0
        while not stop.is_set():
            body = "fo-%d" % i
            i += 1
            try:
                if p.send_sync(message(topic, body)).status == SendStatus.OK:
                    acked.append((body, time.time()))
            except Exception:
                failed += 1
            time.sleep(0.01)

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(2)
    subprocess.run(CTL.split() + ["kill-master"], check=True)
    killed_at = time.time()
    time.sleep(8)
    stop.set()
    t.join()
    p.shutdown()
    after = [body for body, at in acked if at > killed_at]
    assert after, "no send was acknowledged after the master was killed (%d failed)" % failed
    c = start_consumer(unique("FailoverG"), topic, delivered)
    try:
        wanted = {body for body, _ in acked}
        wait_until(lambda: set(delivered.bodies()) >= wanted, 60, "every acknowledged message")
    finally:
        c.shutdown()


def conftest_delivered():
    from conftest import Delivered

    return Delivered()
