"""librocketmq's C API calls the Python binding does not wrap: batch send, async send and
the pull consumer. They are the C++ client's own entry points, reached with ctypes."""

import ctypes
import threading
from ctypes import POINTER, Structure, c_char, c_char_p, c_int, c_longlong, c_void_p

from rocketmq.client import RecvMessage
from rocketmq.ffi import _CMessageQueue, _CMQException, _CSendResult, dll

dll.SendBatchMessage.argtypes = [c_void_p, c_void_p, POINTER(_CSendResult)]

SEND_SUCCESS = ctypes.CFUNCTYPE(None, _CSendResult)
SEND_EXCEPTION = ctypes.CFUNCTYPE(None, _CMQException)
dll.SendMessageAsync.argtypes = [c_void_p, c_void_p, SEND_SUCCESS, SEND_EXCEPTION]
dll.SendMessageAsync.restype = c_int


class _CPullResult(Structure):
    _fields_ = [
        ("pullStatus", c_int),
        ("nextBeginOffset", c_longlong),
        ("minOffset", c_longlong),
        ("maxOffset", c_longlong),
        ("msgFoundList", POINTER(c_void_p)),
        ("size", c_int),
        ("pData", c_void_p),
    ]


PULL_FOUND, PULL_NO_NEW_MSG, PULL_NO_MATCHED_MSG, PULL_OFFSET_ILLEGAL, PULL_BROKER_TIMEOUT = range(5)

dll.CreatePullConsumer.argtypes = [c_char_p]
dll.CreatePullConsumer.restype = c_void_p
dll.SetPullConsumerNameServerAddress.argtypes = [c_void_p, c_char_p]
dll.StartPullConsumer.argtypes = [c_void_p]
dll.ShutdownPullConsumer.argtypes = [c_void_p]
dll.DestroyPullConsumer.argtypes = [c_void_p]
dll.FetchSubscriptionMessageQueues.argtypes = [
    c_void_p,
    c_char_p,
    POINTER(POINTER(_CMessageQueue)),
    POINTER(c_int),
]
dll.ReleaseSubscriptionMessageQueue.argtypes = [POINTER(_CMessageQueue)]
dll.Pull.argtypes = [c_void_p, POINTER(_CMessageQueue), c_char_p, c_longlong, c_int]
dll.Pull.restype = _CPullResult
dll.ReleasePullResult.argtypes = [_CPullResult]


def send_batch(producer, messages):
    """SendBatchMessage: the messages (rocketmq.client.Message) as one batch."""
    batch = dll.CreateBatchMessage()
    try:
        for m in messages:
            assert dll.AddMessage(batch, m._handle) == 0
        result = _CSendResult()
        status = dll.SendBatchMessage(producer._handle, batch, ctypes.pointer(result))
        if status != 0:
            raise RuntimeError("SendBatchMessage: %s" % dll.GetLatestErrorMessage())
        return result.sendStatus, result.msgId.decode(), result.offset
    finally:
        dll.DestroyBatchMessage(batch)


class AsyncSends:
    """Outcomes of SendMessageAsync calls, reported from the client's threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ok = []
        self.errors = []
        # The callbacks must outlive the sends.
        self._on_ok = SEND_SUCCESS(self._success)
        self._on_error = SEND_EXCEPTION(self._exception)

    def _success(self, result):
        with self.lock:
            self.ok.append((result.sendStatus, result.msgId.decode(), result.offset))

    def _exception(self, e):
        with self.lock:
            self.errors.append((e.error, e.msg.decode(errors="replace")))

    def send(self, producer, message):
        status = dll.SendMessageAsync(producer._handle, message._handle, self._on_ok, self._on_error)
        if status != 0:
            raise RuntimeError("SendMessageAsync returned %d" % status)

    def done(self):
        with self.lock:
            return len(self.ok) + len(self.errors)


class PullConsumer:
    """The C++ client's pull consumer: queues of a topic, pulled at explicit offsets."""

    def __init__(self, group, namesrv):
        self.handle = dll.CreatePullConsumer(group.encode())
        assert self.handle, "CreatePullConsumer returned null"
        dll.SetPullConsumerNameServerAddress(self.handle, namesrv.encode())
        assert dll.StartPullConsumer(self.handle) == 0

    def queues(self, topic):
        mqs = POINTER(_CMessageQueue)()
        size = c_int(0)
        status = dll.FetchSubscriptionMessageQueues(
            self.handle, topic.encode(), ctypes.byref(mqs), ctypes.byref(size)
        )
        if status != 0:
            raise RuntimeError("FetchSubscriptionMessageQueues: %s" % dll.GetLatestErrorMessage())
        queues = []
        for i in range(size.value):
            q = _CMessageQueue()
            ctypes.memmove(ctypes.byref(q), ctypes.byref(mqs[i]), ctypes.sizeof(q))
            queues.append(q)
        dll.ReleaseSubscriptionMessageQueue(mqs)
        return queues

    def pull(self, queue, offset, max_nums=32, expression="*"):
        """(status, next offset, min offset, max offset, [(queue offset, body, tags)])."""
        result = dll.Pull(self.handle, ctypes.byref(queue), expression.encode(), offset, max_nums)
        try:
            found = []
            for i in range(result.size):
                m = RecvMessage(result.msgFoundList[i])
                found.append((m.queue_offset, m.body.decode(), m.tags.decode()))
            return result.pullStatus, result.nextBeginOffset, result.minOffset, result.maxOffset, found
        finally:
            dll.ReleasePullResult(result)

    def close(self):
        dll.ShutdownPullConsumer(self.handle)
        dll.DestroyPullConsumer(self.handle)
