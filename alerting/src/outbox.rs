//! The durable outbox: every notification is written here (one fsynced file per delivery to one
//! target) before anything is sent, and removed only once delivered or given up on (then it
//! moves to `failed/`, where it stays visible). A restart resumes every pending delivery; in a
//! cluster the outbox is in the bucket ([`Place`]), so the next leader delivers what the last
//! one had not.
//!
//! An entry is *held* (stored, not delivered) from [`Outbox::put`] until the evaluation that
//! raised it is committed, its rule's state saved ([`Outbox::release`]). A crash in between
//! repeats the evaluation, which raises the same ids: holding them means the repeat finds them
//! still pending, so each is delivered once, never once before and once after the crash.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::notify::EmailContent;
use crate::place::Place;
use crate::rule::{Email, Webhook};

/// One notification for one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The file name: the notification id, the action group and the target's position.
    pub id: String,
    /// The notification's id, sent as `Idempotency-Key` on every attempt.
    pub notification_id: String,
    pub rule: String,
    pub kind: String,
    pub group: String,
    pub target: Target,
    pub created_us: i64,
    /// No attempt after this instant: the delivery is then recorded as failed.
    pub deadline_us: i64,
    pub attempts: u32,
    pub next_attempt_us: i64,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Target {
    Webhook {
        webhook: Webhook,
        /// The exact bytes sent (and signed) on every attempt.
        body: String,
    },
    Email {
        email: Email,
        content: EmailContent,
    },
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "Webhook",
            Target::Email { .. } => "Email",
        }
    }

    /// Where it goes, without credentials.
    pub fn describe(&self) -> String {
        match self {
            Target::Webhook { webhook, .. } => match url::Url::parse(&webhook.url) {
                Ok(mut u) => {
                    let _ = u.set_password(None);
                    let _ = u.set_username("");
                    u.set_query(None);
                    u.to_string()
                }
                Err(_) => webhook.url.clone(),
            },
            Target::Email { email, .. } => {
                format!("smtp://{}:{} to {}", email.smtp_host, email.smtp_port, email.to.join(", "))
            }
        }
    }
}

pub struct Outbox {
    place: Place,
    failed: Place,
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
}

/// The entries not yet delivered or given up on, by id.
#[derive(Default)]
struct Pending {
    entries: BTreeMap<String, Entry>,
    /// Ids stored but not to be delivered yet: their evaluation is not committed.
    held: HashSet<String>,
}

impl Pending {
    /// Entries that may be attempted: neither held nor `busy`.
    fn deliverable<'a>(&'a self, busy: &'a HashSet<String>) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.values().filter(|e| !self.held.contains(&e.id) && !busy.contains(&e.id))
    }
}

