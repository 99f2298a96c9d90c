//! Prometheus metrics of the alerting engine.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    /// Evaluations by rule and result (`ok`, `error`).
    pub evaluations: IntCounterVec,
    pub evaluation_seconds: HistogramVec,
    /// Alerts by rule and monitor condition (`fired`, `resolved`).
    pub alerts: IntCounterVec,
    /// Delivery attempts by result: `delivered`, `retried`, `failed` (given up).
    pub notifications: IntCounterVec,
    pub outbox_depth: IntGauge,
    /// 1 for a rule whose last evaluation failed.
    pub rule_unhealthy: IntGaugeVec,
    /// Seconds between now and the end of the rule's last evaluated window.
    pub rule_lag_seconds: IntGaugeVec,
    pub audit_failures: IntCounter,
}

impl Metrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Metrics> {
        let m = Metrics {
            evaluations: IntCounterVec::new(
                Opts::new("fimlake_alert_evaluations_total", "Alert rule evaluations by rule and result"),
                &["rule", "result"],
            )?,
            evaluation_seconds: HistogramVec::new(
                HistogramOpts::new("fimlake_alert_evaluation_seconds", "Time one alert rule evaluation takes")
                    .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]),
                &["rule"],
            )?,
            alerts: IntCounterVec::new(
                Opts::new("fimlake_alerts_total", "Alerts fired and resolved by rule"),
                &["rule", "condition"],
            )?,
            notifications: IntCounterVec::new(
                Opts::new("fimlake_notifications_total", "Notification delivery attempts by result"),
                &["result"],
            )?,
            outbox_depth: IntGauge::new("fimlake_outbox_depth", "Notifications waiting for delivery")?,
            rule_unhealthy: IntGaugeVec::new(
                Opts::new("fimlake_alert_rule_unhealthy", "1 when the rule's last evaluation failed"),
                &["rule"],
            )?,
            rule_lag_seconds: IntGaugeVec::new(
                Opts::new(
                    "fimlake_alert_rule_lag_seconds",
                    "Seconds since the end of the rule's last evaluated window",
                ),
                &["rule"],
            )?,
            audit_failures: IntCounter::new(
                "fimlake_alert_audit_failures_total",
                "Audit rows (evaluations, alerts, deliveries) that could not be stored",
            )?,
        };
        registry.register(Box::new(m.evaluations.clone()))?;
        registry.register(Box::new(m.evaluation_seconds.clone()))?;
        registry.register(Box::new(m.alerts.clone()))?;
        registry.register(Box::new(m.notifications.clone()))?;
        registry.register(Box::new(m.outbox_depth.clone()))?;
        registry.register(Box::new(m.rule_unhealthy.clone()))?;
        registry.register(Box::new(m.rule_lag_seconds.clone()))?;
        registry.register(Box::new(m.audit_failures.clone()))?;
        Ok(m)
    }
}
