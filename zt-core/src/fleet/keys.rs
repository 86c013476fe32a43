//! Key-set changes told across the fleet.
//!
//! Each replica refreshes an issuer's remote key set when its copy expires (its
//! `Cache-Control: max-age`, clamped to `remote_keys.refresh_floor ..= refresh_ceiling`;
//! cached tokens trigger that refresh too). When a refresh finds a published key removed,
//! the replica bumps the issuer's change counter (`{prefix}:v1:keys:{issuer digest}`) and
//! announces it on the bus; the others refresh at once (at most once per refresh floor, so
//! the issuer never sees a fetch storm), and their cached tokens signed by the removed key
//! are refused from then on. A replica that missed the announcement sees the counter move
//! at its next resync. Bound on a removed key verifying cached tokens anywhere: the first
//! replica's refresh, plus one `sync_interval` (or the floor, when a replica fetched
//! within it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::{Fleet, FleetError, FleetListener};
use crate::keys::{KeySource, RemoteKeys};
use crate::token::Verifier;

/// The bus topic of key-set changes.
const TOPIC: &str = "keys";

/// The change counter's key for an issuer: a digest, so key names carry no URL.
fn counter_key(fleet: &Fleet, issuer: &str) -> String {
    let digest = Sha256::digest(issuer.as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    fleet.key(&format!("keys:{hex}"))
}

struct KeysListener {
    remotes: Vec<Arc<RemoteKeys>>,
    /// The last change counter seen per issuer (index into `remotes`).
    seen: Arc<Mutex<HashMap<usize, i64>>>,
}

/// Announces key removals found by this replica and follows those found by the others,
/// for every issuer with a remote key set.
pub(crate) fn share_key_changes(verifier: &Verifier, fleet: &Fleet) {
    let remotes: Vec<Arc<RemoteKeys>> = verifier
        .issuers
        .iter()
        .filter_map(|issuer| match &issuer.keys {
            KeySource::Remote(remote) => Some(remote.clone()),
            KeySource::Static(_) => None,
        })
        .collect();
    if remotes.is_empty() {
        return;
    }
    for remote in &remotes {
        let fleet = fleet.clone();
        remote.on_removal(Box::new(move |issuer: &str| announce(&fleet, issuer)));
    }
    fleet.listen(TOPIC, Arc::new(KeysListener { remotes, seen: Arc::new(Mutex::new(HashMap::new())) }));
}

fn announce(fleet: &Fleet, issuer: &str) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let fleet = fleet.clone();
    let issuer = issuer.to_string();
    runtime.spawn(async move {
        let mut bump = redis::pipe();
        bump.atomic()
            .cmd("INCR")
            .arg(counter_key(&fleet, &issuer))
            .ignore()
            .cmd("PUBLISH")
            .arg(fleet.key("bus"))
            .arg(fleet.envelope(TOPIC, &issuer))
            .ignore();
        if let Err(e) = fleet.pipeline::<()>(&bump).await {
            // The others still refresh at their own expiry; say so.
            tracing::warn!(target: "zt::fleet", issuer = %issuer, error.type = e.cause(), "could not tell the fleet that a key was removed");
        }
    });
}

impl FleetListener for KeysListener {
    fn on_message(&self, issuer: &str) {
        for remote in self.remotes.iter().filter(|r| r.issuer() == issuer) {
            remote.changed_elsewhere();
        }
    }

    fn resync(&self, fleet: Fleet) -> BoxFuture<'static, Result<(), FleetError>> {
        let keys: Vec<String> = self.remotes.iter().map(|r| counter_key(&fleet, r.issuer())).collect();
        let remotes = self.remotes.clone();
        let seen = self.seen.clone();
        Box::pin(async move {
            let mut get = redis::cmd("MGET");
            get.arg(&keys);
            let counters: Vec<Option<i64>> = fleet.query(&get).await?;
            let mut seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (index, counter) in counters.into_iter().enumerate() {
                let counter = counter.unwrap_or(0);
                match seen.get(&index) {
                    // First look: remember where the fleet is.
                    None => {
                        seen.insert(index, counter);
                    }
                    // Moved since: refresh (or ask again next time, inside the floor).
                    Some(&last) if last != counter => {
                        if remotes.get(index).is_some_and(|remote| remote.changed_elsewhere()) {
                            seen.insert(index, counter);
                        }
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        })
    }
}