impl Outbox {
    /// Opens `place` (a directory is created) and loads every pending entry. Blocks.
    pub fn open(place: Place) -> std::io::Result<Outbox> {
        let failed = place.child("failed");
        let mut pending = Pending::default();
        for (name, bytes) in place.read_many(&place.json_names()?)? {
            let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", place.describe(&name)))
            })?;
            pending.entries.insert(entry.id.clone(), entry);
        }
        Ok(Outbox { place, failed, pending: Mutex::new(pending), wake: Default::default() })
    }

    /// Stores new entries durably, held until [`Outbox::release`] of their rule; an entry whose
    /// id is already pending is left as it is (an evaluation repeated after a crash). Returns
    /// how many were new.
    pub fn put(&self, entries: Vec<Entry>) -> std::io::Result<usize> {
        let mut added = 0;
        for e in entries {
            if self.pending.lock().expect("outbox lock").entries.contains_key(&e.id) {
                continue;
            }
            // Written atomically: a crash mid-write must not leave a torn entry that stops the
            // next start.
            write_entry(&self.place, &e)?;
            let mut pending = self.pending.lock().expect("outbox lock");
            pending.held.insert(e.id.clone());
            pending.entries.insert(e.id.clone(), e);
            added += 1;
        }
        Ok(added)
    }

    /// Holds the pending entries `uncommitted` says were raised by an evaluation whose rule
    /// state was not saved (found at a start, after a crash). Returns how many.
    pub fn hold(&self, uncommitted: impl Fn(&Entry) -> bool) -> usize {
        let mut pending = self.pending.lock().expect("outbox lock");
        let ids: Vec<String> = pending.entries.values().filter(|e| uncommitted(e)).map(|e| e.id.clone()).collect();
        pending.held.extend(ids.iter().cloned());
        ids.len()
    }

    /// Rule `rule`'s evaluation is committed: its held entries may be delivered.
    pub fn release(&self, rule: &str) {
        let mut pending = self.pending.lock().expect("outbox lock");
        let Pending { entries, held } = &mut *pending;
        let before = held.len();
        held.retain(|id| entries.get(id).is_some_and(|e| e.rule != rule));
        if held.len() < before {
            self.wake.notify_one();
        }
    }

    /// Records an attempt's outcome on a pending entry.
    pub fn update(&self, e: &Entry) -> std::io::Result<()> {
        write_entry(&self.place, e)?;
        self.pending.lock().expect("outbox lock").entries.insert(e.id.clone(), e.clone());
        Ok(())
    }

    /// Delivered: the entry is gone.
    pub fn complete(&self, id: &str) -> std::io::Result<()> {
        self.place.remove(&format!("{id}.json"))?;
        let mut pending = self.pending.lock().expect("outbox lock");
        pending.entries.remove(id);
        pending.held.remove(id);
        Ok(())
    }

    /// Given up on: the entry moves to `failed/`, where it stays visible.
    pub fn fail(&self, e: &Entry) -> std::io::Result<()> {
        write_entry(&self.failed, e)?;
        self.complete(&e.id)
    }

    /// Pending entries due at `now_us`, oldest first, leaving out held and `busy` ones.
    pub fn due(&self, now_us: i64, busy: &HashSet<String>, limit: usize) -> Vec<Entry> {
        let pending = self.pending.lock().expect("outbox lock");
        let mut due: Vec<Entry> = pending.deliverable(busy).filter(|e| e.next_attempt_us <= now_us).cloned().collect();
        due.sort_by_key(|e| (e.next_attempt_us, e.created_us));
        due.truncate(limit);
        due
    }

    /// When the next pending entry neither held nor in `busy` is due.
    pub fn next_due(&self, busy: &HashSet<String>) -> Option<i64> {
        let pending = self.pending.lock().expect("outbox lock");
        pending.deliverable(busy).map(|e| e.next_attempt_us).min()
    }

    /// Pending entries, held ones included.
    pub fn depth(&self) -> usize {
        self.pending.lock().expect("outbox lock").entries.len()
    }

    /// Pending entries, held ones included.
    pub fn pending(&self) -> Vec<Entry> {
        self.pending.lock().expect("outbox lock").entries.values().cloned().collect()
    }

    /// Deliveries given up on, newest first.
    pub fn failed(&self) -> std::io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for (_, bytes) in self.failed.read_many(&self.failed.json_names()?)? {
            if let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) {
                out.push(entry);
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.created_us));
        Ok(out)
    }

    /// A delivery given up on goes back to the pending entries, due now, with a new deadline
    /// `retry_for_us` from now (a person asked to try again). Its attempts keep counting.
    pub fn retry(&self, id: &str, now_us: i64, retry_for_us: i64) -> std::io::Result<Option<Entry>> {
        let name = format!("{id}.json");
        let Some(bytes) = self.failed.read(&name)? else { return Ok(None) };
        let mut entry: Entry = serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", self.failed.describe(&name)))
        })?;
        entry.next_attempt_us = now_us;
        entry.deadline_us = now_us + retry_for_us;
        // Pending first, then out of failed/: a crash between the two shows it in both, never
        // in neither.
        write_entry(&self.place, &entry)?;
        self.pending.lock().expect("outbox lock").entries.insert(entry.id.clone(), entry.clone());
        self.failed.remove(&name)?;
        self.wake.notify_one();
        Ok(Some(entry))
    }

    /// Resolves when an entry may be delivered (released or retried).
    pub async fn added(&self) {
        self.wake.notified().await
    }
}

/// `<id>.json` in `place`, replaced atomically and durably.
fn write_entry(place: &Place, e: &Entry) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(e).expect("an outbox entry serialises");
    place.write(&format!("{}.json", e.id), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, rule: &str, created_us: i64) -> Entry {
        let webhook = Webhook { url: "http://127.0.0.1:9/hook".into(), headers: BTreeMap::new(), secret: None };
        Entry {
            id: id.into(),
            notification_id: id.into(),
            rule: rule.into(),
            kind: "Fired".into(),
            group: "ops".into(),
            target: Target::Webhook { webhook, body: "{}".into() },
            created_us,
            deadline_us: i64::MAX,
            attempts: 0,
            next_attempt_us: 0,
            last_error: None,
            last_status: None,
        }
    }

    fn due_ids(outbox: &Outbox) -> Vec<String> {
        outbox.due(i64::MAX, &HashSet::new(), 10).into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn an_entry_is_delivered_only_once_its_rule_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(Place::Dir(dir.path().to_path_buf())).unwrap();
        assert_eq!(outbox.put(vec![entry("a", "r1", 10), entry("b", "r2", 10)]).unwrap(), 2);
        assert_eq!(outbox.depth(), 2, "held entries are pending");
        assert!(due_ids(&outbox).is_empty(), "nothing is delivered before the evaluation is committed");
        assert_eq!(outbox.next_due(&HashSet::new()), None);

        outbox.release("r1");
        assert_eq!(due_ids(&outbox), ["a"]);
        // The same evaluation repeated: the pending entry is kept as it is.
        assert_eq!(outbox.put(vec![entry("a", "r1", 20)]).unwrap(), 0);
        assert_eq!(due_ids(&outbox), ["a"]);
        outbox.complete("a").unwrap();
        outbox.release("r2");
        assert_eq!(due_ids(&outbox), ["b"]);
    }

    #[test]
    fn entries_of_an_interrupted_evaluation_are_held_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(Place::Dir(dir.path().to_path_buf())).unwrap();
        outbox.put(vec![entry("committed", "r1", 10), entry("interrupted", "r1", 20)]).unwrap();

        let reopened = Outbox::open(Place::Dir(dir.path().to_path_buf())).unwrap();
        assert_eq!(due_ids(&reopened).len(), 2, "a reopened outbox holds nothing by itself");
        assert_eq!(reopened.hold(|e| e.created_us > 10), 1);
        assert_eq!(due_ids(&reopened), ["committed"]);
        reopened.release("r1");
        assert_eq!(due_ids(&reopened), ["committed", "interrupted"]);
    }
}
