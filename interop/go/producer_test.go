package interop

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

const consumeTimeout = 20 * time.Second

func allSelector() consumer.MessageSelector {
	return consumer.MessageSelector{Type: consumer.TAG, Expression: "*"}
}

// checkSent asserts a send result looks like a Java broker's answer.
func checkSent(tb testing.TB, what, topic string, res *primitive.SendResult) {
	tb.Helper()
	if res.Status != primitive.SendOK {
		tb.Errorf("%s: status %v, want SendOK", what, res.Status)
	}
	if res.MsgID == "" || res.OffsetMsgID == "" {
		tb.Errorf("%s: MsgID %q OffsetMsgID %q, want both set", what, res.MsgID, res.OffsetMsgID)
	}
	if res.MessageQueue == nil || res.MessageQueue.Topic != topic {
		tb.Errorf("%s: message queue %v, want topic %s", what, res.MessageQueue, topic)
	}
	if res.QueueOffset < 0 {
		tb.Errorf("%s: queue offset %d", what, res.QueueOffset)
	}
}

// checkDeliveredAsSent asserts each body in sent was consumed with the ids, queue and
// offset its send result named.
func checkDeliveredAsSent(tb testing.TB, col *collector, sent map[string]*primitive.SendResult) {
	tb.Helper()
	var want []string
	for b := range sent {
		want = append(want, b)
	}
	sort.Strings(want)
	if missing := col.waitBodies("", want, consumeTimeout); len(missing) > 0 {
		tb.Fatalf("not consumed within %v: %s", consumeTimeout, describeMissing(missing, len(want)))
	}
	for _, d := range col.snapshot() {
		res, ok := sent[string(d.msg.Body)]
		if !ok {
			tb.Errorf("consumed a message that was not sent: %q", d.msg.Body)
			continue
		}
		m := d.msg
		if m.MsgId != res.MsgID {
			tb.Errorf("%q: consumed MsgId %s, send result MsgID %s", m.Body, m.MsgId, res.MsgID)
		}
		if m.OffsetMsgId != res.OffsetMsgID {
			tb.Errorf("%q: consumed OffsetMsgId %s, send result OffsetMsgID %s", m.Body, m.OffsetMsgId, res.OffsetMsgID)
		}
		if m.Queue == nil || m.Queue.QueueId != res.MessageQueue.QueueId || m.QueueOffset != res.QueueOffset {
			tb.Errorf("%q: consumed from queue %v offset %d, sent to queue %d offset %d",
				m.Body, m.Queue, m.QueueOffset, res.MessageQueue.QueueId, res.QueueOffset)
		}
	}
}

func TestSendSync(t *testing.T) {
	topic := uniq("sync")
	createTopic(t, topic, 4)
	p := newProducer(t)
	sent := map[string]*primitive.SendResult{}
	for i := 0; i < 12; i++ {
		body := fmt.Sprintf("%s-%d", topic, i)
		res, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(body)))
		if err != nil {
			t.Fatalf("SendSync %d: %v", i, err)
		}
		checkSent(t, body, topic, res)
		sent[body] = res
	}
	col := newCollector()
	startPush(t, uniq("cg"), topic, allSelector(), col.handler("c1"))
	checkDeliveredAsSent(t, col, sent)
}

func TestSendAsync(t *testing.T) {
	topic := uniq("async")
	createTopic(t, topic, 4)
	p := newProducer(t)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sent := map[string]*primitive.SendResult{}
	var errs []string
	const n = 12
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("%s-%d", topic, i)
		wg.Add(1)
		err := p.SendAsync(context.Background(), func(ctx context.Context, res *primitive.SendResult, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", body, err))
				return
			}
			sent[body] = res
		}, primitive.NewMessage(topic, []byte(body)))
		if err != nil {
			wg.Done()
			t.Fatalf("SendAsync %d: %v", i, err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("async callbacks: only %d of %d called back within 15s", len(sent)+len(errs), n)
	}
	if len(errs) > 0 {
		t.Fatalf("async send failures: %s", strings.Join(errs, "; "))
	}
	for b, res := range sent {
		checkSent(t, b, topic, res)
	}
	col := newCollector()
	startPush(t, uniq("cg"), topic, allSelector(), col.handler("c1"))
	checkDeliveredAsSent(t, col, sent)
}

