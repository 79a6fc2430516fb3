//! The store's promises: acknowledged writes survive a crash, freed blobs
//! are reclaimed, abandoned uploads expire, shutdown lets requests finish.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::{RawResponse, Server, count_files, md5_hex, put, random_bytes};

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), "");
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let s3 = s3.clone();
        let acked = Arc::clone(&acked);
        writers.push(tokio::spawn(async move {
            for i in 0..10_000u64 {
                let data = random_bytes(
                    ((w * 7919 + i * 104_729) % (512 << 10)) as usize + 1,
                    w * 1000 + i,
                );
                let key = format!("w{w}/{i}");
                let put = s3
                    .put_object()
                    .bucket("bkt")
                    .key(&key)
                    .body(ByteStream::from(data.clone()))
                    .send()
                    .await;
                match put {
                    Ok(out) => {
                        assert_eq!(out.e_tag().unwrap(), format!("\"{}\"", md5_hex(&data)));
                        acked.lock().unwrap().push((key, md5_hex(&data)));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "only {} writes before the crash",
        acked.len()
    );

    let server = Server::start_in(dir.path(), "");
    assert_eq!(
        count_files(&server.data_dir.join("tmp")),
        0,
        "recovery empties tmp/"
    );
    let s3 = server.client();
    for (key, md5) in &acked {
        let got = s3.get_object().bucket("bkt").key(key).send().await.unwrap();
        assert_eq!(got.e_tag().unwrap(), format!("\"{md5}\""));
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(&md5_hex(&bytes), md5, "{key}");
    }
    // Every blob on disk belongs to a listed object: nothing half-written
    // became visible, nothing acknowledged was lost.
    let listed = s3
        .list_objects_v2()
        .bucket("bkt")
        .max_keys(1000)
        .send()
        .await
        .unwrap();
    assert!(listed.key_count().unwrap() as usize >= acked.len().min(1000));
}

#[tokio::test]
async fn freed_blobs_are_reclaimed() {
    let server = Server::start_with("gc_grace_secs = 0\ngc_interval_secs = 1\n");
    let s3 = server.client();
    let blobs = server.data_dir.join("blobs");
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    // Larger than the inline limit: these live in blob files.
    let (one, two) = (random_bytes(20_000, 1), random_bytes(20_000, 2));
    put(&s3, "bkt", "k", one).await;
    put(&s3, "bkt", "k", two.clone()).await;
    wait_for("the overwritten blob to go", || count_files(&blobs) == 1).await;
    s3.copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/k")
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap();
    // The copy still holds the shared blob.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count_files(&blobs), 1);
    let got = s3
        .get_object()
        .bucket("bkt")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert!(got.body.collect().await.unwrap().into_bytes() == two);

    // Parts left out of a completion are freed with the upload.
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("m")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let mut etags = Vec::new();
    for n in 1..=2 {
        let out = s3
            .upload_part()
            .bucket("bkt")
            .key("m")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from_static(b"part"))
            .send()
            .await
            .unwrap();
        etags.push(out.e_tag.unwrap());
    }
    assert_eq!(count_files(&blobs), 3);
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(&etags[0])
                .build(),
        )
        .build();
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("m")
        .upload_id(&id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    wait_for("the unlisted part to go", || count_files(&blobs) == 2).await;
    s3.delete_object()
        .bucket("bkt")
        .key("copy")
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("bkt")
        .key("m")
        .send()
        .await
        .unwrap();
    wait_for("every blob to go", || count_files(&blobs) == 0).await;
}

#[tokio::test]
async fn abandoned_uploads_expire() {
    let server = Server::start_with(
        "abandoned_upload_secs = 1\nsweep_interval_secs = 1\ngc_grace_secs = 0\ngc_interval_secs = 1\n",
    );
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    s3.upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"abandoned"))
        .send()
        .await
        .unwrap();
    let blobs = server.data_dir.join("blobs");
    wait_for("the abandoned part to go", || count_files(&blobs) == 0).await;
    let e = s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::harness::err_code(&e), "NoSuchUpload");
    assert!(server.log().contains("lifecycle sweep aborted_uploads=1"));
}

#[test]
fn shutdown_lets_in_flight_requests_finish() {
    let mut server = Server::start();
    let r = server.raw(
        b"PUT /bkt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&crate::harness::signed(
        b"PUT /bkt/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello",
    ))
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let addr = server.addr;
    let finisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        s.write_all(b"world").unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        RawResponse::parse(&buf)
    });
    let status = server.terminate();
    let r = finisher.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight upload completed");
    assert!(status.success(), "clean exit: {status:?}");
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

