//! Prometheus metrics, served on their own address (`metrics_listen`) so
//! that no path is taken from the S3 namespace: request counts by operation
//! and status, bytes in and out, and what the store holds that costs disk
//! without being visible as objects (incomplete uploads, freed blobs not yet
//! reclaimed).

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

#[derive(Debug, Default)]
pub struct Metrics {
    /// operation → status → requests.
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Metrics {
    pub fn record(&self, op: &str, status: u16, bytes_in: u64, bytes_out: u64) {
        let mut requests = self.requests.lock().expect("metrics lock");
        // The name is copied only the first time it is seen.
        let by_status = match requests.get_mut(op) {
            Some(by_status) => by_status,
            None => requests.entry(op.to_owned()).or_default(),
        };
        *by_status.entry(status).or_default() += 1;
        drop(requests);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of the counters and of the store's
    /// gauges (absent when the store could not be asked).
    pub fn render(&self, stats: Option<Stats>) -> String {
        let stats = stats.as_ref();
        let mut out = String::new();
        out.push_str(
            "# HELP stowage_requests_total S3 requests answered, by operation and status.\n",
        );
        out.push_str("# TYPE stowage_requests_total counter\n");
        for (op, by_status) in self.requests.lock().expect("metrics lock").iter() {
            for (status, n) in by_status {
                let _ = writeln!(
                    out,
                    "stowage_requests_total{{operation=\"{op}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let counters = [
            (
                "stowage_received_bytes_total",
                "Request body bytes declared by clients.",
                &self.bytes_in,
            ),
            (
                "stowage_sent_bytes_total",
                "Response body bytes sent.",
                &self.bytes_out,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let gauge = |out: &mut String, name: &str, help: &str, value: Option<u64>| {
            if let Some(v) = value {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
            }
        };
        gauge(
            &mut out,
            "stowage_incomplete_uploads",
            "Multipart uploads neither completed nor aborted.",
            stats.map(|s| s.incomplete_uploads),
        );
        gauge(
            &mut out,
            "stowage_incomplete_upload_bytes",
            "Bytes held by the parts of incomplete multipart uploads.",
            stats.map(|s| s.incomplete_upload_bytes),
        );
        gauge(
            &mut out,
            "stowage_garbage_blobs",
            "Freed blobs and manifests waiting for the collector.",
            stats.map(|s| s.garbage_blobs),
        );
        if let Some(stats) = stats {
            let name = "stowage_bucket_incomplete_upload_bytes";
            let _ = writeln!(
                out,
                "# HELP {name} Bytes held by the parts of a bucket's incomplete multipart uploads.\n# TYPE {name} gauge"
            );
            for (bucket, bytes) in &stats.upload_bytes_by_bucket {
                // Bucket names are DNS-like: no quote or backslash to escape.
                let _ = writeln!(out, "{name}{{bucket=\"{bucket}\"}} {bytes}");
            }
        }
        out
    }
}

/// Serves `GET /metrics` (any path, in fact, but the health checks under
/// `/_stowage/health/`) on `listener`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, store: Arc<Store>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off, don't spin.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let (metrics, store) = (Arc::clone(&metrics), Arc::clone(&store));
        let service = service_fn(move |req: Request<Incoming>| {
            let (metrics, store) = (Arc::clone(&metrics), Arc::clone(&store));
            async move {
                if let Some(probe) = super::health::Probe::of_path(req.uri().path()) {
                    return Ok(super::health::answer(&store, probe).await);
                }
                let text = metrics.render(store.meta.stats().await.ok());
                let mut r: Response<ResponseBody> = Response::new(body::full(text));
                r.headers_mut().insert(
                    "content-type",
                    http::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                Ok::<_, Infallible>(r)
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
