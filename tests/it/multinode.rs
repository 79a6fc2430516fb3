//! Several nodes on one PostgreSQL and one shared data directory: any node
//! serves any request, races between nodes have one winner, a node killed
//! mid-part costs the client one retry, the collectors of every node spare
//! what another node is still reading, and a PostgreSQL restart is ridden
//! out. These always run on a real PostgreSQL ([`crate::pg`]).

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::{Server, err_code, md5_hex, random_bytes};
use crate::pg::Postgres;

const LIMITS: &str = "min_part_size = 1024\n";

/// `n` nodes sharing a data directory and a fresh database.
fn cluster(n: usize, limits: &str) -> (tempfile::TempDir, Vec<Server>) {
    cluster_on(Postgres::get(), n, limits)
}

fn cluster_on(pg: &Postgres, n: usize, limits: &str) -> (tempfile::TempDir, Vec<Server>) {
    let dir = tempfile::tempdir().unwrap();
    let url = pg.new_database();
    let nodes = (0..n)
        .map(|i| {
            Server::start_node(
                dir.path(),
                &format!("metadata_url = {url:?}\nnode_id = \"node{i}\""),
                limits,
            )
        })
        .collect();
    (dir, nodes)
}

async fn get_bytes(s3: &Client, key: &str) -> Vec<u8> {
    let out = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn upload_part(s3: &Client, key: &str, id: &str, n: i32, data: &[u8]) -> CompletedPart {
    let out = s3
        .upload_part()
        .bucket("bkt")
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap();
    CompletedPart::builder()
        .part_number(n)
        .e_tag(out.e_tag.unwrap())
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_upload_across_three_nodes() {
    let (_dir, nodes) = cluster(3, LIMITS);
    let s3: Vec<Client> = nodes.iter().map(Server::client).collect();
    s3[0].create_bucket().bucket("bkt").send().await.unwrap();
    let id = s3[0]
        .create_multipart_upload()
        .bucket("bkt")
        .key("video")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let parts: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(70_000 + i, i as u64)).collect();
    let mut done = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        done.push(upload_part(&s3[i], "video", &id, i as i32 + 1, data).await);
    }
    let listed = s3[1]
        .list_parts()
        .bucket("bkt")
        .key("video")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 3);
    s3[2]
        .complete_multipart_upload()
        .bucket("bkt")
        .key("video")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let whole = parts.concat();
    for client in &s3 {
        assert!(get_bytes(client, "video").await == whole);
    }

    // A URL presigned once works on every node.
    let presigned = s3[0]
        .get_object()
        .bucket("bkt")
        .key("video")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    for node in &nodes {
        let target = presigned
            .uri()
            .split_once(&nodes[0].addr.to_string())
            .unwrap()
            .1;
        let r = node.raw_unsigned(
            format!(
                "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                nodes[0].addr
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert!(r.body == whole);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn if_none_match_through_different_nodes_has_one_winner() {
    let (_dir, nodes) = cluster(3, LIMITS);
    let s3: Vec<Client> = nodes.iter().map(Server::client).collect();
    s3[0].create_bucket().bucket("bkt").send().await.unwrap();
    for round in 0..5 {
        let key = format!("once-{round}");
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let (s3, key) = (s3[i % 3].clone(), key.clone());
                tokio::spawn(async move {
                    let data = format!("writer {i}");
                    let put = s3
                        .put_object()
                        .bucket("bkt")
                        .key(&key)
                        .if_none_match("*")
                        .body(ByteStream::from(data.clone().into_bytes()))
                        .send()
                        .await;
                    (data, put.map_err(|e| err_code(&e)))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (data, result) = t.await.unwrap();
            match result {
                Ok(_) => winners.push(data),
                Err(code) => assert!(
                    code == "PreconditionFailed" || code == "ConditionalRequestConflict",
                    "{code}"
                ),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(get_bytes(&s3[1], &key).await, winners[0].as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_part_costs_one_retry_on_another() {
    let (_dir, mut nodes) = cluster(2, LIMITS);
    let s3: Vec<Client> = nodes.iter().map(Server::client).collect();
    s3[0].create_bucket().bucket("bkt").send().await.unwrap();
    let id = s3[0]
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let first = random_bytes(50_000, 1);
    let second = random_bytes(3 << 20, 2);
    let p1 = upload_part(&s3[1], "k", &id, 1, &first).await;
    // Part 2 starts on node 0, which dies while the body streams.
    let streaming = {
        let (s3, id, second) = (s3[0].clone(), id.clone(), second.clone());
        tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
            let body = http_body_util::StreamBody::new(tokio_stream_from(rx));
            let len = second.len() as i64;
            let sending = tokio::spawn(async move {
                for chunk in second.chunks(64 << 10) {
                    if tx
                        .send(Ok(bytes::Bytes::copy_from_slice(chunk)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
            let put = s3
                .upload_part()
                .bucket("bkt")
                .key("k")
                .upload_id(&id)
                .part_number(2)
                .content_length(len)
                .body(ByteStream::from_body_1_x(body))
                .send()
                .await;
            sending.abort();
            put.is_ok()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes[0].kill();
    assert!(
        !streaming.await.unwrap(),
        "the part on the killed node failed"
    );
    // The client retries on the other node.
    let p2 = upload_part(&s3[1], "k", &id, 2, &second).await;
    s3[1]
        .complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(p1)
                .parts(p2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = get_bytes(&s3[1], "k").await;
    assert_eq!(md5_hex(&got), md5_hex(&[first, second].concat()));
}

/// Turns a channel into the stream `StreamBody` wants.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|item| item.map(|r| r.map(hyper::body::Frame::data)))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collectors_on_every_node_spare_what_another_node_reads() {
    // A short grace: the reader on node 0 outlasts it, so only its lease
    // (in PostgreSQL) keeps the blob from the collectors of all three.
    let limits = "min_part_size = 1024\ngc_grace_secs = 2\ngc_interval_secs = 1\n";
    let (_dir, nodes) = cluster(3, limits);
    let s3: Vec<Client> = nodes.iter().map(Server::client).collect();
    s3[0].create_bucket().bucket("bkt").send().await.unwrap();
    let data = random_bytes(8 << 20, 9);
    s3[0]
        .put_object()
        .bucket("bkt")
        .key("big")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let mut stream = std::net::TcpStream::connect(nodes[0].addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        &crate::harness::signed(
            b"GET /bkt/big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ),
    )
    .unwrap();
    let mut got = vec![0u8; 64 << 10];
    std::io::Read::read_exact(&mut stream, &mut got).unwrap();
    s3[1]
        .delete_object()
        .bucket("bkt")
        .key("big")
        .send()
        .await
        .unwrap();
    // Read slowly, well past the grace period.
    let start = Instant::now();
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    while start.elapsed() < Duration::from_secs(6) {
        let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(400));
    }
    std::io::Read::read_to_end(&mut stream, &mut rest).unwrap();
    got.extend_from_slice(&rest);
    let body_at = crate::harness::find(&got, b"\r\n\r\n").unwrap() + 4;
    assert!(
        got[body_at..] == data[..],
        "the reader got the whole old bytes"
    );
    // And once it is done, the blob goes.
    let blobs = nodes[0].data_dir.join("blobs");
    let start = Instant::now();
    while crate::harness::count_files(&blobs) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the blob was never collected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_restarting_leaves_another_nodes_upload_in_flight_alone() {
    let (dir, mut nodes) = cluster(2, LIMITS);
    let s3 = nodes[1].client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let data = random_bytes(2 << 20, 5);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let put = {
        let s3 = s3.clone();
        let len = data.len() as i64;
        tokio::spawn(async move {
            s3.put_object()
                .bucket("bkt")
                .key("slow")
                .content_length(len)
                .body(ByteStream::from_body_1_x(http_body_util::StreamBody::new(
                    tokio_stream_from(rx),
                )))
                .send()
                .await
        })
    };
    let (first, second) = data.split_at(1 << 20);
    tx.send(Ok(bytes::Bytes::copy_from_slice(first)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Node 0 crashes and starts again: its start-up recovery looks only at
    // its own temporary files.
    nodes[0].kill();
    let top = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .find(|c| c.contains("node_id = \"node0\""))
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("metadata_url"))
                .map(str::to_owned)
        })
        .map(|l| format!("{l}\nnode_id = \"node0\""))
        .expect("node 0's config");
    nodes[0] = Server::start_node(dir.path(), &top, LIMITS);
    tx.send(Ok(bytes::Bytes::copy_from_slice(second)))
        .await
        .unwrap();
    drop(tx);
    put.await.unwrap().unwrap();
    assert!(get_bytes(&nodes[0].client(), "slow").await == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_fails_requests_cleanly_and_nodes_recover() {
    // A server of its own: the other tests' keeps running.
    let pg = Postgres::private();
    let (_dir, nodes) = cluster_on(&pg, 2, LIMITS);
    let s3: Vec<Client> = nodes.iter().map(Server::client).collect();
    s3[0].create_bucket().bucket("bkt").send().await.unwrap();
    crate::harness::put(&s3[0], "bkt", "before", b"kept").await;
    pg.restart_for(Duration::from_millis(1500), || {
        // While it is down: a request fails with a clear status, soon.
        for node in &nodes {
            let started = Instant::now();
            let r = node
                .raw(b"GET /bkt/before HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            assert!(
                r.status == 503 || r.status == 500,
                "status {} {}",
                r.status,
                r.body_str()
            );
            assert!(started.elapsed() < Duration::from_secs(10), "no hang");
        }
    });
    // Back up: both nodes serve again without a restart.
    let start = Instant::now();
    loop {
        match s3[1].get_object().bucket("bkt").key("before").send().await {
            Ok(out) => {
                assert_eq!(&out.body.collect().await.unwrap().into_bytes()[..], b"kept");
                break;
            }
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(20),
                "never recovered: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    crate::harness::put(&s3[0], "bkt", "after", b"new").await;
    assert_eq!(get_bytes(&s3[1], "after").await, b"new");
}

/// The hot rows: copies of one popular object through every node at once
/// meet on its blob's count, and writers of one part number meet on that
/// part. No update may be lost: every copy reads until its own delete, and
/// once everything is deleted every blob is collected (a lost increment
/// would free the blob early, a lost decrement would keep it forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_rows_neither_deadlock_nor_lose_an_update() {
    let limits = "min_part_size = 1024\ngc_grace_secs = 0\ngc_interval_secs = 1\n";
    let (_dir, nodes) = cluster(3, limits);
    let s3: Vec<Client> = nodes.iter().map(Server::client).collect();
    s3[0].create_bucket().bucket("bkt").send().await.unwrap();
    let data = random_bytes(100_000, 3);
    crate::harness::put(&s3[0], "bkt", "popular", &data).await;
    let copies: Vec<_> = (0..24)
        .map(|i| {
            let s3 = s3[i % 3].clone();
            tokio::spawn(async move {
                s3.copy_object()
                    .bucket("bkt")
                    .key(format!("copy-{i}"))
                    .copy_source("bkt/popular")
                    .send()
                    .await
                    .unwrap();
            })
        })
        .collect();
    for c in copies {
        c.await.unwrap();
    }
    // One part number, written through every node at once.
    let id = s3[0]
        .create_multipart_upload()
        .bucket("bkt")
        .key("contended")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let writers: Vec<_> = (0..9)
        .map(|i| {
            let (s3, id) = (s3[i % 3].clone(), id.clone());
            tokio::spawn(async move {
                upload_part(
                    &s3,
                    "contended",
                    &id,
                    1,
                    &random_bytes(5_000, 100 + i as u64),
                )
                .await
            })
        })
        .collect();
    let mut etags = Vec::new();
    for w in writers {
        etags.push(w.await.unwrap().e_tag.unwrap());
    }
    let listed = s3[1]
        .list_parts()
        .bucket("bkt")
        .key("contended")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.parts().len(), 1);
    assert!(etags.contains(&listed.parts()[0].e_tag().unwrap().to_owned()));
    s3[2]
        .abort_multipart_upload()
        .bucket("bkt")
        .key("contended")
        .upload_id(&id)
        .send()
        .await
        .unwrap();

    let mut keys: Vec<String> = (0..24).map(|i| format!("copy-{i}")).collect();
    keys.insert(12, "popular".into());
    for (n, key) in keys.iter().enumerate() {
        s3[n % 3]
            .delete_object()
            .bucket("bkt")
            .key(key)
            .send()
            .await
            .unwrap();
        if let Some(next) = keys.get(n + 1) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(get_bytes(&s3[(n + 1) % 3], next).await == data, "{next}");
        }
    }
    let blobs = nodes[0].data_dir.join("blobs");
    let start = Instant::now();
    while crate::harness::count_files(&blobs) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{} blob files never collected",
            crate::harness::count_files(&blobs)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stowage creates its schema in an empty database, and refuses one that a
/// newer Stowage has migrated past what it knows.
/// Issue 19: nodes sharing a store scrub it together, and a pass reads
/// each object once whichever node reads it (they claim batches through
/// one cursor in the metadata).
#[tokio::test]
async fn nodes_share_a_scrub_pass_without_reading_an_object_twice() {
    let pg = Postgres::get();
    let url = pg.new_database();
    let dir = tempfile::tempdir().unwrap();
    let top = |i: usize| {
        format!("metadata_url = {url:?}\nnode_id = \"node{i}\"\nmetrics_listen = \"127.0.0.1:0\"")
    };
    // The scrub is off until every object is in.
    let off = "scrub_interval_days = 0";
    let nodes: Vec<Server> = (0..2)
        .map(|i| Server::start_node(dir.path(), &top(i), off))
        .collect();
    let s3 = nodes[0].client();
    s3.create_bucket().bucket("scrub-a").send().await.unwrap();
    s3.create_bucket().bucket("scrub-b").send().await.unwrap();
    let body = random_bytes(20_000, 7);
    for i in 0..260 {
        let bucket = if i % 3 == 0 { "scrub-a" } else { "scrub-b" };
        let put = s3.put_object().bucket(bucket).key(format!("k{i:03}"));
        put.body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
    }
    // One pass an hour, fast: exactly one pass runs during the test.
    let on = "scrub_interval_days = 1\nlifecycle_day_secs = 3600\nscrub_bytes_per_sec = 1000000000";
    for (i, node) in nodes.iter().enumerate() {
        node.rewrite_config(&top(i), on);
        node.hangup();
    }
    let scrubbed = |text: &str, name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        line.unwrap()[name.len() + 1..].parse().unwrap()
    };
    let total = |name: &str| -> u64 {
        let texts = nodes.iter().map(crate::harness::scrape);
        texts.map(|t| scrubbed(&t, name)).sum()
    };
    let claimed = || {
        let logs = nodes.iter().map(|n| n.log());
        logs.into_iter()
            .any(|l| l.contains("every object of the pass is claimed"))
    };
    let start = Instant::now();
    while !claimed() || total("stowage_scrub_objects_total") < 260 {
        assert!(start.elapsed() < Duration::from_secs(60), "a pass ends");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing is read twice, then or later in the pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let objects = total("stowage_scrub_objects_total");
    assert_eq!(objects, 260, "each object once, across the nodes");
    assert_eq!(total("stowage_scrub_bytes_total"), 260 * 20_000);
    let texts: Vec<String> = nodes.iter().map(crate::harness::scrape).collect();
    assert!(
        texts
            .iter()
            .all(|t| scrubbed(t, "stowage_scrub_objects_total") > 0),
        "both nodes took part"
    );
    assert!(
        texts
            .iter()
            .all(|t| t.contains("stowage_damaged_objects 0\n"))
    );
}

/// Schema 2 keeps objects and bytes per bucket: a database at schema 1
/// that already holds objects gets them counted by the migration.
#[tokio::test]
async fn the_usage_migration_counts_what_is_stored() {
    let pg = Postgres::get();
    let url = pg.new_database();
    let dir = tempfile::tempdir().unwrap();
    let top = format!("metadata_url = {url:?}\nmetrics_listen = \"127.0.0.1:0\"");
    let mut first = Server::start_node(dir.path(), &top, "");
    let s3 = first.client();
    s3.create_bucket().bucket("old").send().await.unwrap();
    for (key, len) in [("a", 10), ("b", 32)] {
        let body = ByteStream::from(vec![1u8; len]);
        s3.put_object()
            .bucket("old")
            .key(key)
            .body(body)
            .send()
            .await
            .unwrap();
    }
    assert!(first.terminate().success());
    let db = url.rsplit('/').next().unwrap();
    let out = pg.psql_in(
        db,
        "DROP TABLE usage; DROP TABLE settings; UPDATE stowage_schema SET version = 1",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let again = Server::start_node(dir.path(), &top, "");
    assert!(
        again
            .log()
            .contains("migrated the metadata schema version=2")
    );
    let text = crate::harness::scrape(&again);
    assert!(
        text.contains("stowage_bucket_objects{bucket=\"old\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("stowage_bucket_bytes{bucket=\"old\"} 42\n"),
        "{text}"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let pg = Postgres::get();
    let url = pg.new_database();
    let dir = tempfile::tempdir().unwrap();
    let top = format!("metadata_url = {url:?}");
    let mut first = Server::start_node(dir.path(), &top, "");
    assert!(
        first
            .log()
            .contains("migrated the metadata schema version=1")
    );
    assert!(first.terminate().success());
    let db = url.rsplit('/').next().unwrap();
    let out = pg.psql_in(db, "UPDATE stowage_schema SET version = 99");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("newer.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{top}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("schema version 99, newer than this binary's"),
        "{said}"
    );
}

/// Nodes started together on an empty database all come up: one creates
/// the schema, the others wait on its row lock and find it done.
#[test]
fn nodes_starting_together_share_one_migration() {
    let url = Postgres::get().new_database();
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<Server> = std::thread::scope(|s| {
        let starting: Vec<_> = (0..3)
            .map(|i| {
                let (dir, url) = (dir.path(), &url);
                s.spawn(move || {
                    Server::start_node(
                        dir,
                        &format!("metadata_url = {url:?}\nnode_id = \"n{i}\""),
                        "",
                    )
                })
            })
            .collect();
        starting.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let migrated = nodes
        .iter()
        .filter(|n| n.log().contains("migrated the metadata schema version=1"))
        .count();
    assert_eq!(migrated, 1);
    for node in &nodes {
        let r = node
            .raw(b"PUT /bkt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        assert!(
            r.status == 200 || r.code() == "BucketAlreadyOwnedByYou",
            "{}",
            r.body_str()
        );
    }
}