#[tokio::test]
async fn metrics_show_requests_and_bytes_held_by_incomplete_uploads() {
    let server = Server::start_with_config("metrics_listen = \"127.0.0.1:0\"", "");
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    put(&s3, "bkt", "k", b"x").await;
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("m")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    s3.upload_part()
        .bucket("bkt")
        .key("m")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"nine byte"))
        .send()
        .await
        .unwrap();
    let scrape = || crate::harness::scrape(&server);
    // A page rebinding its name to this machine reads nothing.
    assert_eq!(
        crate::harness::scrape_as(&server, "attacker.example").status,
        403
    );
    let text = scrape();
    for line in [
        "stowage_requests_total{operation=\"PutObject\",status=\"200\"} 1\n",
        "stowage_request_duration_seconds_count{operation=\"PutObject\",class=\"2xx\"} 1\n",
        "stowage_request_duration_seconds_bucket{operation=\"UploadPart\",class=\"2xx\",le=\"+Inf\"} 1\n",
        "stowage_incomplete_uploads{protocol=\"s3\"} 1\n",
        "stowage_incomplete_upload_bytes{protocol=\"s3\"} 9\n",
        "stowage_garbage_blobs 0\n",
        "stowage_bucket_objects{bucket=\"bkt\"} 1\n",
        "stowage_bucket_bytes{bucket=\"bkt\"} 1\n",
        concat!(
            "stowage_build_info{version=\"",
            env!("CARGO_PKG_VERSION"),
            "\"} 1\n"
        ),
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    let value = |text: &str, name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        let line = line.unwrap_or_else(|| panic!("{name} in\n{text}"));
        line[name.len() + 1..].parse().unwrap()
    };
    assert!(value(&text, "stowage_disk_free_bytes") > 0.0);
    assert!(value(&text, "stowage_metadata_commit_seconds_count") >= 3.0);
    assert!(value(&text, "stowage_connections_open") >= 1.0);

    // The totals follow overwrites, completions and deletes.
    put(&s3, "bkt", "k", b"four").await;
    let part = CompletedPart::builder().part_number(1).e_tag("\"unused\"");
    let parts = s3
        .list_parts()
        .bucket("bkt")
        .key("m")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let etag = parts.parts()[0].e_tag().unwrap().to_owned();
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("m")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(part.e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let text = scrape();
    assert_eq!(value(&text, "stowage_bucket_objects{bucket=\"bkt\"}"), 2.0);
    assert_eq!(value(&text, "stowage_bucket_bytes{bucket=\"bkt\"}"), 13.0);
    assert_eq!(
        value(&text, "stowage_incomplete_upload_bytes{protocol=\"s3\"}"),
        0.0
    );
    s3.delete_object()
        .bucket("bkt")
        .key("k")
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket("bkt")
        .key("gone")
        .send()
        .await
        .unwrap();
    let text = scrape();
    assert_eq!(value(&text, "stowage_bucket_objects{bucket=\"bkt\"}"), 1.0);
    assert_eq!(value(&text, "stowage_bucket_bytes{bucket=\"bkt\"}"), 9.0);
    s3.delete_object()
        .bucket("bkt")
        .key("m")
        .send()
        .await
        .unwrap();
    let text = scrape();
    assert!(
        !text.contains("stowage_bucket_objects{bucket=\"bkt\"}"),
        "{text}"
    );
}

