package interop

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// TestNameServerDomain: the client's HttpResolver (its name server domain) finds the
// name servers at the address server raftmq serves (NSADDR_URL, which scripts/interop
// sets), and a producer sends through them. NAMESRV_ADDR is cleared first, so the
// resolver's fallback to the environment cannot answer in its place.
func TestNameServerDomain(t *testing.T) {
	url := os.Getenv("NSADDR_URL")
	if url == "" {
		t.Skip("NSADDR_URL is not set (scripts/interop serves an address server and sets it)")
	}
	t.Setenv("NAMESRV_ADDR", "")
	resolver := primitive.NewHttpResolver(uniq("nsaddr"), url)
	got := strings.Join(resolver.Resolve(), ";")
	want := strings.Join(nameServers(), ";")
	if got != want {
		t.Fatalf("the address server at %s answered %q, want %q", url, got, want)
	}
	topic := uniq("nsaddr")
	createTopic(t, topic, 4)
	p := newProducer(t, producer.WithNsResolver(resolver))
	res, err := p.SendSync(context.Background(), primitive.NewMessage(topic, []byte("found by domain")))
	if err != nil {
		t.Fatalf("SendSync through the discovered name servers: %v", err)
	}
	checkSent(t, "found by domain", topic, res)
}