func TestSendOneWay(t *testing.T) {
	topic := uniq("oneway")
	createTopic(t, topic, 4)
	p := newProducer(t)
	var want []string
	for i := 0; i < 12; i++ {
		body := fmt.Sprintf("%s-%d", topic, i)
		if err := p.SendOneWay(context.Background(), primitive.NewMessage(topic, []byte(body))); err != nil {
			t.Fatalf("SendOneWay %d: %v", i, err)
		}
		want = append(want, body)
	}
	col := newCollector()
	startPush(t, uniq("cg"), topic, allSelector(), col.handler("c1"))
	if missing := col.waitBodies("", want, consumeTimeout); len(missing) > 0 {
		t.Fatalf("one-way messages not consumed: %s", describeMissing(missing, len(want)))
	}
}

func TestSendBatch(t *testing.T) {
	topic := uniq("batch")
	createTopic(t, topic, 4)
	p := newProducer(t)
	var msgs []*primitive.Message
	var want []string
	for i := 0; i < 5; i++ {
		body := fmt.Sprintf("%s-%d", topic, i)
		m := primitive.NewMessage(topic, []byte(body))
		m.WithTag("TagB")
		m.WithKeys([]string{fmt.Sprintf("bk-%d", i)})
		msgs = append(msgs, m)
		want = append(want, body)
	}
	res, err := p.SendSync(context.Background(), msgs...)
	if err != nil {
		t.Fatalf("batch SendSync: %v", err)
	}
	if res.Status != primitive.SendOK {
		t.Fatalf("batch status %v, want SendOK", res.Status)
	}
	if res.OffsetMsgID == "" {
		t.Errorf("batch send result has no OffsetMsgID")
	}
	col := newCollector()
	startPush(t, uniq("cg"), topic, allSelector(), col.handler("c1"))
	if missing := col.waitBodies("", want, consumeTimeout); len(missing) > 0 {
		t.Fatalf("batch messages not consumed: %s", describeMissing(missing, len(want)))
	}
	// One queue, consecutive offsets from the result's, in batch order; each message keeps
	// its own tag and keys; the broker's msgId list names each one (Java joins them with ',').
	byBody := map[string]*primitive.MessageExt{}
	for _, d := range col.snapshot() {
		byBody[string(d.msg.Body)] = d.msg
	}
	var offsetIDs []string
	for i, b := range want {
		m := byBody[b]
		if m.Queue.QueueId != res.MessageQueue.QueueId || m.QueueOffset != res.QueueOffset+int64(i) {
			t.Errorf("batch message %d: queue %d offset %d, want queue %d offset %d",
				i, m.Queue.QueueId, m.QueueOffset, res.MessageQueue.QueueId, res.QueueOffset+int64(i))
		}
		if m.GetTags() != "TagB" || m.GetKeys() != fmt.Sprintf("bk-%d", i) {
			t.Errorf("batch message %d: tags %q keys %q", i, m.GetTags(), m.GetKeys())
		}
		if m.MsgId == "" {
			t.Errorf("batch message %d has no MsgId", i)
		}
		offsetIDs = append(offsetIDs, m.OffsetMsgId)
	}
	if got := strings.Join(offsetIDs, ","); got != res.OffsetMsgID {
		t.Errorf("batch send result OffsetMsgID %q, consumed offset ids %q", res.OffsetMsgID, got)
	}
}