/// Issue 19: a blob rotted on disk is never served as a complete body.
/// Each whole blob a GET reads is checked against what was recorded when
/// it was written (its CRC, else its MD5), and the response is cut before
/// its last byte on a mismatch; the log names the object and a metric
/// counts it. Reads of sound objects are untouched.
#[tokio::test]
async fn a_rotted_blob_is_cut_off_not_served() {
    use aws_sdk_s3::types::ChecksumAlgorithm;
    let server = Server::start_with_config("metrics_listen = \"127.0.0.1:0\"", "min_part_size = 1");
    let s3 = server.client();
    s3.create_bucket().bucket("rot").send().await.unwrap();
    // A CRC recorded (the SDK's default), a SHA-256 only (MD5 checks it),
    // and a multipart object's parts.
    put(&s3, "rot", "crc", random_bytes(300_001, 1)).await;
    s3.put_object()
        .bucket("rot")
        .key("sha")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(random_bytes(200_003, 2)))
        .send()
        .await
        .unwrap();
    let id = s3
        .create_multipart_upload()
        .bucket("rot")
        .key("parts")
        .send()
        .await
        .unwrap();
    let id = id.upload_id.unwrap();
    let mut done = CompletedMultipartUpload::builder();
    for (n, len) in [(1, 150_007), (2, 150_011)] {
        let part = s3
            .upload_part()
            .bucket("rot")
            .key("parts")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(random_bytes(len, n as u64 + 2)))
            .send()
            .await
            .unwrap();
        let etag = part.e_tag.unwrap();
        done = done.parts(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    let complete = s3
        .complete_multipart_upload()
        .bucket("rot")
        .key("parts")
        .upload_id(&id);
    complete
        .multipart_upload(done.build())
        .send()
        .await
        .unwrap();
    put(&s3, "rot", "sound", random_bytes(100_000, 9)).await;

    // One byte flipped in the middle of each blob but the sound one's.
    for (path, len) in blob_files(&server.data_dir.join("blobs")) {
        if len == 100_000 {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[len as usize / 2] ^= 0x20;
        std::fs::write(&path, bytes).unwrap();
    }

    for key in ["crc", "sha", "parts"] {
        let got = s3.get_object().bucket("rot").key(key).send().await.unwrap();
        let read = got.body.collect().await;
        assert!(
            read.is_err(),
            "{key}: a rotted body must not read as complete"
        );
    }
    // The part that is still sound reads on its own.
    let part1 = s3
        .get_object()
        .bucket("rot")
        .key("parts")
        .part_number(1)
        .send()
        .await;
    assert!(
        part1.unwrap().body.collect().await.is_err(),
        "part 1 rotted too"
    );
    let sound = s3
        .get_object()
        .bucket("rot")
        .key("sound")
        .send()
        .await
        .unwrap();
    assert_eq!(
        sound.body.collect().await.unwrap().into_bytes().len(),
        100_000
    );

    // Over the wire: the declared length, and fewer bytes before the cut.
    let r = server.raw(b"GET /rot/crc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        r.body.len() < 300_001,
        "cut before the last byte: {}",
        r.body.len()
    );

    let log = server.log();
    for key in ["crc", "sha", "parts"] {
        let said = format!("bucket=\"rot\" key=\"{key}\"");
        assert!(
            log.lines()
                .any(|l| l.contains("damaged blob") && l.contains(&said)),
            "{key}: {log}"
        );
    }
    assert!(
        log.contains("CRC32 recorded") && log.contains("MD5 recorded"),
        "{log}"
    );
    let text = crate::harness::scrape(&server);
    assert!(text.contains("stowage_corrupt_reads_total 5\n"), "{text}");
}

/// Issue 19: the online scrub finds rot no client asked for: logged with
/// the object, counted, and listed in the readiness probe's details.
#[tokio::test]
async fn the_scrub_finds_rot_while_the_server_runs() {
    let limits = "min_part_size = 1\nlifecycle_day_secs = 1\nscrub_interval_days = 1\nscrub_bytes_per_sec = 1000000000";
    let server = Server::start_with_config("metrics_listen = \"127.0.0.1:0\"", limits);
    let s3 = server.client();
    s3.create_bucket().bucket("scrubbed").send().await.unwrap();
    put(&s3, "scrubbed", "rotten", random_bytes(300_001, 1)).await;
    put(&s3, "scrubbed", "sound", random_bytes(100_000, 2)).await;
    put(&s3, "scrubbed", "small", b"inline bytes".to_vec()).await;
    for (path, len) in blob_files(&server.data_dir.join("blobs")) {
        if len == 300_001 {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[1234] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let log = server.log_when("damaged blob");
    let damaged: Vec<&str> = log.lines().filter(|l| l.contains("damaged blob")).collect();
    assert_eq!(damaged.len(), 1, "{log}");
    assert!(
        damaged[0].contains("bucket=\"scrubbed\" key=\"rotten\""),
        "{log}"
    );

    let r = server.raw_unsigned(
        b"GET /_stowage/health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "what is sound is still served");
    let ready: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let damaged = ready["integrity"]["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{ready}");
    assert_eq!(damaged[0]["key"], "rotten");
    assert!(
        ready["integrity"]["scrub_pass_started_ms"].is_i64(),
        "{ready}"
    );

    let text = crate::harness::scrape(&server);
    assert!(text.contains("stowage_damaged_objects 1\n"), "{text}");
    let n = |name: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        line[name.len() + 1..].parse().unwrap()
    };
    assert!(n("stowage_scrub_objects_total") >= 2, "{text}");
}

/// Every blob file under `dir`, with its size.
fn blob_files(dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(blob_files(&e.path()));
        } else {
            out.push((e.path(), e.metadata().unwrap().len()));
        }
    }
    out
}

fn run_verify(data_dir: &Path) -> (i32, String) {
    run_verify_with(data_dir, &[])
}

/// `stowage verify` on a test server's data directory, on the engine the
/// server used.
fn verify_command(data_dir: &Path) -> std::process::Command {
    let mut verify = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"));
    verify.arg("verify").arg("--data-dir").arg(data_dir);
    if let Some(url) = metadata_url(data_dir) {
        verify.arg("--metadata-url").arg(url);
    }
    verify
}

/// The PostgreSQL database a test server's data directory went with.
fn metadata_url(data_dir: &Path) -> Option<String> {
    let file = data_dir.parent()?.join("metadata_url");
    std::fs::read_to_string(file).ok()
}

fn run_verify_with(data_dir: &Path, args: &[&str]) -> (i32, String) {
    let out = verify_command(data_dir).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("verified ") && stderr.contains("%)"),
        "progress reaches its end: {stderr} / {stdout} / {:?}",
        out.status
    );
    (out.status.code().unwrap_or(-1), stdout)
}

