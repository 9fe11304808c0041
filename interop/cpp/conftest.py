"""Shared helpers for the C++ client suite: names, topics, and waiting for deliveries."""

import os
import random
import subprocess
import threading
import time

import pytest

NAMESRV = os.environ.get("NAMESRV_ADDR")
TOPOLOGY = os.environ.get("INTEROP_TOPOLOGY", "single")
CTL = os.environ.get("INTEROP_CTL")
CLI = os.environ.get("RAFTMQ_CLI", "raftmq")

if not NAMESRV:
    raise SystemExit("NAMESRV_ADDR is not set: run this suite through scripts/interop")

RUN_ID = "%d%04d" % (int(time.time()), random.randrange(10000))


def unique(name):
    """A name no earlier run used, so reruns against one broker never collide."""
    return "Cpp%s_%s" % (name, RUN_ID)


def create_topic(topic, queues=4):
    """Creates `topic` through raftmq's CLI: the C++ client has no admin API."""
    subprocess.run(
        [CLI, "topic", "create", "-t", topic, "-q", str(queues), "-n", NAMESRV],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def wait_until(predicate, timeout_s, what):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout_s, what))


class Delivered:
    """Messages a consumer callback saw, as plain values (the C++ message handle is only
    valid inside the callback)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def record(self, msg, **extra):
        item = {
            "topic": msg.topic,
            "tags": msg.tags.decode(),
            "keys": msg.keys.decode(),
            "body": msg.body.decode(),
            "id": msg.id,
            "queue_id": msg.queue_id,
            "queue_offset": msg.queue_offset,
            "reconsume_times": msg.reconsume_times,
            "at": time.time(),
        }
        item.update(extra)
        with self.lock:
            self.items.append(item)
        return item

    def bodies(self):
        with self.lock:
            return [i["body"] for i in self.items]

    def snapshot(self):
        with self.lock:
            return list(self.items)


@pytest.fixture
def delivered():
    return Delivered()
