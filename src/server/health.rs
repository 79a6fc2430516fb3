//! Liveness (the process answers) and readiness (metadata takes a durable
//! write and the disk is above its floor), for orchestrators, at
//! `/_stowage/health/live` and `/_stowage/health/ready`; no credentials
//! needed. Answered on the S3 listener and on the metrics listener.

use http::{Response, StatusCode};

use super::body::{ResponseBody, json};
use crate::store::Store;

/// Which health question a path asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Live,
    Ready,
}

impl Probe {
    /// The health probe a path names, if it is one.
    pub fn of_path(path: &str) -> Option<Probe> {
        match path.strip_prefix(super::EXTENSIONS)? {
            "health/live" => Some(Probe::Live),
            "health/ready" => Some(Probe::Ready),
            _ => None,
        }
    }

    /// The probe's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Live => "HealthLive",
            Probe::Ready => "HealthReady",
        }
    }
}

/// Set once a stop begins: readiness then fails, so a balancer sends
/// no new work to a server that is draining.
static DRAINING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn drain() {
    DRAINING.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub async fn answer(store: &Store, probe: Probe) -> Response<ResponseBody> {
    if probe == Probe::Live {
        return json(StatusCode::OK, &serde_json::json!({"status": "live"}));
    }
    if DRAINING.load(std::sync::atomic::Ordering::Relaxed) {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "draining", "problems": ["the server is stopping"]}),
        );
    }
    let metadata = store.meta.probe().await;
    let disk = store.check_space(0);
    let failed: Vec<String> = [("metadata", metadata), ("disk", disk)]
        .into_iter()
        .filter_map(|(what, r)| r.err().map(|e| format!("{what}: {}", e.message)))
        .collect();
    // Damage found by reads and the scrub is reported, not a reason to
    // stop serving what is sound.
    let scrub = store.meta.scrub_cursor().await.ok().flatten();
    let integrity = serde_json::json!({
        "damaged": crate::telemetry::damage(),
        "scrub_pass_started_ms": scrub.as_ref().map(|c| c.pass_started_ms),
        "scrub_pass_finished_ms": scrub.as_ref().and_then(|c| c.finished_ms),
    });
    if failed.is_empty() {
        json(
            StatusCode::OK,
            &serde_json::json!({"status": "ready", "integrity": integrity}),
        )
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "not ready", "problems": failed, "integrity": integrity}),
        )
    }
}