#[tokio::test]
async fn verify_finds_rotten_and_missing_blobs() {
    let mut server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    put(&s3, "bkt", "a", random_bytes(20_001, 1)).await;
    s3.copy_object()
        .bucket("bkt")
        .key("a-copy")
        .copy_source("bkt/a")
        .send()
        .await
        .unwrap();
    put(&s3, "bkt", "healthy", random_bytes(20_002, 2)).await;
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("pending")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    s3.upload_part()
        .bucket("bkt")
        .key("pending")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(random_bytes(1003, 3)))
        .send()
        .await
        .unwrap();
    assert!(server.terminate().success());
    let data_dir = server.data_dir.clone();

    if !crate::pg::selected() {
        // A server still running on the embedded engine's directory is
        // refused, not raced (redb allows one process).
        let mut running = Server::start_in(data_dir.parent().unwrap(), "");
        let blocked = verify_command(&data_dir).output().unwrap();
        assert_eq!(blocked.status.code(), Some(2));
        assert!(running.terminate().success());
    }

    let meta = std::fs::read(data_dir.join("meta.redb")).ok();
    let (code, out) = run_verify(&data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        std::fs::read(data_dir.join("meta.redb")).ok() == meta,
        "verify only reads"
    );
    assert!(
        out.contains("3 objects and 1 parts of incomplete uploads: 3 blobs"),
        "{out}"
    );
    assert!(out.contains("; 0 damaged"), "{out}");

    // One byte of `a` (shared with its copy) rots; the pending part vanishes.
    let files = blob_files(&data_dir.join("blobs"));
    let with_size = |n: u64| files.iter().find(|(_, len)| *len == n).unwrap().0.clone();
    let rotten = with_size(20_001);
    let mut bytes = std::fs::read(&rotten).unwrap();
    bytes[500] ^= 0x01;
    std::fs::write(&rotten, bytes).unwrap();
    std::fs::remove_file(with_size(1003)).unwrap();

    let (code, out) = run_verify(&data_dir);
    assert_eq!(code, 1, "{out}");
    let damaged: Vec<&str> = out.lines().filter(|l| l.starts_with("DAMAGED")).collect();
    assert_eq!(damaged.len(), 2, "{out}");
    let rot = damaged
        .iter()
        .find(|l| l.contains("MD5"))
        .expect("an MD5 mismatch");
    assert!(
        rot.contains("bkt/a,") && rot.contains("bkt/a-copy"),
        "{rot}"
    );
    let gone = damaged
        .iter()
        .find(|l| l.contains("missing"))
        .expect("a missing blob");
    assert!(gone.contains(&format!("upload {id} part 1")), "{gone}");
    assert!(!out.contains("bkt/healthy"), "{out}");
}

