//! `cargo bench -p proto`: CPU cost of the remoting codec on a send's round trip.
//!
//! What one 1 KiB SEND_MESSAGE_V2 costs each side, apart from the network and the
//! store: the producer builds the header and encodes the frame; the broker decodes it
//! and parses the send header; the broker encodes the response; the producer decodes
//! it; and the broker's handling of the message's properties (decoded from the header,
//! read for the index, encoded into the CommitLog). Single-threaded, nanoseconds per
//! operation (best of several rounds, so a busy machine's slow rounds do not count) and
//! heap allocations per operation (which do not vary between runs).
//!
//! Knob: `BENCH_ITERATIONS` per round (default 200,000; `cargo test --benches` runs 1,000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use proto::properties::{keys, Properties};
use proto::remoting::codes::response;
use proto::remoting::header::SendMessageHeader;
use proto::remoting::RemotingCommand;

const ROUNDS: usize = 5;

/// Counts heap allocations, a figure this VM's noise does not move (its nanoseconds
/// vary by 2x between runs).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// As the producer builds it, from strings it holds.
fn header() -> SendMessageHeader<&'static str> {
    SendMessageHeader {
        producer_group: "bench_producer",
        topic: "bench256",
        default_topic: "TBW102",
        default_topic_queue_nums: 4,
        queue_id: 3,
        sys_flag: 0,
        born_timestamp: 1_764_236_000_000,
        flag: 0,
        properties: "UNIQ_KEY\u{1}7F0000010001000000000000ABCD1234\u{2}WAIT\u{1}true\u{2}TAGS\u{1}bench\u{2}",
        reconsume_times: 0,
        unit_mode: false,
        batch: false,
        max_reconsume_times: None,
    }
}

/// Best nanoseconds per call of `op` over the rounds, and allocations per call.
fn measure(name: &str, iterations: usize, mut op: impl FnMut()) {
    let mut best = f64::MAX;
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..iterations {
            op();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / iterations as f64);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    let per_op = allocations as f64 / (ROUNDS * iterations) as f64;
    println!("{name:<44} {best:>8.0} ns/op {per_op:>5.1} allocations/op");
}

fn main() {
    // `cargo test --benches` passes no `--bench`: run briefly, as a smoke test.
    let quick = !std::env::args().any(|a| a == "--bench");
    let iterations = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1_000 } else { 200_000 });
    let body = Bytes::from(vec![b'x'; 1024]);
    let h = header();
    let mut out = BytesMut::with_capacity(1 << 16);

    measure(
        "producer: build header + encode request",
        iterations,
        || {
            let c = h.to_command().with_body(body.clone());
            out.clear();
            c.encode(&mut out);
            black_box(&out);
        },
    );

    let request = h.to_command().with_body(body.clone()).to_frame().freeze();
    measure("broker: decode request + parse header", iterations, || {
        let c = RemotingCommand::decode_frame(request.clone()).expect("valid frame");
        black_box(SendMessageHeader::parse(&c).expect("valid header"));
    });

    measure(
        "broker: decode properties, read 3, encode",
        iterations,
        || {
            let p = Properties::decode(h.properties);
            black_box((p.get(keys::TAGS), p.get(keys::KEYS), p.get(keys::UNIQ_KEY)));
            out.clear();
            let mut stored = Vec::with_capacity(p.encoded_size());
            p.encode_into(&mut stored);
            black_box(stored);
        },
    );

    let decoded = RemotingCommand::decode_frame(request.clone()).expect("valid frame");
    measure("broker: build + encode response", iterations, || {
        let r = RemotingCommand::response_to(&decoded, response::SUCCESS, None)
            .with_ext("msgId", "7F00000100002A9F0000000000123400")
            .with_ext("queueId", 3)
            .with_ext("queueOffset", 123_456u64)
            .with_ext("MSG_REGION", "DefaultRegion")
            .with_ext("TRACE_ON", "true");
        out.clear();
        r.encode(&mut out);
        black_box(&out);
    });

    let reply = RemotingCommand::response_to(&decoded, response::SUCCESS, None)
        .with_ext("msgId", "7F00000100002A9F0000000000123400")
        .with_ext("queueId", 3)
        .with_ext("queueOffset", 123_456u64)
        .to_frame()
        .freeze();
    measure(
        "producer: decode response + read fields",
        iterations,
        || {
            let r = RemotingCommand::decode_frame(reply.clone()).expect("valid frame");
            let queue_id: u32 = r.ext_parse("queueId").expect("queue id");
            let offset: u64 = r.ext_parse("queueOffset").expect("offset");
            black_box((queue_id, offset, r.ext("msgId").map(str::to_string)));
        },
    );
}
