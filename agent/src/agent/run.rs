//! The agent's loop: timers (scans, heartbeat, inventory, snapshot, configuration polls),
//! inotify events checked after a debounce, and a new group configuration put in effect.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::watch;

use super::events::{self, EventSender};
use super::{Agent, report_coverage};
use crate::central::{self, Polled};
use crate::config::AgentConfig;
use crate::scan::{self, ScanError};

/// Watches every enabled item; events (and errors) go to `sender`.
fn watcher(cfg: &AgentConfig, sender: EventSender) -> (Option<notify::RecommendedWatcher>, Vec<ScanError>) {
    let mut errors = Vec::new();
    let mut w = match notify::recommended_watcher(move |ev| sender.offer(ev)) {
        Ok(w) => w,
        Err(e) => {
            errors.push(ScanError {
                path: "/".into(),
                item: String::new(),
                message: format!("cannot watch in real time: {e}"),
            });
            return (None, errors);
        }
    };
    let mut watched = HashSet::new();
    for item in cfg.items.iter().filter(|i| i.enabled) {
        let (root, recursive) = scan::watch_root(item);
        if !root.exists() || !watched.insert((root.clone(), recursive)) {
            continue;
        }
        let mode = if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        if let Err(e) = w.watch(&root, mode) {
            errors.push(ScanError {
                path: root.to_string_lossy().into_owned(),
                item: item.name.clone(),
                message: format!("real-time watch failed ({e}); covered by scheduled scans only until the next scan"),
            });
        }
    }
    (Some(w), errors)
}

/// Runs the agent until `stop`.
pub async fn run(agent: Arc<Agent>, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let client = agent.http_client()?;
    if !agent.local.config_poll.is_zero() {
        // At start: the group's configuration before the first scan (or the last fetched one).
        poll_configuration(&agent, &client).await;
    }
    let sender = tokio::spawn(agent.clone().sender(stop.clone()));
    let (tx, mut queue) = events::queue(agent.local.realtime_queue_events);
    let mut watch_handle = None;
    let mut scan_tick = tokio::time::interval(agent.cfg().scan_interval);
    let mut heartbeat_tick = tokio::time::interval(agent.local.heartbeat_interval);
    let mut snapshot_tick = tokio::time::interval(Duration::from_secs(300));
    let mut inventory_tick = tokio::time::interval(agent.cfg().inventory_interval);
    let poll_every = agent.local.config_poll;
    let mut config_tick = interval_after(poll_every.max(Duration::from_secs(1)));
    let mut pending = Pending::new(agent.local.debounce);
    let mut rescan = false;
    let mut reconfigured = false;
    loop {
        let debounce = pending.due();
        tokio::select! {
            _ = scan_tick.tick() => rescan = true,
            _ = heartbeat_tick.tick() => {
                if let Err(e) = agent.heartbeat() {
                    tracing::error!(error = %e, "spooling the heartbeat");
                }
            }
            _ = inventory_tick.tick() => {
                let a = agent.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || a.inventory()).await? {
                    tracing::error!(error = %e, "daemon and software inventory");
                }
            }
            _ = snapshot_tick.tick() => {
                if agent.snapshot_due() {
                    let a = agent.clone();
                    match tokio::task::spawn_blocking(move || a.snapshot()).await? {
                        Ok(n) => tracing::info!(files = n, "snapshot spooled"),
                        Err(e) => tracing::error!(error = %e, "snapshot"),
                    }
                }
            }
            // Events wait in their bounded queue while the paths pending are due.
            Some(ev) = queue.events.recv(), if !pending.is_full() => rescan |= on_watch_event(&agent, ev, &mut pending),
            _ = queue.overflowed.notified() => {
                events_lost(&agent, "real-time event queue full");
                rescan = true;
            }
            _ = debounce => {
                let paths = pending.take();
                let a = agent.clone();
                match tokio::task::spawn_blocking(move || a.check_paths(&paths)).await? {
                    Ok(o) if o.changes > 0 => tracing::info!(changes = o.changes, "real-time changes"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "real-time check failed; the next scan covers it"),
                }
            }
            _ = config_tick.tick(), if !poll_every.is_zero() => {
                reconfigured = poll_configuration(&agent, &client).await;
            }
            _ = stop.changed() => break,
        }
        if reconfigured {
            // The new settings' intervals and watches; the next scan runs one interval from now.
            reconfigured = false;
            let cfg = agent.cfg();
            scan_tick = interval_after(cfg.scan_interval);
            inventory_tick = interval_after(cfg.inventory_interval);
            watch_handle = None;
            if cfg.realtime {
                watch_handle = start_watching(&agent, &tx);
            }
        }
        if rescan {
            rescan = false;
            // The scan starts after every event waiting now and the paths pending: it covers them.
            let discarded = queue.discard_waiting() + pending.take().len();
            tracing::debug!(discarded, "events and paths covered by the full scan");
            if agent.cfg().realtime && watch_handle.is_none() {
                watch_handle = start_watching(&agent, &tx);
            }
            scan_now(&agent).await?;
        }
    }
    drop(watch_handle);
    let _ = sender.await;
    Ok(())
}

