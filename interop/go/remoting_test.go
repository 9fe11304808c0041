package interop

// A minimal RocketMQ remoting call, used only to ask the name server for the cluster's
// broker addresses (GET_BROKER_CLUSTER_INFO, code 106): the Go client's admin.CreateTopic
// needs a broker address and the client exposes no public way to list brokers.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"sort"
	"strings"
	"time"
)

const reqGetBrokerClusterInfo = 106

type remotingHeader struct {
	Code      int               `json:"code"`
	Language  string            `json:"language"`
	Version   int               `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int               `json:"flag"`
	Remark    string            `json:"remark,omitempty"`
	ExtFields map[string]string `json:"extFields"`
}

// rawInvoke sends one request and returns the response header and body.
func rawInvoke(addr string, code int, ext map[string]string) (*remotingHeader, []byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if ext == nil {
		ext = map[string]string{}
	}
	hdr, _ := json.Marshal(remotingHeader{Code: code, Language: "GO", Version: 317, Opaque: 1, ExtFields: ext})
	frame := make([]byte, 8+len(hdr))
	binary.BigEndian.PutUint32(frame[0:4], uint32(4+len(hdr)))
	binary.BigEndian.PutUint32(frame[4:8], uint32(len(hdr))) // serialize type 0 = JSON
	copy(frame[8:], hdr)
	if _, err := conn.Write(frame); err != nil {
		return nil, nil, err
	}
	var lenBuf [4]byte
	if _, err := io.ReadFull(conn, lenBuf[:]); err != nil {
		return nil, nil, err
	}
	total := binary.BigEndian.Uint32(lenBuf[:])
	buf := make([]byte, total)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, nil, err
	}
	hl := binary.BigEndian.Uint32(buf[0:4]) & 0xFFFFFF
	if buf[0] != 0 {
		return nil, nil, fmt.Errorf("response header is not JSON (serialize type %d)", buf[0])
	}
	var resp remotingHeader
	if err := json.Unmarshal(buf[4:4+hl], &resp); err != nil {
		return nil, nil, fmt.Errorf("decode response header: %w", err)
	}
	return &resp, buf[4+hl:], nil
}

// fastjson (RocketMQ's Java serializer) writes integer map keys unquoted: {0:"addr"}.
var bareIntKey = regexp.MustCompile(`([{,])\s*(-?\d+)\s*:`)

type clusterInfo struct {
	BrokerAddrTable map[string]struct {
		Cluster     string            `json:"cluster"`
		BrokerName  string            `json:"brokerName"`
		BrokerAddrs map[string]string `json:"brokerAddrs"`
	} `json:"brokerAddrTable"`
}

// masterAddrs returns the address of the master (broker id 0) of every broker group the
// name server knows, keyed by broker name.
func masterAddrs(namesrv string) (map[string]string, error) {
	var lastErr error
	for _, ns := range strings.Split(namesrv, ";") {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		resp, body, err := rawInvoke(ns, reqGetBrokerClusterInfo, nil)
		if err != nil {
			lastErr = err
			continue
		}
		if resp.Code != 0 {
			lastErr = fmt.Errorf("GET_BROKER_CLUSTER_INFO from %s: code %d remark %q", ns, resp.Code, resp.Remark)
			continue
		}
		var ci clusterInfo
		if err := json.Unmarshal(body, &ci); err != nil {
			fixed := bareIntKey.ReplaceAll(body, []byte(`$1"$2":`))
			if err2 := json.Unmarshal(fixed, &ci); err2 != nil {
				lastErr = fmt.Errorf("decode cluster info %q: %w", body, err)
				continue
			}
		}
		out := map[string]string{}
		for name, bd := range ci.BrokerAddrTable {
			if a, ok := bd.BrokerAddrs["0"]; ok {
				out[name] = a
			}
		}
		if len(out) == 0 {
			lastErr = fmt.Errorf("name server %s lists no master broker: %s", ns, body)
			continue
		}
		return out, nil
	}
	return nil, lastErr
}

func sortedValues(m map[string]string) []string {
	var v []string
	for _, x := range m {
		v = append(v, x)
	}
	sort.Strings(v)
	return v
}
