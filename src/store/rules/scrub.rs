//! The online scrub's place in the metadata: one cursor, advanced by
//! compare-and-set, so that nodes sharing a store each claim the next
//! batch of objects and no batch is scrubbed twice in a pass.

use serde::{Deserialize, Serialize};

use crate::error::Code;
use crate::store::txn::*;

const CURSOR: &str = "scrub";

/// Where the scrub stands: the pass under way (or the last one), and the
/// last object a node claimed in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubCursor {
    pub pass_started_ms: i64,
    /// `(bucket, key)` of the last object claimed; `None` at the start.
    pub at: Option<(String, String)>,
    /// When the pass ended (every object claimed).
    pub finished_ms: Option<i64>,
}

pub struct GetScrubCursor;

impl Query for GetScrubCursor {
    type Output = Option<ScrubCursor>;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<Option<ScrubCursor>> {
        let raw = txn.setting(CURSOR).await?;
        Ok(raw.and_then(|raw| serde_json::from_slice(&raw).ok()))
    }
}

/// Moves the cursor from `seen` to `next`; refused (`ConditionalRequestConflict`)
/// when another node moved it first.
pub struct MoveScrubCursor {
    pub seen: Option<ScrubCursor>,
    pub next: ScrubCursor,
}

impl Change for MoveScrubCursor {
    type Plan = Vec<u8>;
    type Output = ();

    async fn check<R: Reads>(&self, txn: &mut R) -> Checked<Vec<u8>> {
        let now = GetScrubCursor.run(txn).await?;
        if now != self.seen {
            return Err(Code::ConditionalRequestConflict.into());
        }
        serde_json::to_vec(&self.next)
            .map_err(|e| Stop::Fault(Fault::new(format!("scrub cursor: {e}"))))
    }

    async fn apply<W: Writes>(&self, value: Vec<u8>, txn: &mut W) -> Done<()> {
        txn.put_setting(CURSOR, &value).await
    }
}
