//! The event trace of one seed (`sim replay --trace out.jsonl`): every tracing event of
//! the cluster's code at the levels below, one JSON object a line, stamped with
//! simulated time and the simulated host it happened on (madsim runs each host's tasks
//! in a `node` span named after the host).
//!
//! ```text
//! {"t_ms":1532,"node":"broker-a-r2","level":"INFO","target":"raftmq::broker::replica","msg":"role changed","term":"3",...}
//! ```
//!
//! What it holds: Raft role and term changes, elections and votes, appends, fsyncs and
//! acknowledgements (`raft`, `store`, `raftmq` at debug), remoting requests and responses
//! between hosts (`proto` at debug), the nemesis's faults and the clients' sends and
//! deliveries (`sim::*`). Everything in it derives from the seed, so the same seed
//! writes the same bytes (`tests/trace.rs` checks it). `sim inspect` reads it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

/// What the trace records unless `SIM_TRACE` says otherwise (an `EnvFilter` spec).
pub const DEFAULT_FILTER: &str =
    "warn,sim=info,raftmq=debug,raft=debug,store=debug,proto=debug,client=debug,namesrv=info,openraft=info";

struct Sink {
    out: BufWriter<File>,
    /// Simulated time of the first event: the trace counts from it.
    start_ms: Option<i64>,
}

/// The installed trace; `finish` flushes it.
pub struct Trace {
    sink: Arc<Mutex<Sink>>,
}

impl Trace {
    pub fn finish(self) {
        let _ = self.sink.lock().unwrap().out.flush();
    }
}

/// Installs the trace writer as the process's tracing subscriber.
pub fn install(path: &str) -> Result<Trace, String> {
    let file = File::create(path).map_err(|e| format!("creating trace {path}: {e}"))?;
    let sink = Arc::new(Mutex::new(Sink {
        out: BufWriter::new(file),
        start_ms: None,
    }));
    let spec = std::env::var("SIM_TRACE").unwrap_or_else(|_| DEFAULT_FILTER.to_string());
    let filter = EnvFilter::try_new(&spec).map_err(|e| format!("SIM_TRACE {spec:?}: {e}"))?;
    let layer = JsonLayer { sink: sink.clone() };
    let subscriber = tracing_subscriber::registry().with(layer.with_filter(filter));
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| format!("installing the trace: {e}"))?;
    Ok(Trace { sink })
}

/// The host a `node` span belongs to.
struct NodeName(String);

struct JsonLayer {
    sink: Arc<Mutex<Sink>>,
}

#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "node" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(Value::String(name)), Some(span)) = (fields.0.remove("name"), ctx.span(id)) {
            span.extensions_mut().insert(NodeName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let node = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<NodeName>().map(|n| n.0.clone()))
        });
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now_ms = proto::clock::now_ms();
        let mut sink = self.sink.lock().unwrap();
        let start = *sink.start_ms.get_or_insert(now_ms);
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("t_ms".into(), (now_ms - start).into());
        line.insert("node".into(), node.unwrap_or_else(|| "-".into()).into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(msg) = fields.0.remove("message") {
            line.insert("msg".into(), msg);
        }
        line.extend(fields.0);
        let text = serde_json::to_string(&Value::Object(line)).expect("a trace line serializes");
        let _ = writeln!(sink.out, "{text}");
    }
}