func TestTagFilter(t *testing.T) {
	topic := uniq("tags")
	createTopic(t, topic, 4)
	p := newProducer(t)
	var want []string
	for i := 0; i < 6; i++ {
		for _, tag := range []string{"TagA", "TagB", "TagC"} {
			body := fmt.Sprintf("%s-%s-%d", topic, tag, i)
			m := primitive.NewMessage(topic, []byte(body))
			m.WithTag(tag)
			if _, err := p.SendSync(context.Background(), m); err != nil {
				t.Fatalf("SendSync: %v", err)
			}
			if tag != "TagC" {
				want = append(want, body)
			}
		}
	}
	// A TagA tail after the TagC messages on every queue (the producer round-robins over
	// the 4 queues): once the tails are consumed, unfiltered TagC ones would have been too.
	for i := 0; i < 4; i++ {
		body := fmt.Sprintf("%s-TagA-tail-%d", topic, i)
		m := primitive.NewMessage(topic, []byte(body))
		m.WithTag("TagA")
		if _, err := p.SendSync(context.Background(), m); err != nil {
			t.Fatalf("SendSync: %v", err)
		}
		want = append(want, body)
	}
	col := newCollector()
	startPush(t, uniq("cg"), topic, consumer.MessageSelector{Type: consumer.TAG, Expression: "TagA || TagB"}, col.handler("c1"))
	if missing := col.waitBodies("", want, consumeTimeout); len(missing) > 0 {
		t.Fatalf("TagA/TagB messages not consumed: %s", describeMissing(missing, len(want)))
	}
	time.Sleep(time.Second)
	for _, d := range col.snapshot() {
		if tag := d.msg.GetTags(); tag != "TagA" && tag != "TagB" {
			t.Errorf("selector 'TagA || TagB' delivered %q with tag %q", d.msg.Body, tag)
		}
		if !strings.Contains(string(d.msg.Body), d.msg.GetTags()) {
			t.Errorf("message %q carries tag %q", d.msg.Body, d.msg.GetTags())
		}
	}
}

func TestKeysAndProperties(t *testing.T) {
	topic := uniq("props")
	createTopic(t, topic, 4)
	p := newProducer(t)
	sent := map[string]*primitive.SendResult{}
	for i := 0; i < 4; i++ {
		body := fmt.Sprintf("%s-%d", topic, i)
		m := primitive.NewMessage(topic, []byte(body))
		m.WithTag("TagP")
		m.WithKeys([]string{fmt.Sprintf("key-%d-a", i), fmt.Sprintf("key-%d-b", i)})
		m.WithProperty("color", "blue")
		m.WithProperty("index", fmt.Sprint(i))
		m.WithProperty("unicode", "ünï-çødé")
		res, err := p.SendSync(context.Background(), m)
		if err != nil {
			t.Fatalf("SendSync: %v", err)
		}
		checkSent(t, body, topic, res)
		sent[body] = res
	}
	col := newCollector()
	startPush(t, uniq("cg"), topic, allSelector(), col.handler("c1"))
	checkDeliveredAsSent(t, col, sent)
	for _, d := range col.snapshot() {
		m := d.msg
		var i int
		fmt.Sscanf(m.GetProperty("index"), "%d", &i)
		wantKeys := fmt.Sprintf("key-%d-a key-%d-b", i, i)
		if m.GetKeys() != wantKeys {
			t.Errorf("%q: keys %q, want %q", m.Body, m.GetKeys(), wantKeys)
		}
		if string(m.Body) != fmt.Sprintf("%s-%d", topic, i) {
			t.Errorf("%q: index property %q does not match", m.Body, m.GetProperty("index"))
		}
		if m.GetTags() != "TagP" || m.GetProperty("color") != "blue" || m.GetProperty("unicode") != "ünï-çødé" {
			t.Errorf("%q: tags %q color %q unicode %q", m.Body, m.GetTags(), m.GetProperty("color"), m.GetProperty("unicode"))
		}
		if m.Topic != topic {
			t.Errorf("%q: topic %q", m.Body, m.Topic)
		}
		if m.BornTimestamp <= 0 || m.StoreTimestamp < m.BornTimestamp-1000 {
			t.Errorf("%q: born %d store %d", m.Body, m.BornTimestamp, m.StoreTimestamp)
		}
		if m.StoreHost == "" || m.BornHost == "" {
			t.Errorf("%q: store host %q born host %q", m.Body, m.StoreHost, m.BornHost)
		}
		if m.ReconsumeTimes != 0 {
			t.Errorf("%q: reconsume times %d on first delivery", m.Body, m.ReconsumeTimes)
		}
	}
}
