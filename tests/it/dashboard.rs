//! `raftmq dashboard` against a running 3-replica group: each page shows the figures the
//! admin API (the CLI's) gives, found by element id. Pages are fetched over HTTP; with
//! RAFTMQ_DASHBOARD_BROWSER=chromium they are loaded in headless Chromium instead (the
//! DOM after load), and each page's screenshot is saved in target/dashboard/.

use std::time::Duration;

use client::{
    Admin, ConsumeFromWhere, ConsumeResult, Message, Producer, PullConsumer, PullStatus,
    PushConsumerBuilder,
};
use proto::net::rpc::RpcClient;
use proto::remoting::codes::{request, response};
use proto::remoting::RemotingCommand;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::{dev_group, send_acked};

/// How pages are loaded: plain HTTP, or a real browser.
enum Loader {
    Http,
    Chromium { program: String },
}

impl Loader {
    fn from_env() -> Loader {
        match std::env::var("RAFTMQ_DASHBOARD_BROWSER") {
            Ok(program) if !program.is_empty() => Loader::Chromium { program },
            _ => Loader::Http,
        }
    }

    /// The page's HTML (in a browser: its DOM once loaded), and a screenshot named
    /// `name` when a browser loads it.
    async fn load(&self, addr: std::net::SocketAddr, path: &str, name: &str) -> String {
        let url = format!("http://{addr}{path}");
        match self {
            Loader::Http => http(addr, "GET", path, "").await,
            Loader::Chromium { program } => {
                let program = program.clone();
                let name = name.to_string();
                tokio::task::spawn_blocking(move || chromium(&program, &url, &name))
                    .await
                    .unwrap()
            }
        }
    }
}

/// Headless Chromium as Debian packages it: the DOM after load, and a screenshot.
fn chromium(program: &str, url: &str, name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let base = |cmd: &mut std::process::Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let mut dump = std::process::Command::new(program);
    base(&mut dump);
    let out = dump
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e} (apt-get install chromium)"));
    assert!(out.status.success(), "{program} --dump-dom {url}: {out:?}");
    let mut shot = std::process::Command::new(program);
    base(&mut shot);
    let png = dir.join(format!("{name}.png"));
    let status = shot
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        status.status.success() && png.exists(),
        "screenshot of {url}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An HTTP/1.1 exchange: the response body (status 200 required).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, form: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: dashboard\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{method} {path}: {head}");
    body.to_string()
}

