package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestFailoverKillMaster (group topology only): produce continuously while the master
// replica of broker-a is SIGKILLed and restarted; every acknowledged message must then be
// consumed at least once.
func TestFailoverKillMaster(t *testing.T) {
	ctl := strings.TrimSpace(os.Getenv("INTEROP_CTL"))
	if topology != "group" || ctl == "" {
		t.Skipf("needs INTEROP_TOPOLOGY=group and INTEROP_CTL (topology %q, INTEROP_CTL set: %v)", topology, ctl != "")
	}
	topic := uniq("failover")
	createTopic(t, topic, 4)
	p := newProducer(t)

	var mu sync.Mutex
	var acked []string
	var ackedAfterKill int
	var failures []string
	killed := false
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf("%s-%d", topic, i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
			cancel()
			mu.Lock()
			switch {
			case err != nil:
				failures = append(failures, err.Error())
			case res.Status == primitive.SendOK:
				acked = append(acked, body)
				if killed {
					ackedAfterKill++
				}
			default:
				failures = append(failures, fmt.Sprintf("status %v", res.Status))
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked), ackedAfterKill
	}
	waitUntil := func(timeout time.Duration, cond func() bool) bool {
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(100 * time.Millisecond)
		}
		return true
	}
	stopProducing := func() {
		close(stop)
		<-done
	}

	if !waitUntil(20*time.Second, func() bool { n, _ := count(); return n >= 50 }) {
		stopProducing()
		t.Fatalf("before the kill: only %d sends acknowledged in 20s", len(acked))
	}
	time.Sleep(time.Second)
	start := time.Now()
	out, err := exec.Command("sh", "-c", ctl+" kill-master").CombinedOutput()
	mu.Lock()
	killed = true
	mu.Unlock()
	if err != nil {
		stopProducing()
		t.Fatalf("%s kill-master: %v\n%s", ctl, err, out)
	}
	t.Logf("kill-master took %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
	recovered := waitUntil(60*time.Second, func() bool { _, n := count(); return n >= 50 })
	stopProducing()
	mu.Lock()
	t.Logf("acknowledged %d sends (%d after the kill), %d failed", len(acked), ackedAfterKill, len(failures))
	if len(failures) > 0 {
		t.Logf("first send failure: %s", failures[0])
	}
	want := append([]string(nil), acked...)
	mu.Unlock()
	if !recovered {
		t.Errorf("producer did not get 50 acknowledgements within 60s after kill-master returned")
	}

	col := newCollector()
	startPush(t, uniq("cg"), topic, allSelector(), col.handler("c1"))
	if missing := col.waitBodies("", want, 60*time.Second); len(missing) > 0 {
		t.Fatalf("acknowledged messages lost across the master kill: %s", describeMissing(missing, len(want)))
	}
}