/// Reference counts are cross-checked against the references found, and
/// orphan blob files listed; `--repair` sets the counts right and unlinks
/// the orphans, after which a delete of one copy no longer frees the blob
/// the other copy reads.
#[tokio::test]
async fn verify_cross_checks_counts_and_repair_fixes_them() {
    let mut server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let shared = random_bytes(30_000, 11);
    put(&s3, "bkt", "a", &shared).await;
    s3.copy_object()
        .bucket("bkt")
        .key("b")
        .copy_source("bkt/a")
        .send()
        .await
        .unwrap();
    put(&s3, "bkt", "other", random_bytes(25_000, 12)).await;
    assert!(server.terminate().success());
    let data_dir = server.data_dir.clone();
    let (code, out) = run_verify(&data_dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 damaged, 0 wrong reference counts, 0 orphan blobs"),
        "{out}"
    );

    // The shared blob's count drops to 1 (a delete of either copy would
    // free it), and a stray blob file appears.
    let files = blob_files(&data_dir.join("blobs"));
    let shared_path = &files.iter().find(|(_, len)| *len == 30_000).unwrap().0;
    let shared_id =
        u128::from_str_radix(shared_path.file_name().unwrap().to_str().unwrap(), 16).unwrap();
    match metadata_url(&data_dir) {
        Some(url) => {
            let db = url.rsplit('/').next().unwrap();
            let sql = format!(
                "UPDATE blobs SET refs = 1 WHERE id = '\\x{}'::BYTEA",
                stowage::store::model::id_hex(shared_id)
            );
            let out = crate::pg::Postgres::get().psql_in(db, &sql);
            assert!(out.status.success(), "{out:?}");
        }
        None => {
            use stowage::store::redb::tables::BLOBS;
            let db = redb::Database::open(data_dir.join("meta.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(BLOBS).unwrap().insert(shared_id, 1).unwrap();
            txn.commit().unwrap();
        }
    }
    let orphan = data_dir
        .join("blobs/ab")
        .join(format!("ab{}", "0".repeat(30)));
    std::fs::write(&orphan, b"nobody's").unwrap();

    let (code, out) = run_verify(&data_dir);
    assert_eq!(code, 1, "{out}");
    let refcount = format!(
        "REFCOUNT blob {}: count 1, 2 references",
        stowage::store::model::id_hex(shared_id)
    );
    assert!(out.contains(&refcount), "{out}");
    assert!(
        out.contains(&format!("ORPHAN blob ab{}: 8 bytes", "0".repeat(30))),
        "{out}"
    );
    assert!(
        out.contains("0 damaged, 1 wrong reference counts, 1 orphan blobs"),
        "{out}"
    );

    let (code, out) = run_verify_with(&data_dir, &["--repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("repaired: 1 reference counts set, 1 orphan blobs (8 bytes) unlinked"),
        "{out}"
    );
    assert!(!orphan.exists());
    let (code, out) = run_verify(&data_dir);
    assert_eq!(code, 0, "{out}");

    let server = Server::start_in(
        data_dir.parent().unwrap(),
        "gc_grace_secs = 0\ngc_interval_secs = 1\n",
    );
    let s3 = server.client();
    s3.delete_object()
        .bucket("bkt")
        .key("a")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let back = s3.get_object().bucket("bkt").key("b").send().await.unwrap();
    let bytes = back.body.collect().await.unwrap().into_bytes();
    assert!(bytes == shared.as_slice(), "the copy still reads whole");
}

/// A GET that began before a delete finishes with the old bytes, even when
/// its client pauses past the whole grace period: the reader keeps a lease
/// that holds the collector off the object's parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_read_outlives_a_delete_through_its_lease() {
    let server = Server::start_with("gc_grace_secs = 4\ngc_interval_secs = 1\nmin_part_size = 1");
    let s3 = server.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let id = s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("m")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    // Larger than every buffer between the reader and this client.
    let parts: Vec<Vec<u8>> = (0..6).map(|n| random_bytes(8 << 20, n)).collect();
    let mut done = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("bkt")
            .key("m")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag.unwrap())
                .build(),
        );
    }
    let upload = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .set_parts(Some(done))
        .build();
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key("m")
        .upload_id(&id)
        .multipart_upload(upload)
        .send()
        .await
        .unwrap();

    let got = s3.get_object().bucket("bkt").key("m").send().await.unwrap();
    let mut body = got.body;
    let mut read = body.next().await.unwrap().unwrap().to_vec();
    s3.delete_object()
        .bucket("bkt")
        .key("m")
        .send()
        .await
        .unwrap();
    // Past the grace period: without the lease the parts would be gone.
    tokio::time::sleep(Duration::from_secs(7)).await;
    while let Some(chunk) = body.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert!(read == parts.concat(), "the old bytes, all of them");

    // Once the reader is done and its lease has run out, the parts go.
    let blobs = server.data_dir.join("blobs");
    wait_for("the parts to be collected", || count_files(&blobs) == 0).await;
}

