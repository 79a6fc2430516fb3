//! Prometheus metrics, served on their own address (`metrics_listen`) so
//! that no path is taken from the S3 namespace: requests by operation and
//! status with their latency, bytes in and out, connections, what each
//! bucket stores, what costs disk without being visible as objects
//! (incomplete uploads, freed blobs not yet reclaimed), free space against
//! the floor, metadata commits, and reads that found rot. The README's
//! "Metrics" section lists every family.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::server::body::{self, ResponseBody};
use crate::store::Store;
use crate::store::model::Stats;
use crate::telemetry::{self, Histogram};

/// Per operation: answers by status, and latency by status class.
#[derive(Debug, Default)]
struct OpStats {
    by_status: BTreeMap<u16, u64>,
    latency: BTreeMap<char, Histogram>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<String, OpStats>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Connections being served now.
    pub connections_open: AtomicU64,
    /// Connections closed as they arrived (a cap was reached).
    pub connections_refused: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub connections_shed: AtomicU64,
}

/// What the store is asked for at each scrape.
pub struct Gauges {
    pub stats: Option<Stats>,
    pub free_bytes: Option<u64>,
    pub floor_bytes: u64,
}

impl Metrics {
    /// One answered request: `seconds` from its head's arrival to its
    /// response's head.
    pub fn record(&self, op: &str, status: u16, bytes_in: u64, bytes_out: u64, seconds: f64) {
        let mut requests = self.requests.lock().expect("metrics lock");
        // The name is copied only the first time it is seen.
        let stats = match requests.get_mut(op) {
            Some(stats) => stats,
            None => requests.entry(op.to_owned()).or_default(),
        };
        *stats.by_status.entry(status).or_default() += 1;
        let class = char::from(b'0' + (status / 100).min(9) as u8);
        (stats.latency)
            .entry(class)
            .or_insert_with(|| Histogram::new(telemetry::SECONDS))
            .observe(seconds);
        drop(requests);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// The Prometheus text exposition: the counters, and the store's
    /// gauges (absent when the store could not be asked).
    pub fn render(&self, gauges: &Gauges) -> String {
        let stats = gauges.stats.as_ref();
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "stowage_build_info",
            "gauge",
            "The running binary: always 1, its version as a label.",
        );
        let _ = writeln!(
            out,
            "stowage_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        {
            let requests = self.requests.lock().expect("metrics lock");
            head(
                &mut out,
                "stowage_requests_total",
                "counter",
                "Requests answered, by operation and status.",
            );
            for (op, stats) in requests.iter() {
                for (status, n) in &stats.by_status {
                    let _ = writeln!(
                        out,
                        "stowage_requests_total{{operation=\"{op}\",status=\"{status}\"}} {n}"
                    );
                }
            }
            let name = "stowage_request_duration_seconds";
            head(
                &mut out,
                name,
                "histogram",
                "Time from a request's head to its response's head, by operation and status class.",
            );
            for (op, stats) in requests.iter() {
                for (class, h) in &stats.latency {
                    h.render(
                        &mut out,
                        name,
                        &format!("operation=\"{op}\",class=\"{class}xx\""),
                    );
                }
            }
        }
        let counters = [
            (
                "stowage_received_bytes_total",
                "Request body bytes declared by clients.",
                self.bytes_in.load(Ordering::Relaxed),
            ),
            (
                "stowage_sent_bytes_total",
                "Response body bytes sent.",
                self.bytes_out.load(Ordering::Relaxed),
            ),
            (
                "stowage_connections_refused_total",
                "Connections closed as they arrived: the total or per-address cap was reached.",
                self.connections_refused.load(Ordering::Relaxed),
            ),
            (
                "stowage_connections_shed_total",
                "Idle connections closed to make room for a new one at the cap.",
                self.connections_shed.load(Ordering::Relaxed),
            ),
            (
                "stowage_scrub_objects_total",
                "Objects the online scrub re-read on this node.",
                telemetry::SCRUB_OBJECTS.load(Ordering::Relaxed),
            ),
            (
                "stowage_scrub_bytes_total",
                "Bytes the online scrub re-read on this node.",
                telemetry::SCRUB_BYTES.load(Ordering::Relaxed),
            ),
            (
                "stowage_scrub_passes_total",
                "Scrub passes this node saw to their end.",
                telemetry::SCRUB_PASSES.load(Ordering::Relaxed),
            ),
            (
                "stowage_corrupt_reads_total",
                "Reads cut because the bytes on disk differ from what was recorded when they were written.",
                telemetry::CORRUPT_READS.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            head(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }
        let gauge = |out: &mut String, name: &str, help: &str, value: Option<u64>| {
            if let Some(v) = value {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
            }
        };
        gauge(
            &mut out,
            "stowage_damaged_objects",
            "Objects found damaged (by reads or the scrub) since this process started, up to 100.",
            Some(telemetry::damage().len() as u64),
        );
        gauge(
            &mut out,
            "stowage_connections_open",
            "Connections being served now.",
            Some(self.connections_open.load(Ordering::Relaxed)),
        );
        gauge(
            &mut out,
            "stowage_disk_free_bytes",
            "Bytes free on the blob filesystem for new blobs.",
            gauges.free_bytes,
        );
        gauge(
            &mut out,
            "stowage_disk_floor_bytes",
            "Free space writes never take (limits.min_free_bytes): writes are refused with 507 below it.",
            Some(gauges.floor_bytes),
        );
        for (name, help, h) in [
            (
                "stowage_metadata_commit_seconds",
                "How long metadata commits take (redb: one per batch; PostgreSQL: one per change).",
                &telemetry::COMMIT_SECONDS,
            ),
            (
                "stowage_metadata_commit_changes",
                "How many changes each metadata commit carries.",
                &telemetry::COMMIT_CHANGES,
            ),
        ] {
            head(&mut out, name, "histogram", help);
            h.render(&mut out, name, "");
        }
        let Some(stats) = stats else {
            return out;
        };
        // Each incomplete upload is an S3 multipart upload for now (the
        // upload routes make those too); tus and GCS sessions get their
        // own protocol label.
        let protocol = "protocol=\"s3\"";
        head(
            &mut out,
            "stowage_incomplete_uploads",
            "gauge",
            "Uploads neither completed nor aborted, by protocol.",
        );
        let _ = writeln!(
            out,
            "stowage_incomplete_uploads{{{protocol}}} {}",
            stats.incomplete_uploads
        );
        head(
            &mut out,
            "stowage_incomplete_upload_bytes",
            "gauge",
            "Bytes held by incomplete uploads, by protocol.",
        );
        let _ = writeln!(
            out,
            "stowage_incomplete_upload_bytes{{{protocol}}} {}",
            stats.incomplete_upload_bytes
        );
        gauge(
            &mut out,
            "stowage_garbage_blobs",
            "The collector's backlog: freed blobs and manifests not yet reclaimed.",
            Some(stats.garbage_blobs),
        );
        // Bucket names are DNS-like: no quote or backslash to escape.
        let name = "stowage_bucket_incomplete_upload_bytes";
        head(
            &mut out,
            name,
            "gauge",
            "Bytes held by the parts of a bucket's incomplete multipart uploads.",
        );
        for (bucket, bytes) in &stats.upload_bytes_by_bucket {
            let _ = writeln!(out, "{name}{{bucket=\"{bucket}\"}} {bytes}");
        }
        let per_bucket = [
            (
                "stowage_bucket_objects",
                "Objects stored in a bucket.",
                false,
            ),
            (
                "stowage_bucket_bytes",
                "Bytes of the objects stored in a bucket.",
                true,
            ),
        ];
        for (name, help, bytes) in per_bucket {
            head(&mut out, name, "gauge", help);
            for (bucket, objects, stored) in &stats.objects_by_bucket {
                let value = if bytes { stored } else { objects };
                let _ = writeln!(out, "{name}{{bucket=\"{bucket}\"}} {value}");
            }
        }
        out
    }
}

/// Connections the metrics port serves at once.
const MAX_CONNECTIONS: usize = 64;

/// Serves `GET /metrics` (any path, in fact, but the health checks under
/// `/_stowage/health/`) on `listener`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, store: Arc<Store>) {
    // On a loopback address only loopback host names are answered: a page
    // that rebinds its name to 127.0.0.1 reads nothing.
    let loopback = listener
        .local_addr()
        .is_ok_and(|a| a.ip().to_canonical().is_loopback());
    // Scrapers and probes are few: past this many connections at once the
    // newcomer is closed, so this port cannot take the descriptors the S3
    // port needs.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off, don't spin.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (metrics, store) = (Arc::clone(&metrics), Arc::clone(&store));
        let service = service_fn(move |req: Request<Incoming>| {
            let (metrics, store) = (Arc::clone(&metrics), Arc::clone(&store));
            async move {
                let host = req.headers().get("host").map(|h| h.to_str());
                let foreign = match host {
                    Some(Ok(host)) => !crate::config::names_loopback(host, None),
                    Some(Err(_)) => true,
                    None => false,
                };
                if loopback && foreign {
                    let mut r =
                        Response::new(body::full("This port answers loopback host names only.\n"));
                    *r.status_mut() = http::StatusCode::FORBIDDEN;
                    return Ok(r);
                }
                if let Some(probe) = super::health::Probe::of_path(req.uri().path()) {
                    return Ok(super::health::answer(&store, probe).await);
                }
                let gauges = Gauges {
                    stats: store.meta.stats().await.ok(),
                    free_bytes: store.blobs.free_bytes().ok(),
                    floor_bytes: store.floor(),
                };
                let text = metrics.render(&gauges);
                let mut r: Response<ResponseBody> = Response::new(body::full(text));
                r.headers_mut().insert(
                    "content-type",
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                Ok::<_, Infallible>(r)
            }
        });
        tokio::spawn(async move {
            let _slot = slot;
            let _ = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
