//! Delivery of the outbox: webhooks (reqwest) and email (lettre), at least once, each attempt
//! recorded in `AlertDelivery`.
//!
//! An entry is retried with the clients' one policy (`fimlake_client::retry`: exponential backoff
//! with jitter) on
//! connection errors, timeouts, `408`, `429` and `5xx` (a `Retry-After` answer waits at least
//! that long) and on transient SMTP errors, until its deadline (`retry_for`, 24 h by default);
//! other answers are permanent failures. Every attempt of an entry carries the same
//! `Idempotency-Key`, and a webhook with a secret gets `X-Fimlake-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the exact body.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::Audit;
use crate::metrics::Metrics;
use crate::outbox::{Entry, Outbox, Target};
use crate::rule::{Email, TlsMode, Webhook};

pub const SIGNATURE_HEADER: &str = "X-Fimlake-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// How long a notification is retried before it is recorded as failed.
    #[serde(with = "fimlake_settings::duration")]
    pub retry_for: Duration,
    /// One attempt's limit (connect, send, answer).
    #[serde(with = "fimlake_settings::duration")]
    pub attempt_timeout: Duration,
    /// The first retry's delay; each next one doubles, up to `max_retry_delay`.
    #[serde(with = "fimlake_settings::duration")]
    pub min_retry_delay: Duration,
    #[serde(with = "fimlake_settings::duration")]
    pub max_retry_delay: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_for: Duration::from_secs(24 * 3600),
            attempt_timeout: Duration::from_secs(10),
            min_retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(600),
            concurrency: 8,
        }
    }
}

/// What one attempt came to.
#[derive(Debug)]
enum Outcome {
    Delivered { status: Option<u16> },
    Retry { status: Option<u16>, error: String, retry_after: Option<Duration> },
    Permanent { status: Option<u16>, error: String },
}

/// Where an entry goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Delivered,
    Retrying {
        next: i64,
    },
    /// Given up on: a permanent answer, or no time left before the deadline.
    Failed,
}

impl Step {
    /// `AlertDelivery.Status`.
    fn status(self) -> &'static str {
        match self {
            Step::Delivered => "Delivered",
            Step::Retrying { .. } => "Retrying",
            Step::Failed => "Failed",
        }
    }

    /// The `result` label of `fimlake_notifications_total`.
    fn metric(self) -> &'static str {
        match self {
            Step::Delivered => "delivered",
            Step::Retrying { .. } => "retried",
            Step::Failed => "failed",
        }
    }
}

pub struct Deliverer {
    outbox: Arc<Outbox>,
    http: reqwest::Client,
    cfg: DeliveryConfig,
    metrics: Metrics,
    audit: Audit,
    busy: Mutex<HashSet<String>>,
    gate: crate::gate::Gate,
}

