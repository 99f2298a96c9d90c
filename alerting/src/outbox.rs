//! The durable outbox: every notification is written here (one fsynced file per delivery to one
//! target) before anything is sent, and removed only once delivered or given up on (then it
//! moves to `failed/`, where it stays visible). A restart resumes every pending delivery; in a
//! cluster the outbox is in the bucket ([`Place`]), so the next leader delivers what the last
//! one had not.

use std::collections::BTreeMap;
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
    pending: Mutex<BTreeMap<String, Entry>>,
    wake: tokio::sync::Notify,
}

impl Outbox {
    /// Opens `place` (a directory is created) and loads every pending entry. Blocks.
    pub fn open(place: Place) -> std::io::Result<Outbox> {
        let failed = place.child("failed");
        let mut pending = BTreeMap::new();
        for (name, bytes) in place.read_many(&place.json_names()?)? {
            let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", place.describe(&name)))
            })?;
            pending.insert(entry.id.clone(), entry);
        }
        Ok(Outbox { place, failed, pending: Mutex::new(pending), wake: Default::default() })
    }

    /// Stores new entries durably; an entry whose id is already pending is left as it is (an
    /// evaluation repeated after a crash). Returns how many were new.
    pub fn put(&self, entries: Vec<Entry>) -> std::io::Result<usize> {
        let mut added = 0;
        for e in entries {
            if self.pending.lock().expect("outbox lock").contains_key(&e.id) {
                continue;
            }
            // Written atomically: a crash mid-write must not leave a torn entry that stops the
            // next start.
            write_entry(&self.place, &e)?;
            self.pending.lock().expect("outbox lock").insert(e.id.clone(), e);
            added += 1;
        }
        if added > 0 {
            self.wake.notify_one();
        }
        Ok(added)
    }

    /// Records an attempt's outcome on a pending entry.
    pub fn update(&self, e: &Entry) -> std::io::Result<()> {
        write_entry(&self.place, e)?;
        self.pending.lock().expect("outbox lock").insert(e.id.clone(), e.clone());
        Ok(())
    }

    /// Delivered: the entry is gone.
    pub fn complete(&self, id: &str) -> std::io::Result<()> {
        self.place.remove(&format!("{id}.json"))?;
        self.pending.lock().expect("outbox lock").remove(id);
        Ok(())
    }

    /// Given up on: the entry moves to `failed/`, where it stays visible.
    pub fn fail(&self, e: &Entry) -> std::io::Result<()> {
        write_entry(&self.failed, e)?;
        self.complete(&e.id)
    }

    /// Pending entries due at `now_us`, oldest first, leaving out `busy` ones.
    pub fn due(&self, now_us: i64, busy: &std::collections::HashSet<String>, limit: usize) -> Vec<Entry> {
        let pending = self.pending.lock().expect("outbox lock");
        let mut due: Vec<Entry> =
            pending.values().filter(|e| e.next_attempt_us <= now_us && !busy.contains(&e.id)).cloned().collect();
        due.sort_by_key(|e| (e.next_attempt_us, e.created_us));
        due.truncate(limit);
        due
    }

    /// When the next pending entry not in `busy` is due.
    pub fn next_due(&self, busy: &std::collections::HashSet<String>) -> Option<i64> {
        let pending = self.pending.lock().expect("outbox lock");
        pending.values().filter(|e| !busy.contains(&e.id)).map(|e| e.next_attempt_us).min()
    }

    pub fn depth(&self) -> usize {
        self.pending.lock().expect("outbox lock").len()
    }

    pub fn pending(&self) -> Vec<Entry> {
        self.pending.lock().expect("outbox lock").values().cloned().collect()
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
        self.pending.lock().expect("outbox lock").insert(entry.id.clone(), entry.clone());
        self.failed.remove(&name)?;
        self.wake.notify_one();
        Ok(Some(entry))
    }

    /// Resolves when an entry was added.
    pub async fn added(&self) {
        self.wake.notified().await
    }
}

/// `<id>.json` in `place`, replaced atomically and durably.
fn write_entry(place: &Place, e: &Entry) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(e).expect("an outbox entry serialises");
    place.write(&format!("{}.json", e.id), &bytes)
}