/// The text of the element with id `id`.
fn by_id(html: &str, id: &str) -> String {
    let escaped = raftmq::dashboard::html::esc(id);
    let marker = format!("id=\"{escaped}\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no element {id} in the page:\n{html}"))
        + marker.len();
    let end = start + html[start..].find('<').unwrap();
    html[start..end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_pages_show_what_the_admin_api_says() {
    let (cluster, config, _dir) = dev_group(store::FlushMode::Async).await;
    let admin = Admin::new(config.clone());
    let producer = Producer::new("dash-producer", config.clone());
    let orders = (0..40).map(|i| {
        Message::new("Orders", format!("order {i}"))
            .with_keys([format!("order-{i}")])
            .with_tags("TagA")
    });
    let sent = send_acked(&producer, orders).await;
    // A group that consumed part of one queue, and a dead letter.
    let consumer = PullConsumer::new("billing", config.clone());
    let queues = consumer.fetch_queues("Orders").await.unwrap();
    let pulled = consumer.pull(&queues[0], "*", 0, 4).await.unwrap();
    assert_eq!(pulled.status, PullStatus::Found);
    consumer
        .commit_offset(&queues[0], pulled.next_begin_offset)
        .await
        .unwrap();
    let master = admin.group_master("broker-a").await.unwrap();
    let rpc = RpcClient::connect(&master, None).await.unwrap();
    let dead = &pulled.messages[0];
    let reply = rpc
        .invoke(
            RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK)
                .with_ext("offset", dead.commitlog_offset)
                .with_ext("group", "billing")
                .with_ext("delayLevel", -1)
                .with_ext("maxReconsumeTimes", 16),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(reply.code, response::SUCCESS, "{:?}", reply.remark);

    // A group online, consuming everything tagged TagA.
    let shipping = PushConsumerBuilder::new("shipping", config.clone())
        .subscribe("Orders", "TagA")
        .consume_from(ConsumeFromWhere::FirstOffset)
        .start(|_| ConsumeResult::Success)
        .await
        .unwrap();

    let (addr, _tasks) = raftmq::dashboard::serve(
        config.clone(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    // Samples on both sides of more traffic, for the charts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    send_acked(
        &producer,
        (0..20).map(|i| Message::new("Orders", format!("late {i}"))),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let loader = Loader::from_env();

    // Cluster: the term, master and lag `raftmq group replicas` prints.
    let status = admin.group_status("broker-a").await.unwrap();
    let page = loader.load(addr, "/", "cluster").await;
    assert_eq!(by_id(&page, "term-broker-a"), status.term.to_string());
    assert_eq!(
        by_id(&page, "master-broker-a"),
        format!("replica {}", status.master.unwrap())
    );
    for replica in status.lag.keys() {
        by_id(&page, &format!("lag-broker-a-{replica}"));
    }
    assert_eq!(by_id(&page, &format!("role-{master}")), "master");

    // Topics: what `raftmq topic status` prints.
    let stats = admin.topic_stats("Orders").await.unwrap();
    let stored: u64 = stats.iter().map(|(_, o)| o.max_offset).sum();
    assert_eq!(stored, 60);
    let page = loader.load(addr, "/topics", "topics").await;
    assert_eq!(by_id(&page, "messages-Orders"), stored.to_string());
    let page = loader.load(addr, "/topic?name=Orders", "topic").await;
    for (mq, o) in &stats {
        let id = format!("Orders-{}-{}", mq.broker_name, mq.queue_id);
        assert_eq!(by_id(&page, &format!("max-{id}")), o.max_offset.to_string());
        assert_eq!(by_id(&page, &format!("min-{id}")), o.min_offset.to_string());
    }

    // Consumer groups: what `raftmq group lag` prints.
    let progress = admin.consumer_progress("billing", "Orders").await.unwrap();
    let lag: u64 = progress.iter().map(|p| p.lag()).sum();
    assert!(lag > 0);
    let page = loader.load(addr, "/groups", "groups").await;
    assert_eq!(by_id(&page, "lag-billing"), lag.to_string());
    assert_eq!(by_id(&page, "clients-shipping"), "1");
    assert_eq!(by_id(&page, "clients-billing"), "0");
    let online = admin.consumer_connection("shipping").await.unwrap();
    let page = loader.load(addr, "/group?name=shipping", "group").await;
    assert!(page.contains(&online.connection_set[0].client_id), "{page}");
    assert!(page.contains("TagA"), "{page}");
    let page = loader
        .load(addr, "/group?name=billing", "group-offline")
        .await;
    for p in &progress {
        let id = format!(
            "billing-Orders-{}-{}",
            p.queue.broker_name, p.queue.queue_id
        );
        assert_eq!(by_id(&page, &format!("lag-{id}")), p.lag().to_string());
    }

    // Messages: by key, as `raftmq query key` finds them, then resent.
    let page = loader
        .load(addr, "/message?topic=Orders&key=order-7", "message")
        .await;
    assert!(
        page.contains(&format!("id=\"msgid-{}\"", sent[7].msg_id)),
        "{page}"
    );
    assert!(page.contains("order 7"), "{page}");
    let form = format!("id={}&topic=Orders&to=Orders", sent[7].offset_msg_id);
    let resent = http(addr, "POST", "/message/resend", &form).await;
    let copy = by_id(&resent, "resent");
    let found = admin.find_by_id(&copy, Some("Orders")).await.unwrap();
    assert_eq!(&found[0].body[..], b"order 7");

    // Dead letters: the one message sent back past its retries.
    let page = loader.load(addr, "/dlq", "dlq").await;
    assert_eq!(by_id(&page, "dlq-%DLQ%billing"), "1");
    assert!(
        page.contains(&format!("id=\"msgid-{}\"", dead.msg_id)),
        "{page}"
    );

    // Charts: a line for the topic that took messages.
    let page = loader.load(addr, "/charts", "charts").await;
    assert!(page.contains("<polyline"), "{page}");
    assert!(page.contains("Orders"), "{page}");
    shipping.shutdown().await;
    cluster.shutdown().await.unwrap();
}
