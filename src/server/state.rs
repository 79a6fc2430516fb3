//! What every request handler shares, and what a finished request reports
//! to the access log and the metrics.

use std::sync::{Arc, RwLock};

use http::Response;

use super::body::ResponseBody;
use crate::config::Config;
use crate::error::S3Error;
use crate::store::Store;

/// What every request handler shares.
pub struct AppState {
    /// The settings in force: replaced whole when SIGHUP reloads them.
    settings: RwLock<Arc<Config>>,
    pub store: Arc<Store>,
    pub metrics: Arc<crate::server::metrics::Metrics>,
    /// Memory for signed chunks awaiting verification, across requests.
    pub chunk_budget: Arc<crate::chunked::ChunkBudget>,
    /// Wakes background tasks waiting on a setting when a reload lands.
    pub reloaded: tokio::sync::Notify,
}

impl AppState {
    pub fn new(config: Config, store: Arc<Store>) -> AppState {
        store.set_floor(config.limits.min_free_bytes);
        AppState {
            chunk_budget: crate::chunked::ChunkBudget::new(config.limits.signed_chunk_budget),
            settings: RwLock::new(Arc::new(config)),
            store,
            metrics: Default::default(),
            reloaded: tokio::sync::Notify::new(),
        }
    }

    /// The settings in force now. A reload replaces them whole, so one
    /// read gives one consistent set; a step that decides on several
    /// settings reads them once.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.settings.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts reloaded settings in force for every request that starts
    /// after this.
    pub fn replace_config(&self, config: Config) {
        self.store.set_floor(config.limits.min_free_bytes);
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        self.reloaded.notify_waiters();
    }
}

/// What a finished request reports to the access log.
pub struct Outcome {
    pub response: Response<ResponseBody>,
    /// The operation's name, as logs and metrics give it.
    pub op: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub error: Option<S3Error>,
    /// The access key and authentication mode, once authenticated.
    pub auth: Option<(String, &'static str)>,
}

/// `scheme://host` as the client reached us, for URLs we hand out.
pub fn origin_of(state: &AppState, headers: &http::HeaderMap) -> String {
    let scheme = if state.config().tls_cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}
