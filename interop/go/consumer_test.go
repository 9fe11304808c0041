package interop

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

func TestOrderly(t *testing.T) {
	t.Parallel()
	topic := uniq("order")
	createTopic(t, topic, 4)
	p := newProducer(t, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	keys := []string{"order-a", "order-b", "order-c", "order-d", "order-e", "order-f"}
	const perKey = 10
	sendQueue := map[string]int{}
	var want []string
	for seq := 0; seq < perKey; seq++ {
		for _, k := range keys {
			body := fmt.Sprintf("%s|%d", k, seq)
			m := primitive.NewMessage(topic, []byte(body))
			m.WithShardingKey(k)
			m.WithKeys([]string{k})
			res, err := p.SendSync(context.Background(), m)
			if err != nil {
				t.Fatalf("SendSync %s: %v", body, err)
			}
			if q, ok := sendQueue[k]; ok && q != res.MessageQueue.QueueId {
				t.Fatalf("hash selector sent key %s to queue %d and %d", k, q, res.MessageQueue.QueueId)
			}
			sendQueue[k] = res.MessageQueue.QueueId
			want = append(want, body)
		}
	}
	col := newCollector()
	startPush(t, uniq("cg"), topic, allSelector(), col.handler("c1"), consumer.WithConsumerOrder(true))
	if missing := col.waitBodies("", want, consumeTimeout); len(missing) > 0 {
		t.Fatalf("orderly consumer: %s", describeMissing(missing, len(want)))
	}
	seqs := map[string][]int{}
	queues := map[string]map[int]bool{}
	for _, d := range col.snapshot() {
		parts := strings.SplitN(string(d.msg.Body), "|", 2)
		var seq int
		fmt.Sscanf(parts[1], "%d", &seq)
		k := parts[0]
		seqs[k] = append(seqs[k], seq)
		if queues[k] == nil {
			queues[k] = map[int]bool{}
		}
		queues[k][d.msg.Queue.QueueId] = true
	}
	for _, k := range keys {
		for i, s := range seqs[k] {
			if s != i {
				t.Errorf("key %s consumed in order %v, want 0..%d once each", k, seqs[k], perKey-1)
				break
			}
		}
		if len(queues[k]) != 1 || !queues[k][sendQueue[k]] {
			t.Errorf("key %s consumed from queues %v, sent to queue %d", k, queues[k], sendQueue[k])
		}
	}
}

func TestClustering(t *testing.T) {
	t.Parallel()
	topic := uniq("cluster")
	createTopic(t, topic, 4)
	group := uniq("cg")
	col := newCollector()
	startPush(t, group, topic, allSelector(), col.handler("c1"), consumer.WithInstance(uniq("inst1")))
	startPush(t, group, topic, allSelector(), col.handler("c2"), consumer.WithInstance(uniq("inst2")))
	time.Sleep(2 * time.Second) // let both instances rebalance
	p := newProducer(t)
	var want []string
	for i := 0; i < 40; i++ {
		body := fmt.Sprintf("%s-%d", topic, i)
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(body))); err != nil {
			t.Fatalf("SendSync: %v", err)
		}
		want = append(want, body)
	}
	if missing := col.waitBodies("", want, consumeTimeout); len(missing) > 0 {
		t.Fatalf("clustering: union of both instances: %s", describeMissing(missing, len(want)))
	}
	time.Sleep(500 * time.Millisecond)
	c1, c2 := col.bodies("c1"), col.bodies("c2")
	dups := 0
	for b := range c1 {
		if c2[b] > 0 {
			dups++
		}
	}
	t.Logf("instance 1 consumed %d, instance 2 consumed %d, %d by both", len(c1), len(c2), dups)
}

func TestBroadcasting(t *testing.T) {
	t.Parallel()
	topic := uniq("bcast")
	createTopic(t, topic, 4)
	p := newProducer(t)
	var want []string
	for i := 0; i < 20; i++ {
		body := fmt.Sprintf("%s-%d", topic, i)
		if _, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(body))); err != nil {
			t.Fatalf("SendSync: %v", err)
		}
		want = append(want, body)
	}
	group := uniq("bg")
	col := newCollector()
	for _, name := range []string{"b1", "b2"} {
		startPush(t, group, topic, allSelector(), col.handler(name),
			consumer.WithInstance(uniq("inst"+name)),
			consumer.WithConsumerModel(consumer.BroadCasting))
	}
	for _, name := range []string{"b1", "b2"} {
		if missing := col.waitBodies(name, want, consumeTimeout); len(missing) > 0 {
			t.Errorf("broadcasting instance %s: %s", name, describeMissing(missing, len(want)))
		}
	}
}

