//! Prometheus metrics, in a registry owned by the process (never the global one, so
//! tests can run several proxies side by side).
//!
//! Label values only ever come from config (route names) or fixed enums (outcomes,
//! reload results): never from paths, users or policy text.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const POLICY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.1,
];
/// People decide in seconds to a day.
const DECISION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14_400.0, 43_200.0, 86_400.0,
];

/// Every metric lastmile exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub policy_duration: HistogramVec,
    pub policy_failures: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub policy_reloads: IntCounterVec,
    pub policy_last_reload_successful: IntGauge,
    pub policy_info: IntGaugeVec,
    pub trace_dropped: IntCounter,
    pub trace_spans_exported: IntCounter,
    pub trace_spans_dropped: IntCounterVec,
    pub decision_logs_exported: IntCounter,
    pub decision_logs_dropped: IntCounterVec,
    pub dedup: IntCounterVec,
    pub dedup_entries: IntGauge,
    pub dedup_store_errors: IntCounterVec,
    pub approval_transitions: IntCounterVec,
    pub approvals_pending: IntGauge,
    pub approval_decision_seconds: HistogramVec,
    pub credential_exchanges: IntCounterVec,
    pub credential_cache_entries: IntGaugeVec,
}

/// The per-route histograms, resolved once so the hot path skips the label lookup.
#[derive(Clone)]
pub struct RouteMetrics {
    pub request_duration: Histogram,
    pub policy_duration: Histogram,
    pub upstream_duration: Histogram,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                &["route"],
            )
        };
        let metrics = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "lastmile_requests_total",
                    "Requests handled, by route and outcome.",
                ),
                &["route", "outcome"],
            )?,
            request_duration: histogram(
                "lastmile_request_duration_seconds",
                "Time from receiving a request to sending the response head.",
                LATENCY_BUCKETS,
            )?,
            policy_duration: histogram(
                "lastmile_policy_evaluation_duration_seconds",
                "Time to build the policy input and evaluate the policy.",
                POLICY_BUCKETS,
            )?,
            policy_failures: IntCounterVec::new(
                Opts::new(
                    "lastmile_policy_failures_total",
                    "Evaluations that gave no usable decision (refused as policy_error), by \
                     route and kind (undefined, wrong_shape, error, timeout).",
                ),
                &["route", "kind"],
            )?,
            upstream_duration: histogram(
                "lastmile_upstream_duration_seconds",
                "Time from sending a request upstream to receiving its response head.",
                LATENCY_BUCKETS,
            )?,
            policy_reloads: IntCounterVec::new(
                Opts::new(
                    "lastmile_policy_reloads_total",
                    "Policy bundle loads, by result.",
                ),
                &["result"],
            )?,
            policy_last_reload_successful: IntGauge::new(
                "lastmile_policy_last_reload_successful",
                "1 if the last policy reload attempt succeeded, else 0.",
            )?,
            policy_info: IntGaugeVec::new(
                Opts::new(
                    "lastmile_policy_info",
                    "The active policy bundle revision (value is always 1).",
                ),
                &["revision"],
            )?,
            trace_dropped: IntCounter::new(
                "lastmile_trace_records_dropped_total",
                "Decision trace records dropped because the trace writer fell behind.",
            )?,
            trace_spans_exported: IntCounter::new(
                "lastmile_trace_spans_exported_total",
                "Trace spans the OTLP collector accepted.",
            )?,
            trace_spans_dropped: IntCounterVec::new(
                Opts::new(
                    "lastmile_trace_spans_dropped_total",
                    "Trace spans not exported over OTLP, by reason (queue_full: the exporter \
                     fell behind; export_failed: the collector could not be reached or refused \
                     the batch; rejected: the collector dropped them; invalid: not encodable).",
                ),
                &["reason"],
            )?,
            decision_logs_exported: IntCounter::new(
                "lastmile_decision_logs_exported_total",
                "Decision-log events the decision-log service accepted.",
            )?,
            decision_logs_dropped: IntCounterVec::new(
                Opts::new(
                    "lastmile_decision_logs_dropped_total",
                    "Decision-log events not uploaded, by reason (queue_full: the uploader \
                     fell behind; export_failed: the service could not be reached or refused \
                     the batch).",
                ),
                &["reason"],
            )?,
            dedup: IntCounterVec::new(
                Opts::new(
                    "lastmile_dedup_total",
                    "Requests under a dedup window, by route and result (first, replayed, \
                     in_flight_conflict, unknown, mismatch, not_retained, store_full, \
                     store_unavailable).",
                ),
                &["route", "result"],
            )?,
            dedup_entries: IntGauge::new(
                "lastmile_dedup_store_entries",
                "Entries in the dedup store, read when metrics are scraped.",
            )?,
            dedup_store_errors: IntCounterVec::new(
                Opts::new(
                    "lastmile_dedup_store_errors_total",
                    "Dedup store operations that failed, by operation.",
                ),
                &["operation"],
            )?,
            approval_transitions: IntCounterVec::new(
                Opts::new(
                    "lastmile_approval_transitions_total",
                    "Approval state transitions, by route and the state entered (pending, \
                     approved, executing, succeeded, failed, outcome_unknown, denied, expired).",
                ),
                &["route", "state"],
            )?,
            approvals_pending: IntGauge::new(
                "lastmile_approvals_pending",
                "Approvals waiting for a decision.",
            )?,
            approval_decision_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "lastmile_approval_decision_seconds",
                    "Time from parking a request to an approver's decision.",
                )
                .buckets(DECISION_BUCKETS.to_vec()),
                &["route"],
            )?,
            credential_exchanges: IntCounterVec::new(
                Opts::new(
                    "lastmile_credential_exchanges_total",
                    "Upstream credentials of token_exchange routes, by route and outcome \
                     (cached, exchanged, refused, unreachable, timeout, invalid_response, \
                     client_secret_unavailable, client_key_unavailable, backoff).",
                ),
                &["route", "outcome"],
            )?,
            credential_cache_entries: IntGaugeVec::new(
                Opts::new(
                    "lastmile_credential_cache_entries",
                    "Acting users with a slot in a token_exchange route's token cache.",
                ),
                &["route"],
            )?,
            registry,
        };
        let build = IntGaugeVec::new(
            Opts::new("lastmile_build_info", "Build information."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let collectors: [Box<dyn prometheus::core::Collector>; 22] = [
            Box::new(build),
            Box::new(metrics.requests.clone()),
            Box::new(metrics.request_duration.clone()),
            Box::new(metrics.policy_duration.clone()),
            Box::new(metrics.policy_failures.clone()),
            Box::new(metrics.upstream_duration.clone()),
            Box::new(metrics.policy_reloads.clone()),
            Box::new(metrics.policy_last_reload_successful.clone()),
            Box::new(metrics.policy_info.clone()),
            Box::new(metrics.trace_dropped.clone()),
            Box::new(metrics.trace_spans_exported.clone()),
            Box::new(metrics.trace_spans_dropped.clone()),
            Box::new(metrics.decision_logs_exported.clone()),
            Box::new(metrics.decision_logs_dropped.clone()),
            Box::new(metrics.dedup.clone()),
            Box::new(metrics.dedup_entries.clone()),
            Box::new(metrics.dedup_store_errors.clone()),
            Box::new(metrics.approval_transitions.clone()),
            Box::new(metrics.approvals_pending.clone()),
            Box::new(metrics.approval_decision_seconds.clone()),
            Box::new(metrics.credential_exchanges.clone()),
            Box::new(metrics.credential_cache_entries.clone()),
        ];
        for collector in collectors {
            metrics.registry.register(collector)?;
        }
        Ok(metrics)
    }

    pub fn for_route(&self, route: &str) -> RouteMetrics {
        RouteMetrics {
            request_duration: self.request_duration.with_label_values(&[route]),
            policy_duration: self.policy_duration.with_label_values(&[route]),
            upstream_duration: self.upstream_duration.with_label_values(&[route]),
        }
    }

    /// Records a reload attempt and, on success, the newly active revision.
    /// `Err` carries the result label: `failure` or `tests_failed`.
    pub fn record_reload(&self, result: Result<&str, &'static str>) {
        match result {
            Ok(revision) => {
                self.policy_reloads.with_label_values(&["success"]).inc();
                self.policy_last_reload_successful.set(1);
                self.policy_info.reset();
                self.policy_info.with_label_values(&[revision]).set(1);
            }
            Err(label) => {
                self.policy_reloads.with_label_values(&[label]).inc();
                self.policy_last_reload_successful.set(0);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
