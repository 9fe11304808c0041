// Package interop holds the Go client compatibility suite for raftmq: its tests drive a
// running raftmq (NAMESRV_ADDR) with github.com/apache/rocketmq-client-go/v2. See ./run.
package interop