func TestPullConsumerExplicitOffsets(t *testing.T) {
	t.Parallel()
	topic := uniq("pull")
	createTopic(t, topic, 1)
	p := newProducer(t)
	var bodies []string
	var mq *primitive.MessageQueue
	for i := 0; i < 10; i++ {
		body := fmt.Sprintf("%s-%d", topic, i)
		res, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte(body)))
		if err != nil {
			t.Fatalf("SendSync: %v", err)
		}
		if res.QueueOffset != int64(i) {
			t.Fatalf("message %d stored at offset %d of a new one-queue topic", i, res.QueueOffset)
		}
		mq = res.MessageQueue
		bodies = append(bodies, body)
	}
	pc, err := rocketmq.NewPullConsumer(
		consumer.WithNsResolver(primitive.NewPassthroughResolver(nameServers())),
		consumer.WithGroupName(uniq("pullg")),
		consumer.WithInstance(uniq("pi")),
	)
	if err != nil {
		t.Fatalf("NewPullConsumer: %v", err)
	}
	if err := pc.Subscribe(topic, allSelector()); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := pc.Start(); err != nil {
		t.Fatalf("pull consumer Start: %v", err)
	}
	t.Cleanup(func() { _ = pc.Shutdown() })

	pull := func(offset int64, n int) *primitive.PullResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q := *mq
		res, err := pc.PullFrom(ctx, &q, offset, n)
		if err != nil {
			t.Fatalf("PullFrom(offset %d, %d): %v", offset, n, err)
		}
		return res
	}
	check := func(res *primitive.PullResult, from int64, n int) {
		t.Helper()
		if res.Status != primitive.PullFound {
			t.Fatalf("PullFrom(%d, %d): status %v, want PullFound", from, n, res.Status)
		}
		msgs := res.GetMessageExts()
		if len(msgs) != n {
			t.Fatalf("PullFrom(%d, %d): %d messages", from, n, len(msgs))
		}
		for i, m := range msgs {
			off := from + int64(i)
			if m.QueueOffset != off || string(m.Body) != bodies[off] {
				t.Errorf("PullFrom(%d): message %d is %q at offset %d, want %q at %d", from, i, m.Body, m.QueueOffset, bodies[off], off)
			}
		}
		if res.NextBeginOffset != from+int64(n) {
			t.Errorf("PullFrom(%d, %d): next begin offset %d, want %d", from, n, res.NextBeginOffset, from+int64(n))
		}
		if res.MinOffset != 0 || res.MaxOffset != 10 {
			t.Errorf("PullFrom(%d, %d): min/max offset %d/%d, want 0/10", from, n, res.MinOffset, res.MaxOffset)
		}
	}
	check(pull(3, 4), 3, 4)
	check(pull(0, 32), 0, 10)
	check(pull(9, 1), 9, 1)
	// Far beyond the end: a Java master answers PULL_OFFSET_MOVED at once (no long poll),
	// with the max offset as the next begin offset.
	res := pull(50, 4)
	if res.Status != primitive.PullOffsetIllegal || res.NextBeginOffset != 10 {
		t.Errorf("PullFrom(50, 4) past max offset 10: status %v next begin offset %d, want PullOffsetIllegal and 10",
			res.Status, res.NextBeginOffset)
	}
}