/// Paths real-time events named, waiting to be checked: at most `debounce` after the first
/// of them (continuous writes to one file do not hold the others back), or at once when
/// [`Pending::MAX_PATHS`] are waiting (a burst is checked in bounded parts).
struct Pending {
    paths: BTreeSet<PathBuf>,
    debounce: Duration,
    /// When the paths waiting are checked.
    due: Option<tokio::time::Instant>,
}

impl Pending {
    const MAX_PATHS: usize = 4 * super::compare::STEP_PATHS;

    fn new(debounce: Duration) -> Pending {
        Pending { paths: BTreeSet::new(), debounce, due: None }
    }

    fn extend(&mut self, paths: Vec<PathBuf>) {
        self.paths.extend(paths);
        if self.is_full() {
            self.due = Some(tokio::time::Instant::now());
        } else if !self.paths.is_empty() && self.due.is_none() {
            self.due = Some(tokio::time::Instant::now() + self.debounce);
        }
    }

    /// Completes when the paths waiting are due to be checked; never while none are.
    fn due(&self) -> impl Future<Output = ()> + use<> {
        let due = self.due;
        async move {
            match due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Whether as many paths wait as are checked at once.
    fn is_full(&self) -> bool {
        self.paths.len() >= Self::MAX_PATHS
    }

    fn take(&mut self) -> BTreeSet<PathBuf> {
        self.due = None;
        std::mem::take(&mut self.paths)
    }
}

/// Takes one event of the watcher: the paths to check go to `pending`. Whether a full scan must
/// run (events were lost).
fn on_watch_event(agent: &Agent, event: notify::Result<notify::Event>, pending: &mut Pending) -> bool {
    match event {
        Ok(ev) if ev.need_rescan() => {
            events_lost(agent, "inotify queue overflow");
            true
        }
        Ok(ev) => {
            pending.extend(ev.paths);
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "watch error: rescanning now");
            let path = e.paths.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
            report_coverage(agent, &path, &format!("real-time watch error: {e}; a full scan runs now"));
            true
        }
    }
}

/// File events were dropped (`cause`: the kernel's queue or the agent's own overflowed): said in
/// the log and in a coverage record; the caller runs a full scan, which finds what they named.
fn events_lost(agent: &Agent, cause: &str) {
    tracing::warn!(cause, "file events were lost: rescanning now");
    report_coverage(agent, "/", &format!("{cause}: events were lost; a full scan runs now"));
}

/// A full scan, off the runtime's threads.
async fn scan_now(agent: &Arc<Agent>) -> anyhow::Result<()> {
    let a = agent.clone();
    let started = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || a.full_scan(true, &mut |_| {})).await? {
        Ok(o) => {
            tracing::info!(files = o.files, changes = o.changes, first = o.first, took = ?started.elapsed(), "scan")
        }
        Err(e) => tracing::error!(error = %e, "scan failed; retried at the next interval"),
    }
    Ok(())
}

/// An interval whose first tick is one `period` from now.
fn interval_after(period: Duration) -> tokio::time::Interval {
    tokio::time::interval_at(tokio::time::Instant::now() + period, period)
}

/// Watches the items of the configuration in effect; what cannot be watched is reported.
fn start_watching(agent: &Agent, tx: &EventSender) -> Option<notify::RecommendedWatcher> {
    let (w, errors) = watcher(&agent.cfg(), tx.clone());
    for e in &errors {
        report_coverage(agent, &e.path, &e.message);
    }
    w
}

/// Asks the server for the group's configuration and applies a new one; whether the
/// configuration in effect changed. A server that cannot be asked changes nothing.
async fn poll_configuration(agent: &Arc<Agent>, client: &reqwest::Client) -> bool {
    let applied = agent.applied();
    let api_key = agent.api_key.lock().expect("api key lock").clone();
    let etag = applied.as_ref().map(|a| a.etag.as_str());
    let polled = central::poll(client, &agent.local.server, api_key.as_deref(), etag).await;
    let a = agent.clone();
    let outcome = match polled {
        Polled::Unchanged => return false,
        Polled::NoConfiguration if applied.is_none() => return false,
        Polled::Failed(message) => {
            tracing::warn!(error = %message, "cannot fetch the group's configuration; keeping the one in effect");
            return false;
        }
        Polled::NoConfiguration => tokio::task::spawn_blocking(move || a.forget_central().map(|()| true)).await,
        Polled::New(fetched) => tokio::task::spawn_blocking(move || a.apply_central(fetched)).await,
    };
    match outcome {
        Ok(Ok(changed)) => changed,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "applying the group's configuration");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "applying the group's configuration panicked");
            false
        }
    }
}