/// Issue 19 (part): SIGHUP (logrotate, `systemctl reload`) once killed a
/// server without TLS with status 129, cutting uploads. It never stops the
/// server now, and says so in the log.
#[test]
fn sighup_never_stops_the_server() {
    let server = Server::start();
    for _ in 0..3 {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = server.raw(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200, "still serving after SIGHUP");
    assert_eq!(
        server.log().matches("SIGHUP").count(),
        3,
        "{}",
        server.log()
    );
}

/// Issue 19: SIGHUP reloads what can change while the server runs
/// (credentials added and rotated, limits, the log level) and says what
/// changed; what needs a restart is named and kept; a configuration that
/// does not load leaves every setting as it was.
#[tokio::test]
async fn sighup_reloads_credentials_limits_and_the_log_level() {
    let creds = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(k, s)| {
                format!("[[credentials]]\naccess_key_id = {k:?}\nsecret_access_key = {s:?}\nadmin = true\n")
            })
            .collect::<String>()
    };
    let server = Server::start_with_config(&creds(&[("first-key", "first-secret-1")]), "");
    let first = server.client_as("first-key", "first-secret-1");
    first.create_bucket().bucket("hup").send().await.unwrap();
    let probe =
        b"GET /_stowage/health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(server.raw_unsigned(probe).status, 200);

    let top = "log_level = \"debug\"\nnode_id = \"elsewhere\"\n".to_owned()
        + &creds(&[
            ("first-key", "first-secret-2"),
            ("second-key", "second-secret"),
        ]);
    server.rewrite_config(&top, "max_object_size = 1000\nmin_part_size = 1000");
    server.hangup();
    let log = server.log_when("SIGHUP: limits.max_object_size: 5368709120 -> 1000");
    for said in [
        "SIGHUP: credentials: added second-key",
        "SIGHUP: credentials: rotated first-key",
        "SIGHUP: log_level: info -> debug",
        "takes effect at the next start setting=\"node_id\"",
    ] {
        assert!(log.contains(said), "{said:?} in\n{log}");
    }
    assert!(!log.contains("second-secret") && !log.contains("first-secret"));

    // The rotated secret is refused, the new ones work.
    assert!(first.list_buckets().send().await.is_err());
    let rotated = server.client_as("first-key", "first-secret-2");
    rotated.list_buckets().send().await.unwrap();
    let second = server.client_as("second-key", "second-secret");
    let put = |len: usize| {
        second
            .put_object()
            .bucket("hup")
            .key("k")
            .body(ByteStream::from(vec![7u8; len]))
            .send()
    };
    put(1000).await.unwrap();
    let e = put(1001).await.unwrap_err();
    assert_eq!(e.into_service_error().meta().code(), Some("EntityTooLarge"));

    // At DEBUG, the probes' lines appear (at INFO they never did).
    assert!(!server.log().contains("op=HealthLive"));
    assert_eq!(server.raw_unsigned(probe).status, 200);
    server.log_when("op=HealthLive");

    // A mistake keeps every setting as it was.
    let unknown_level = top.replace("\"debug\"", "\"warning\"");
    server.rewrite_config(&unknown_level, "");
    server.hangup();
    server.log_when("reload refused");
    put(1000).await.unwrap();
    assert!(put(1001).await.is_err(), "the limit in force stays");

    // A file emptied (a config tool truncating it as SIGHUP comes) never
    // turns on the public development credential.
    std::fs::write(&server.config, "").unwrap();
    server.hangup();
    let refusals = |log: &str| log.matches("reload refused").count();
    let start = Instant::now();
    while refusals(&server.log()) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.log().contains("is empty (a tool rewriting it?)"));
    // Nor does a file that names no credentials.
    let cors_only =
        "[[cors]]\nallowed_origins = [\"https://a.example\"]\nallowed_methods = [\"GET\"]\n";
    std::fs::write(&server.config, cors_only).unwrap();
    server.hangup();
    server.log_when("never turns on the public development credential");
    let dev = server.client_as(crate::harness::DEV_KEY, crate::harness::DEV_SECRET);
    assert!(dev.list_buckets().send().await.is_err());
    put(1000).await.unwrap();

    // An error in the file is located, never quoted: the line may hold a
    // secret.
    let leaky = "[[credentials]]\naccess_key_id = \"third\"\nsecret_access_key = \"TOPSECRET-unterminated\n";
    std::fs::write(&server.config, leaky).unwrap();
    server.hangup();
    while refusals(&server.log()) < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log();
    assert!(!log.contains("TOPSECRET"), "{log}");
    assert!(log.contains("line 3, column"), "{log}");
}

