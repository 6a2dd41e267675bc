//! Shared pieces of lastmile's benchmarks: representative requests, and one decision
//! made exactly as the proxy makes it (input building, evaluation, decision parsing).

use anyhow::{anyhow, Context, Result};
use http::{HeaderMap, HeaderValue, Method};
use lastmile::identity::User;
use lastmile::pipeline::input::{self, InputParts};
use lastmile::pipeline::request::{path_segments, BodyView};
use lastmile::policy::bundle::Bundle;
use lastmile::policy::decision::{self, Decision};
use lastmile::policy::engine::PreparedPolicy;
use regorus::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One representative agent request.
pub struct Case {
    pub name: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub body: Option<&'static str>,
}

const fn case(
    name: &'static str,
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
) -> Case {
    Case {
        name,
        method,
        path,
        body,
    }
}

/// Requests to the sample CRM (the demo and invoicing bundles).
pub static INVOICING: [Case; 4] = [
    case("GET search (scoped)", Method::GET, "/v1/invoices", None),
    case(
        "POST reminder (allowed)",
        Method::POST,
        "/v1/invoices/INV-00038122/reminders",
        Some(
            r#"{"channel":"email","recipient_role":"billing","note":"Friendly reminder: invoice INV-00038122 is 30 days overdue."}"#,
        ),
    ),
    case(
        "POST reminder (denied)",
        Method::POST,
        "/v1/invoices/INV-00038122/reminders",
        Some(r#"{"channel":"email","recipient_role":"billing","email":"cfo@acme.example"}"#),
    ),
    case(
        "POST invoice (approval)",
        Method::POST,
        "/v1/invoices",
        Some(r#"{"account":"acme","amount":250000,"currency":"EUR"}"#),
    ),
];

/// Requests to the ticketing API (the ticketing bundle).
pub static TICKETING: [Case; 3] = [
    case(
        "POST ticket (allowed)",
        Method::POST,
        "/v2/tickets",
        Some(r#"{"subject":"Printer on fire","priority":"normal","account":"acme"}"#),
    ),
    case(
        "POST comment (allowed)",
        Method::POST,
        "/v2/tickets/TCK-00000001/comments",
        Some(r#"{"body":"Replaced the toner.","visibility":"public"}"#),
    ),
    case(
        "POST close (denied)",
        Method::POST,
        "/v2/tickets/not-an-id/close",
        Some(r#"{"resolution":"fixed"}"#),
    ),
];

/// The cases for a bundle: ticketing requests for a ticketing bundle, CRM requests
/// otherwise.
pub fn cases_for(bundle: &Path) -> &'static [Case] {
    if bundle.to_string_lossy().contains("ticketing") {
        &TICKETING
    } else {
        &INVOICING
    }
}

/// Compiles a bundle with its libraries, as the proxy does.
pub fn load(bundle: &Path, libraries: &[PathBuf]) -> Result<PreparedPolicy> {
    let bundle = Bundle::read_with_libraries(bundle, libraries)?;
    PreparedPolicy::compile(
        &bundle,
        "data.lastmile.decision",
        Duration::from_millis(100),
    )
}

/// The acting user of every case: alice, with scope over account acme.
pub fn alice() -> User {
    let claims = serde_json::json!({"sub": "u_alice", "scope": ["account:acme"], "roles": ["agent-operator"]});
    User {
        sub: Some("u_alice".into()),
        claims: Value::from(claims),
    }
}

/// One decision: the body parsed, the input built, the policy evaluated and the
/// decision parsed, exactly as on the proxy's request path.
pub fn decide(
    policy: &PreparedPolicy,
    case: &Case,
    user: &User,
    headers: &HeaderMap,
) -> Result<Decision> {
    let body = match case.body {
        Some(text) => BodyView::Json(serde_json::from_str::<Value>(text)?),
        None => BodyView::Empty,
    };
    let value = policy.evaluate(input::build(InputParts {
        route: "crm",
        mode: "enforce",
        method: &case.method,
        path: case.path,
        segments: path_segments(case.path).map_err(|e| anyhow!("{e}"))?,
        query: None,
        headers,
        hidden: [None, None],
        body,
        body_bytes: case.body.map_or(0, str::len),
        user: Some(user),
        now_ns: 0,
    }))?;
    decision::parse(&value).context("the policy's decision")
}

/// The headers every case sends.
pub fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}
