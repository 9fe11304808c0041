package interop

// RocketMQ's message kinds: delay levels on send, and transactions (commit, rollback,
// and an unknown state resolved by the broker's check-back).

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestProducerDelayLevel: a message sent with DELAY=2 is delivered no earlier than 5 s
// after it was sent (messageDelayLevel "1s 5s 10s ...").
func TestProducerDelayLevel(t *testing.T) {
	t.Parallel()
	func(tb testing.TB) {
		topic := uniq("delay")
		createTopic(tb, topic, 1)
		p := newProducer(tb)
		col := newCollector()
		startPush(tb, uniq("cg"), topic, allSelector(), col.handler("c1"))
		// a plain message first, so the consumer is known to be pulling
		probe := topic + "-probe"
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(probe))); err != nil {
			tb.Fatalf("SendSync probe: %v", err)
		}
		if missing := col.waitBodies("", []string{probe}, consumeTimeout); len(missing) > 0 {
			tb.Fatalf("probe message not consumed")
		}
		const level, delay = 2, 5 * time.Second
		body := topic + "-delayed"
		m := primitive.NewMessage(topic, []byte(body))
		m.WithDelayTimeLevel(level)
		m.WithKeys([]string{"delayed-key"})
		sentAt := time.Now()
		res, err := p.SendSync(context.Background(), m)
		if err != nil {
			tb.Fatalf("SendSync with delay level %d: %v", level, err)
		}
		if res.Status != primitive.SendOK {
			tb.Fatalf("SendSync with delay level %d: status %v", level, res.Status)
		}
		if missing := col.waitBodies("", []string{body}, delay+15*time.Second); len(missing) > 0 {
			tb.Fatalf("delayed message not consumed within %v", delay+15*time.Second)
		}
		for _, d := range col.snapshot() {
			if string(d.msg.Body) != body {
				continue
			}
			if after := d.at.Sub(sentAt); after < delay {
				tb.Errorf("delay level %d message consumed %v after send, before its %v delay", level, after.Round(time.Millisecond), delay)
			}
			if d.msg.Topic != topic || d.msg.GetKeys() != "delayed-key" || d.msg.MsgId != res.MsgID {
				tb.Errorf("delayed message: topic %q keys %q msgId %s (sent %s)", d.msg.Topic, d.msg.GetKeys(), d.msg.MsgId, res.MsgID)
			}
		}
	}(t)
}

type txListener struct {
	mu      sync.Mutex
	checked map[string]int // body -> check-back count
}

func (l *txListener) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	switch m.GetProperty("tx") {
	case "commit":
		return primitive.CommitMessageState
	case "rollback":
		return primitive.RollbackMessageState
	default:
		return primitive.UnknowState
	}
}

func (l *txListener) CheckLocalTransaction(m *primitive.MessageExt) primitive.LocalTransactionState {
	l.mu.Lock()
	l.checked[string(m.Body)]++
	l.mu.Unlock()
	switch m.GetProperty("tx") {
	case "rollback":
		return primitive.RollbackMessageState
	default: // "unknown" is resolved as commit by the check-back; "commit" stays committed
		return primitive.CommitMessageState
	}
}

func (l *txListener) checks(body string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checked[body]
}

// TestTransactionalProducer: a committed half message is delivered, a rolled-back one
// never, and an unknown one once the broker's check-back resolves it as commit.
func TestTransactionalProducer(t *testing.T) {
	t.Parallel()
	func(tb testing.TB) {
		topic := uniq("tx")
		createTopic(tb, topic, 2)
		l := &txListener{checked: map[string]int{}}
		tp, err := rocketmq.NewTransactionProducer(l,
			producer.WithNsResolver(primitive.NewPassthroughResolver(nameServers())),
			producer.WithGroupName(uniq("txpg")),
			producer.WithInstanceName(uniq("txi")),
			producer.WithRetry(1),
		)
		if err != nil {
			tb.Fatalf("NewTransactionProducer: %v", err)
		}
		if err := tp.Start(); err != nil {
			tb.Fatalf("transaction producer Start: %v", err)
		}
		tb.Cleanup(func() { _ = tp.Shutdown() })

		col := newCollector()
		startPush(tb, uniq("cg"), topic, allSelector(), col.handler("c1"))

		bodies := map[string]string{}
		for _, kind := range []string{"commit", "rollback", "unknown"} {
			body := fmt.Sprintf("%s-%s", topic, kind)
			bodies[kind] = body
			m := primitive.NewMessage(topic, []byte(body))
			m.WithProperty("tx", kind)
			res, err := tp.SendMessageInTransaction(context.Background(), m)
			if err != nil {
				tb.Fatalf("SendMessageInTransaction(%s): %v", kind, err)
			}
			if res.Status != primitive.SendOK {
				tb.Fatalf("SendMessageInTransaction(%s): status %v", kind, res.Status)
			}
		}

		// The rollback must never show up; commit at once; unknown after a check-back
		// (a Java broker checks after transactionTimeOut 6 s, then every transactionCheckInterval).
		rolledBack := func(ds []delivery) bool {
			for _, d := range ds {
				if string(d.msg.Body) == bodies["rollback"] {
					return true
				}
			}
			return false
		}
		has := func(ds []delivery, body string) bool {
			for _, d := range ds {
				if string(d.msg.Body) == body {
					return true
				}
			}
			return false
		}
		col.waitFor(consumeTimeout, func(ds []delivery) bool { return rolledBack(ds) || has(ds, bodies["commit"]) })
		if rolledBack(col.snapshot()) {
			tb.Fatalf("rolled-back transactional message was delivered")
		}
		if !has(col.snapshot(), bodies["commit"]) {
			tb.Fatalf("committed transactional message not consumed within %v", consumeTimeout)
		}
		col.waitFor(70*time.Second, func(ds []delivery) bool { return rolledBack(ds) || has(ds, bodies["unknown"]) })
		if rolledBack(col.snapshot()) {
			tb.Fatalf("rolled-back transactional message was delivered")
		}
		if !has(col.snapshot(), bodies["unknown"]) {
			tb.Errorf("unknown transactional message not delivered within 70s (check-back calls: %d)", l.checks(bodies["unknown"]))
		} else if l.checks(bodies["unknown"]) == 0 {
			tb.Errorf("unknown transactional message delivered without a check-back")
		}
		time.Sleep(2 * time.Second)
		if rolledBack(col.snapshot()) {
			tb.Errorf("rolled-back transactional message was delivered")
		}
	}(t)
}
