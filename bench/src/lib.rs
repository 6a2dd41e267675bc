//! Shared pieces of lastmile's benchmarks: representative requests, one decision made
//! exactly as the proxy makes it (input building, evaluation, decision parsing), and the
//! OPA engine ([`opa`]) to compare it with.

pub mod opa;

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
    pub body: Option<String>,
}

fn case(name: &'static str, method: Method, path: &'static str, body: Option<&str>) -> Case {
    Case {
        name,
        method,
        path,
        body: body.map(str::to_string),
    }
}

/// Requests to the sample CRM (the demo and invoicing bundles), including the ~1 KiB
/// create_invoice body of the HTTP benchmark (bench/harness/workloads.py).
pub fn invoicing() -> Vec<Case> {
    let invoice = invoice_body(12, false);
    let denied = invoice_body(12, true);
    vec![
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
        case(
            "POST invoice 1 KiB (allowed)",
            Method::POST,
            "/v1/invoices",
            Some(&invoice),
        ),
        case(
            "POST invoice 1 KiB (denied)",
            Method::POST,
            "/v1/invoices",
            Some(&denied),
        ),
    ]
}

/// A create_invoice body with `lines` invoice lines (12 make ~1.2 KiB); a denied one
/// carries a field the contract does not allow, holding an address.
fn invoice_body(lines: usize, denied: bool) -> String {
    let lines: Vec<serde_json::Value> = (1..=lines)
        .map(|n| {
            serde_json::json!({"sku": format!("SKU-{n:05}"), "description": format!("Consulting hours, week {n}"), "quantity": 8, "unit_price": 150.0})
        })
        .collect();
    let mut body =
        serde_json::json!({"account": "acme", "amount": 1200.5, "currency": "EUR", "lines": lines});
    if denied {
        body["email"] = "cfo@acme.example".into();
    }
    body.to_string()
}

/// Requests to the ticketing API (the ticketing bundle).
pub fn ticketing() -> Vec<Case> {
    vec![
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
    ]
}

/// The cases for a bundle: ticketing requests for a ticketing bundle, CRM requests
/// otherwise.
pub fn cases_for(bundle: &Path) -> Vec<Case> {
    if bundle.to_string_lossy().contains("ticketing") {
        ticketing()
    } else {
        invoicing()
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
        token: None,
    }
}

/// The input document for one case, built exactly as on the proxy's request path (the
/// body parsed, then the input assembled).
pub fn input_for(case: &Case, user: &User, headers: &HeaderMap) -> Result<Value> {
    let body = match &case.body {
        Some(text) => BodyView::Json(serde_json::from_str::<Value>(text)?),
        None => BodyView::Empty,
    };
    Ok(input::build(InputParts {
        route: ROUTE,
        mode: "enforce",
        method: &case.method,
        path: case.path,
        segments: &path_segments(case.path).map_err(|e| anyhow!("{e}"))?,
        query: None,
        headers,
        hidden: [None, None],
        body: &body,
        body_bytes: case.body.as_ref().map_or(0, String::len),
        user: Some(user),
        credential: Value::Null,
        now_ns: 0,
    }))
}

/// The same input document as JSON text, as an OPA service receives it.
pub fn input_json(case: &Case, user: &User, headers: &HeaderMap) -> Result<String> {
    input_for(case, user, headers)?
        .to_json_str()
        .map_err(|e| anyhow!("{e}"))
}

/// One decision: the input built, the policy evaluated and the decision parsed, exactly
/// as on the proxy's request path.
pub fn decide(
    policy: &PreparedPolicy,
    case: &Case,
    user: &User,
    headers: &HeaderMap,
) -> Result<Decision> {
    lastmile::policy::decide::decide(policy, input_for(case, user, headers)?)
        .context("the policy's decision")
}

/// What a decision does, in one comparable line: the verdict, the reason codes, the
/// dedup intent and the obligations. Two engines agree on a request when these match.
pub fn summary(decision: &Decision) -> String {
    let codes = |reasons: &[decision::Reason]| -> Vec<String> {
        reasons.iter().map(|r| r.code.clone()).collect()
    };
    format!(
        "{:?} deny {:?} approval {:?} dedup {:?} add_query {:?} add_headers {:?}",
        decision.verdict(),
        codes(&decision.deny),
        codes(&decision.approval),
        decision
            .dedup
            .as_ref()
            .map(|d| (&d.key, d.window, d.shared)),
        decision.add_query,
        decision.add_headers,
    )
}

/// The route every case is sent on.
pub const ROUTE: &str = "crm";

/// The headers every case sends.
pub fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}