// TestRetryAndDLQ: ConsumeRetryLater sends the message back; it returns through
// %RETRY%group with ReconsumeTimes incremented, after the requested delay level (1 = 1 s),
// and after maxReconsumeTimes (2) it lands in %DLQ%group.
func TestRetryAndDLQ(t *testing.T) {
	t.Parallel()
	topic := uniq("retry")
	createTopic(t, topic, 1)
	group := uniq("rg")
	p := newProducer(t)
	body := topic + "-poison"
	m := primitive.NewMessage(topic, []byte(body))
	m.WithKeys([]string{"poison-key"})
	m.WithTag("TagR")
	m.WithProperty("origin", "go")
	sentAt := time.Now()
	sent, err := p.SendSync(context.Background(), m)
	if err != nil {
		t.Fatalf("SendSync: %v", err)
	}
	col := newCollector()
	startPush(t, group, topic, allSelector(), func(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		col.add("c1", msgs...)
		if cc, ok := primitive.GetConcurrentlyCtx(ctx); ok {
			cc.DelayLevelWhenNextConsume = 1
		}
		return consumer.ConsumeRetryLater, nil
	})
	if !col.waitFor(50*time.Second, func(ds []delivery) bool { return len(ds) >= 3 }) {
		var rts []int32
		for _, d := range col.snapshot() {
			rts = append(rts, d.msg.ReconsumeTimes)
		}
		t.Fatalf("want 3 deliveries (first + 2 retries) within 50s, got %d with reconsume times %v", len(rts), rts)
	}
	ds := col.snapshot()
	var times []string
	for _, d := range ds {
		times = append(times, fmt.Sprintf("rt=%d@%v", d.msg.ReconsumeTimes, d.at.Sub(sentAt).Round(10*time.Millisecond)))
	}
	t.Logf("deliveries after send: %v", times)
	for i, d := range ds[:3] {
		m := d.msg
		if string(m.Body) != body || m.GetKeys() != "poison-key" || m.GetTags() != "TagR" || m.GetProperty("origin") != "go" {
			t.Errorf("delivery %d: body %q keys %q tags %q origin %q", i, m.Body, m.GetKeys(), m.GetTags(), m.GetProperty("origin"))
		}
		if m.ReconsumeTimes != int32(i) {
			t.Errorf("delivery %d: ReconsumeTimes %d, want %d", i, m.ReconsumeTimes, i)
		}
		if m.Topic != topic {
			t.Errorf("delivery %d: topic %q, want %q (the client restores it from RETRY_TOPIC)", i, m.Topic, topic)
		}
		if m.MsgId != sent.MsgID {
			t.Errorf("delivery %d: MsgId %s, want the original %s", i, m.MsgId, sent.MsgID)
		}
		if i > 0 {
			if gap := d.at.Sub(ds[i-1].at); gap < 990*time.Millisecond {
				t.Errorf("retry %d came %v after the previous delivery, before delay level 1 (1s)", i, gap)
			}
		}
	}

	dlq := "%DLQ%" + group
	a := getAdmin(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if mqs, err := a.FetchPublishMessageQueues(context.Background(), dlq); err == nil && len(mqs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no route 15s after the last retry", dlq)
		}
		time.Sleep(300 * time.Millisecond)
	}
	dcol := newCollector()
	startPush(t, uniq("dlqg"), dlq, allSelector(), dcol.handler("dlq"))
	if missing := dcol.waitBodies("", []string{body}, consumeTimeout); len(missing) > 0 {
		t.Fatalf("message not found in %s", dlq)
	}
	dm := dcol.snapshot()[0].msg
	t.Logf("DLQ message: topic %s reconsumeTimes %d keys %q props %v", dm.Topic, dm.ReconsumeTimes, dm.GetKeys(), dm.GetProperties())
	if dm.GetKeys() != "poison-key" || dm.GetTags() != "TagR" || dm.GetProperty("origin") != "go" {
		t.Errorf("DLQ message: keys %q tags %q origin %q", dm.GetKeys(), dm.GetTags(), dm.GetProperty("origin"))
	}
	if dm.MsgId != sent.MsgID {
		t.Errorf("DLQ message MsgId %s, want the original %s", dm.MsgId, sent.MsgID)
	}
	if n := len(dcol.snapshot()); n != 1 {
		t.Errorf("DLQ holds %d copies", n)
	}
	if got := len(col.snapshot()); got != 3 {
		var rts []string
		for _, d := range col.snapshot() {
			rts = append(rts, fmt.Sprint(d.msg.ReconsumeTimes))
		}
		sort.Strings(rts)
		t.Errorf("original group got %d deliveries (reconsume times %v), want 3: the message went on past maxReconsumeTimes 2", got, rts)
	}
}
