//! Announcing new pending approvals to a webhook (chat, paging). Delivery runs on its
//! own task, after the approval is stored and independent of the agent's response: a
//! slow or dead webhook never delays or fails a request. Each attempt has a timeout;
//! failures are retried with backoff, then logged and given up.

use super::rfc3339;
use super::store::Approval;
use crate::config::WebhookConfig;
use crate::config::POLL_PATH;
use crate::upstream::{client_with, UpstreamClient};
use bytes::Bytes;
use http::{header, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use std::time::Duration;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct Webhook {
    config: WebhookConfig,
    client: UpstreamClient,
    /// Base URL of the admin port for links.
    public_url: Option<String>,
}

impl Webhook {
    pub fn new(config: WebhookConfig, public_url: Option<String>) -> anyhow::Result<Webhook> {
        let client = client_with(None, config.timeout)?;
        Ok(Webhook {
            config,
            client,
            public_url,
        })
    }

    /// The JSON announcing `approval`: what and why, never the raw request.
    pub fn payload(&self, a: &Approval) -> serde_json::Value {
        let link = |path: String| {
            self.public_url
                .as_ref()
                .map(|base| format!("{base}{path}"))
                .unwrap_or(path)
        };
        serde_json::json!({
            "event": "approval_pending",
            "approval_id": a.id,
            "route": a.route,
            "user": a.user,
            "reasons": a.reasons,
            "summary": a.summary,
            "created_at": rfc3339(a.created_ms),
            "expires_at": rfc3339(a.expires_ms),
            "trace_id": a.trace_id,
            "links": {
                "page": link("/ui/approvals".to_string()),
                "api": link(format!("/approvals/{}", a.id)),
                "agent_poll": format!("{POLL_PATH}{}", a.id),
            },
        })
    }

    /// Sends the announcement in the background.
    pub fn announce(&self, approval: &Approval) {
        let body = Bytes::from(self.payload(approval).to_string());
        let id = approval.id.clone();
        let client = self.client.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            for attempt in 1..=config.max_attempts {
                match send(&client, &config, body.clone()).await {
                    Ok(()) => {
                        tracing::debug!(%id, attempt, "approval webhook delivered");
                        return;
                    }
                    Err(problem) => {
                        tracing::warn!(%id, attempt, %problem, "approval webhook failed");
                    }
                }
                if attempt < config.max_attempts {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            tracing::error!(%id, attempts = config.max_attempts, "approval webhook given up");
        });
    }
}

async fn send(client: &UpstreamClient, config: &WebhookConfig, body: Bytes) -> Result<(), String> {
    let mut request = Request::post(config.url.clone())
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        // Drain the body so the connection can be reused.
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {status}"))
        }
    };
    tokio::time::timeout(config.timeout, exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}
