//! kill -9, round after round: concurrent PutObject, multipart uploads,
//! overwrites and deletes, the server killed mid-flight and restarted on
//! the same directory. After every restart each key reads back as its last
//! acknowledged write (or, for the one write in flight on it, that write);
//! at the end `stowage verify` finds the store sound, and deleting
//! everything with a collector grace of 0 leaves zero bytes.
//! `STOWAGE_CRASH_ROUNDS` sets the rounds (20 by default).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::{Server, md5_hex, random_bytes};

const WORKERS: u64 = 4;
const KEYS: u64 = 8;
const LIMITS: &str = "min_part_size = 1024\ngc_grace_secs = 0\ngc_interval_secs = 1\n";

/// What a key holds: `None` deleted (or never written), else the MD5.
type Value = Option<String>;

#[derive(Default)]
struct Key {
    acked: Value,
    /// A write sent but not answered when the server died.
    in_flight: Option<Value>,
}

type Model = Arc<Mutex<HashMap<String, Key>>>;

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

async fn multipart(s3: &Client, key: &str, parts: &[Vec<u8>]) -> Result<String, String> {
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key(key)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .upload_id
        .unwrap();
    let mut done = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("bkt")
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag.unwrap())
                .build(),
        );
    }
    let out = s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(out.e_tag.unwrap().trim_matches('"').to_owned())
}

/// Writes, overwrites and deletes this worker's keys until the server dies.
async fn worker(s3: Client, w: u64, round: u64, model: Model) {
    let mut seed = (w + 1) * 7_919 + round * 104_729;
    loop {
        let key = format!("w{w}/k{}", rng(&mut seed) % KEYS);
        let choice = rng(&mut seed) % 10;
        // The value this write would leave, as far as the MD5 shows: a
        // multipart object's ETag is checked through its bytes instead.
        let (intent, result): (Value, Result<Value, String>) = match choice {
            0..=4 => {
                let len = match rng(&mut seed) % 3 {
                    0 => 100,
                    1 => 20_000,
                    _ => 300_000,
                } + (rng(&mut seed) % 1000) as usize;
                let data = random_bytes(len, rng(&mut seed));
                let md5 = md5_hex(&data);
                set_in_flight(&model, &key, Some(Some(md5.clone())));
                let put = s3
                    .put_object()
                    .bucket("bkt")
                    .key(&key)
                    .body(ByteStream::from(data))
                    .send()
                    .await;
                (
                    Some(md5.clone()),
                    put.map(|_| Some(md5)).map_err(|e| e.to_string()),
                )
            }
            5..=7 => {
                let parts: Vec<Vec<u8>> = (0..1 + rng(&mut seed) % 3)
                    .map(|_| {
                        random_bytes(4_000 + (rng(&mut seed) % 60_000) as usize, rng(&mut seed))
                    })
                    .collect();
                let whole = md5_hex(&parts.concat());
                set_in_flight(&model, &key, Some(Some(whole.clone())));
                let done = multipart(&s3, &key, &parts).await;
                (Some(whole.clone()), done.map(|_| Some(whole)))
            }
            _ => {
                set_in_flight(&model, &key, Some(None));
                let deleted = s3.delete_object().bucket("bkt").key(&key).send().await;
                (None, deleted.map(|_| None).map_err(|e| e.to_string()))
            }
        };
        match result {
            Ok(value) => {
                assert_eq!(value, intent);
                let mut m = model.lock().unwrap();
                let k = m.entry(key).or_default();
                k.acked = value;
                k.in_flight = None;
            }
            // The server is gone: the write stays in flight.
            Err(_) => return,
        }
    }
}

fn set_in_flight(model: &Model, key: &str, value: Option<Value>) {
    model
        .lock()
        .unwrap()
        .entry(key.to_owned())
        .or_default()
        .in_flight = value;
}

/// Reads every key back and settles the model on what is there.
async fn check(s3: &Client, model: &Model, round: u64) {
    let keys: Vec<String> = model.lock().unwrap().keys().cloned().collect();
    for key in keys {
        let got = match s3.get_object().bucket("bkt").key(&key).send().await {
            Ok(out) => {
                let bytes = out.body.collect().await.unwrap().into_bytes();
                Some(md5_hex(&bytes))
            }
            Err(e) if crate::harness::err_code(&e) == "NoSuchKey" => None,
            Err(e) => panic!("round {round}: GET {key}: {e:?}"),
        };
        let mut m = model.lock().unwrap();
        let k = m.get_mut(&key).unwrap();
        assert!(
            got == k.acked || k.in_flight.as_ref() == Some(&got),
            "round {round}: {key} holds {got:?}; acknowledged {:?}, in flight {:?}",
            k.acked,
            k.in_flight
        );
        k.acked = got;
        k.in_flight = None;
    }
}

fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                bytes_under(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_rounds_lose_nothing_acknowledged_and_leave_nothing_behind() {
    let rounds: u64 = std::env::var("STOWAGE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let model: Model = Arc::default();
    let mut acknowledged = 0usize;
    for round in 0..rounds {
        let mut server = Server::start_in(dir.path(), LIMITS);
        let s3 = server.client();
        if round == 0 {
            s3.create_bucket().bucket("bkt").send().await.unwrap();
        }
        check(&s3, &model, round).await;
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| tokio::spawn(worker(s3.clone(), w, round, Arc::clone(&model))))
            .collect();
        let mut seed = round + 99;
        tokio::time::sleep(Duration::from_millis(400 + rng(&mut seed) % 800)).await;
        server.kill();
        for w in workers {
            w.await.unwrap();
        }
        acknowledged += model
            .lock()
            .unwrap()
            .values()
            .filter(|k| k.acked.is_some())
            .count();
    }
    assert!(acknowledged > 0, "the workers got writes through");

    // A clean stop repairs the database after the last kill; verify then
    // checks every blob, every count and every file.
    let mut server = Server::start_in(dir.path(), LIMITS);
    check(&server.client(), &model, rounds).await;
    assert!(server.terminate().success());
    let data_dir = dir.path().join("data");
    let mut verify = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"));
    verify.args(["verify", "--data-dir"]).arg(&data_dir);
    if let Ok(url) = std::fs::read_to_string(dir.path().join("metadata_url")) {
        verify.arg("--metadata-url").arg(url);
    }
    let out = verify.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "verify: {report}");
    assert!(
        report.contains("0 damaged, 0 wrong reference counts, 0 orphan blobs"),
        "{report}"
    );

    // Delete everything: objects, and the uploads the kills abandoned.
    let server = Server::start_in(dir.path(), LIMITS);
    let s3 = server.client();
    let keys: Vec<String> = model.lock().unwrap().keys().cloned().collect();
    for key in keys {
        s3.delete_object()
            .bucket("bkt")
            .key(&key)
            .send()
            .await
            .unwrap();
    }
    let uploads = s3
        .list_multipart_uploads()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    for u in uploads.uploads() {
        s3.abort_multipart_upload()
            .bucket("bkt")
            .key(u.key().unwrap())
            .upload_id(u.upload_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    let listed = s3.list_objects_v2().bucket("bkt").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0));
    let start = Instant::now();
    let (blobs, tmp) = (data_dir.join("blobs"), data_dir.join("tmp"));
    while bytes_under(&blobs) + bytes_under(&tmp) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} bytes left",
            bytes_under(&blobs) + bytes_under(&tmp)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