/// Issue 19: `log_format = "json"` writes one JSON object per line (for
/// log shippers), and `access_log = false` leaves requests out.
#[tokio::test]
async fn json_logs_and_the_access_log_switch() {
    let server = Server::start_with_config("log_format = \"json\"\naccess_log = false", "");
    let client = server.client();
    client.create_bucket().bucket("quiet").send().await.unwrap();
    client.list_buckets().send().await.unwrap();
    let log = server.log_when("listening on");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let start = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("listening on"))
        })
        .expect("the start line");
    assert_eq!(start["level"], "INFO");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        !log.contains("CreateBucket") && !log.contains("ListBuckets"),
        "{log}"
    );
}

/// Issue 19: an upload the shutdown grace cuts gets its log line, and its
/// temporary file is removed at the stop, not found by the next start's
/// crash recovery.
#[test]
fn a_clean_stop_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), "shutdown_grace_secs = 1");
    assert_eq!(server.raw(b"PUT /cut HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").status, 200);
    let mut conn = TcpStream::connect(server.addr).unwrap();
    let (head, _) = crate::harness::sign_with_seed(
        b"PUT /cut/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\r\n",
        crate::harness::DEV_KEY,
        crate::harness::DEV_SECRET,
    );
    conn.write_all(&head).unwrap();
    conn.write_all(&vec![b'x'; 4 << 20]).unwrap();
    let start = Instant::now();
    while server.tmp_files() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the body reaches tmp/"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.terminate().success());
    let log = server.log();
    assert!(log.contains("request cut before its response"), "{log}");
    assert!(log.contains("target=\"/cut/big\""), "{log}");
    assert_eq!(server.tmp_files(), 0, "{log}");
    let again = Server::start_in(dir.path(), "");
    assert!(!again.log().contains("recovered blobs"), "{}", again.log());
}

/// Issue 19: while a stop drains, readiness answers 503 (a balancer sends
/// no new work), and a second stop signal ends the process at once.
#[test]
fn a_draining_server_is_not_ready_and_a_second_signal_stops_it() {
    let top = "metrics_listen = \"127.0.0.1:0\"";
    let mut server = Server::start_with_config(top, "shutdown_grace_secs = 60");
    assert_eq!(server.raw(b"PUT /drain HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").status, 200);
    // An upload that keeps the stop waiting.
    let mut conn = TcpStream::connect(server.addr).unwrap();
    let (head, _) = crate::harness::sign_with_seed(
        b"PUT /drain/slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\r\n",
        crate::harness::DEV_KEY,
        crate::harness::DEV_SECRET,
    );
    conn.write_all(&head).unwrap();
    conn.write_all(&[b'x'; 1000]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let ready = |server: &Server| {
        crate::harness::metrics_port_get(server, "/_stowage/health/ready", "localhost").status
    };
    assert_eq!(ready(&server), 200);
    server.signal_term();
    let start = Instant::now();
    while ready(&server) != 503 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "readiness fails while draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.wait_exit(Duration::from_millis(500)).is_none(),
        "the upload holds the stop"
    );
    server.signal_term();
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("a second signal stops it now");
    assert!(!status.success());
    drop(conn);
}

/// Issue 19 (part): a port in use is reported before anything is created
/// on disk, and the start line names the version, the data directory and
/// the metadata engine.
#[test]
fn a_port_in_use_is_reported_before_the_data_directory_is_made() {
    let server = Server::start();
    let log = server.log();
    let start = log.lines().find(|l| l.contains("listening on")).unwrap();
    for field in ["version=", "data_dir=", "metadata="] {
        assert!(start.contains(field), "{start}");
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["--listen", &server.addr.to_string(), "--data-dir"])
        .arg(&data)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("cannot listen on"), "{said}");
    assert!(!data.exists(), "the data directory was created");
}