impl Deliverer {
    pub fn new(
        outbox: Arc<Outbox>,
        cfg: DeliveryConfig,
        metrics: Metrics,
        audit: Audit,
        gate: crate::gate::Gate,
    ) -> Arc<Deliverer> {
        let http = reqwest::Client::builder()
            .timeout(cfg.attempt_timeout)
            .connect_timeout(cfg.attempt_timeout)
            .user_agent(concat!("fimlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client with rustls builds");
        metrics.outbox_depth.set(outbox.depth() as i64);
        Arc::new(Deliverer { outbox, http, cfg, metrics, audit, busy: Mutex::default(), gate })
    }

    /// Delivers until `stop` turns true: due entries at once, up to `concurrency` in flight.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            if !self.gate.open() {
                tokio::select! {
                    _ = tokio::time::sleep(crate::gate::CLOSED_WAIT) => continue,
                    _ = stop.changed() => break,
                }
            }
            let now = chrono::Utc::now().timestamp_micros();
            let free = self.cfg.concurrency.saturating_sub(tasks.len());
            let due = {
                let busy = self.busy.lock().expect("busy lock");
                self.outbox.due(now, &busy, free)
            };
            for entry in due {
                self.busy.lock().expect("busy lock").insert(entry.id.clone());
                let me = self.clone();
                tasks.spawn(async move {
                    let id = entry.id.clone();
                    me.attempt(entry).await;
                    me.busy.lock().expect("busy lock").remove(&id);
                });
            }
            let next = self.outbox.next_due(&self.busy.lock().expect("busy lock"));
            let wait = match next {
                Some(t) if tasks.len() < self.cfg.concurrency => {
                    Duration::from_micros((t - chrono::Utc::now().timestamp_micros()).max(0) as u64)
                }
                _ => Duration::from_secs(60),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.outbox.added() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = stop.changed() => break,
            }
        }
        tasks.abort_all();
    }

    /// One attempt of `entry`, its outcome recorded in the outbox, the audit trail and metrics.
    async fn attempt(&self, mut entry: Entry) {
        let started = Instant::now();
        let outcome = match &entry.target {
            Target::Webhook { webhook, body } => self.post(webhook, body, &entry.notification_id).await,
            Target::Email { email, content } => self.mail(email, content, &entry.notification_id).await,
        };
        let took = started.elapsed();
        entry.attempts += 1;
        let now = chrono::Utc::now().timestamp_micros();
        let (step, status, error) = match outcome {
            Outcome::Delivered { status } => (Step::Delivered, status, None),
            Outcome::Permanent { status, error } => (Step::Failed, status, Some(error)),
            Outcome::Retry { status, error, retry_after } => {
                let delay = self.backoff(entry.attempts).max(retry_after.unwrap_or_default());
                let next = now + delay.as_micros() as i64;
                if next > entry.deadline_us {
                    let error = format!(
                        "{error}; gave up after {} attempts (retry_for {})",
                        entry.attempts,
                        humantime::format_duration(self.cfg.retry_for)
                    );
                    (Step::Failed, status, Some(error))
                } else {
                    (Step::Retrying { next }, status, Some(error))
                }
            }
        };
        entry.last_status = status;
        entry.last_error = error.clone();
        if let Step::Retrying { next } = step {
            entry.next_attempt_us = next;
        }
        // Files are fsynced: off the runtime's threads.
        let (outbox, stored_entry) = (self.outbox.clone(), entry.clone());
        let stored = tokio::task::spawn_blocking(move || match step {
            Step::Delivered => outbox.complete(&stored_entry.id),
            Step::Retrying { .. } => outbox.update(&stored_entry),
            Step::Failed => outbox.fail(&stored_entry),
        })
        .await
        .expect("outbox write panicked");
        if let Err(e) = stored {
            // The entry stays pending in memory and on disk as it was: it is attempted again.
            tracing::error!(entry = %entry.id, error = %e, "cannot record a delivery attempt in the outbox");
        }
        if step == Step::Failed {
            tracing::error!(rule = %entry.rule, target = %entry.target.describe(), error = ?error, "notification failed permanently");
        }
        self.metrics.notifications.with_label_values(&[step.metric()]).inc();
        self.metrics.outbox_depth.set(self.outbox.depth() as i64);
        let mut row = json!({
            "RuleName": entry.rule,
            "NotificationId": entry.notification_id,
            "NotificationKind": entry.kind,
            "TargetType": entry.target.kind(),
            "Target": entry.target.describe(),
            "Attempt": entry.attempts,
            "Status": step.status(),
            "HttpStatus": status,
            "Error": error,
            "DurationMs": took.as_secs_f64() * 1000.0,
        });
        if let Step::Retrying { next } = step {
            row["NextAttempt"] = json!(crate::notify::datetime(next));
        }
        self.audit.record("AlertDelivery", vec![row]).await;
    }

    /// The delay before attempt `attempts + 1`: the clients' one backoff policy
    /// (`fimlake_client::retry::Backoff`, exponential with jitter).
    fn backoff(&self, attempts: u32) -> Duration {
        let policy = fimlake_client::retry::Backoff { min: self.cfg.min_retry_delay, max: self.cfg.max_retry_delay };
        policy.delay(attempts as usize, None)
    }

    async fn post(&self, w: &Webhook, body: &str, key: &str) -> Outcome {
        let mut req = self
            .http
            .post(&w.url)
            .header("content-type", "application/json")
            .header(IDEMPOTENCY_HEADER, key)
            .body(body.to_string());
        for (k, v) in &w.headers {
            req = req.header(k, v);
        }
        if let Some(secret) = &w.secret {
            req = req.header(SIGNATURE_HEADER, sign(secret, body.as_bytes()));
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let code = Some(status.as_u16());
                if status.is_success() {
                    return Outcome::Delivered { status: code };
                }
                let retry_after = fimlake_client::retry::retry_after(resp.headers());
                let text: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
                let error = format!("HTTP {status}: {text}");
                if fimlake_client::retry::transient(status.as_u16()) {
                    Outcome::Retry { status: code, error, retry_after }
                } else {
                    Outcome::Permanent { status: code, error }
                }
            }
            Err(e) => {
                let error = if e.is_timeout() {
                    format!("no answer within {:?}", self.cfg.attempt_timeout)
                } else {
                    format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default())
                };
                if fimlake_client::retry::transient_error(&e) {
                    Outcome::Retry { status: None, error, retry_after: None }
                } else {
                    Outcome::Permanent { status: None, error }
                }
            }
        }
    }

    async fn mail(&self, e: &Email, content: &crate::notify::EmailContent, key: &str) -> Outcome {
        use lettre::message::{Mailbox, MultiPart};
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

        let permanent = |error: String| Outcome::Permanent { status: None, error };
        let from: Mailbox = match e.from.parse() {
            Ok(m) => m,
            Err(err) => return permanent(format!("from address '{}': {err}", e.from)),
        };
        let mut builder =
            Message::builder().from(from).subject(&content.subject).message_id(Some(format!("<{key}@fimlake>")));
        for to in &e.to {
            match to.parse::<Mailbox>() {
                Ok(m) => builder = builder.to(m),
                Err(err) => return permanent(format!("recipient '{to}': {err}")),
            }
        }
        let message =
            match builder.multipart(MultiPart::alternative_plain_html(content.text.clone(), content.html.clone())) {
                Ok(m) => m,
                Err(err) => return permanent(format!("cannot build the message: {err}")),
            };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.smtp_host)
            .port(e.smtp_port)
            .timeout(Some(self.cfg.attempt_timeout));
        if e.tls != TlsMode::None {
            let mut params = TlsParameters::builder(e.smtp_host.clone());
            if let Some(f) = &e.ca_file {
                let cert = match tokio::fs::read(f)
                    .await
                    .map_err(|err| err.to_string())
                    .and_then(|pem| Certificate::from_pem(&pem).map_err(|err| format!("no PEM certificate: {err}")))
                {
                    Ok(c) => c,
                    Err(err) => return permanent(format!("ca_file '{f}': {err}")),
                };
                params = params.add_root_certificate(cert);
            }
            let params = match params.build() {
                Ok(p) => p,
                Err(err) => return permanent(format!("TLS settings for {}: {err}", e.smtp_host)),
            };
            transport =
                transport.tls(if e.tls == TlsMode::Implicit { Tls::Wrapper(params) } else { Tls::Required(params) });
        }
        if let (Some(u), Some(p)) = (&e.username, &e.password) {
            transport = transport.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let transport = transport.build();
        match tokio::time::timeout(self.cfg.attempt_timeout * 2, transport.send(message)).await {
            Ok(Ok(_)) => Outcome::Delivered { status: None },
            Ok(Err(err)) if err.is_permanent() => permanent(format!("SMTP: {err}")),
            Ok(Err(err)) => Outcome::Retry { status: None, error: format!("SMTP: {err}"), retry_after: None },
            Err(_) => Outcome::Retry {
                status: None,
                error: format!("SMTP: no answer within {:?}", self.cfg.attempt_timeout * 2),
                retry_after: None,
            },
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of body with secret>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
