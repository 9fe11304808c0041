package interop

// The client's log, kept quiet: only errors (or INTEROP_GO_LOG_LEVEL) are printed, but
// every warning or error that carries a broker's answer (responseCode / remark) or an
// underlying error is remembered, so a test that times out can say what the client was
// told (a refused heartbeat, for one, shows up only there).

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"
)

type recordingLogger struct {
	mu     sync.Mutex
	level  int
	seen   map[string]int
	order  []string
	output *os.File
}

var clientLog = &recordingLogger{level: 3, seen: map[string]int{}, output: os.Stderr}

var logLevels = map[string]int{"debug": 0, "info": 1, "warn": 2, "warning": 2, "error": 3, "fatal": 4}

func (l *recordingLogger) log(level int, name, msg string, fields map[string]interface{}) {
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var kv []string
	for _, k := range keys {
		kv = append(kv, fmt.Sprintf("%s=%v", k, fields[k]))
	}
	line := msg
	if len(kv) > 0 {
		line += " [" + strings.Join(kv, " ") + "]"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if level >= l.level {
		fmt.Fprintf(l.output, "%s rocketmq-client %s: %s\n", time.Now().Format("15:04:05.000"), name, line)
	}
	if level >= 2 {
		_, code := fields["responseCode"]
		_, remark := fields["remark"]
		_, under := fields[rlog.LogKeyUnderlayError]
		if code || remark || under {
			// dedupe on the message and the broker's answer, not on addresses or ids
			key := fmt.Sprintf("%s (responseCode=%v remark=%v underlayError=%v)", msg, fields["responseCode"], fields["remark"], fields[rlog.LogKeyUnderlayError])
			if l.seen[key] == 0 {
				l.order = append(l.order, key)
			}
			l.seen[key]++
		}
	}
}

func (l *recordingLogger) Debug(msg string, f map[string]interface{})   { l.log(0, "debug", msg, f) }
func (l *recordingLogger) Info(msg string, f map[string]interface{})    { l.log(1, "info", msg, f) }
func (l *recordingLogger) Warning(msg string, f map[string]interface{}) { l.log(2, "warning", msg, f) }
func (l *recordingLogger) Error(msg string, f map[string]interface{})   { l.log(3, "error", msg, f) }
func (l *recordingLogger) Fatal(msg string, f map[string]interface{})   { l.log(4, "fatal", msg, f) }
func (l *recordingLogger) Level(level string) {
	if n, ok := logLevels[strings.ToLower(level)]; ok {
		l.mu.Lock()
		l.level = n
		l.mu.Unlock()
	}
}
func (l *recordingLogger) OutputPath(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.output = f
	l.mu.Unlock()
	return nil
}

// reports returns what the client was told, most frequent first ("" if nothing).
func (l *recordingLogger) reports() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.order) == 0 {
		return ""
	}
	keys := append([]string(nil), l.order...)
	sort.SliceStable(keys, func(i, j int) bool { return l.seen[keys[i]] > l.seen[keys[j]] })
	if len(keys) > 6 {
		keys = keys[:6]
	}
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%dx %s", l.seen[k], k))
	}
	return "; the client logged: " + strings.Join(out, "; ")
}

func installClientLog(level string) {
	rlog.SetLogger(clientLog)
	clientLog.Level(level)
}
