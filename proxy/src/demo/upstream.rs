//! A small sample CRM for the demo and the tests: invoices, contacts and tickets, in
//! memory. It insists on its own bearer token, so a response proves lastmile injected
//! the route's credential.

use crate::response::{json_response, ResponseBody};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The sample CRM's state.
pub struct SampleCrm {
    token: String,
    invoices: Vec<Value>,
    contacts: Vec<Value>,
    next_id: AtomicU64,
}

impl SampleCrm {
    /// A CRM that accepts requests bearing `token`.
    pub fn new(token: String) -> SampleCrm {
        SampleCrm {
            token,
            invoices: vec![
                json!({"id": "INV-00038122", "account": "acme", "amount": 1250.00, "currency": "EUR", "status": "open"}),
                json!({"id": "INV-00038123", "account": "acme", "amount": 310.50, "currency": "EUR", "status": "paid"}),
                json!({"id": "INV-00041007", "account": "globex", "amount": 98000.00, "currency": "USD", "status": "open"}),
            ],
            contacts: vec![
                json!({"account": "acme", "role": "billing", "name": "Acme Billing"}),
                json!({"account": "acme", "role": "ap_clerk", "name": "Acme Accounts Payable"}),
                json!({"account": "globex", "role": "billing", "name": "Globex Billing"}),
            ],
            next_id: AtomicU64::new(1),
        }
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ResponseBody> {
        let expected = format!("Bearer {}", self.token);
        let authorised = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == expected.as_bytes());
        if !authorised {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "missing or wrong credential"}),
            );
        }
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let accounts: Vec<String> =
            form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                .filter(|(k, _)| k == "account")
                .map(|(_, v)| v.into_owned())
                .collect();
        let body = match request.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.answer(&method, &path, &accounts, &body)
    }

    /// The CRM's endpoints, by method and path.
    fn answer(
        &self,
        method: &Method,
        path: &str,
        accounts: &[String],
        body: &Value,
    ) -> Response<ResponseBody> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["v1", "invoices"]) => reply(
                StatusCode::OK,
                json!({"invoices": filter(&self.invoices, accounts)}),
            ),
            (&Method::GET, ["v1", "invoices", id]) => {
                match self.invoices.iter().find(|i| i["id"] == *id) {
                    Some(invoice) => reply(StatusCode::OK, invoice.clone()),
                    None => reply(StatusCode::NOT_FOUND, json!({"error": "no such invoice"})),
                }
            }
            (&Method::POST, ["v1", "invoices", id, "reminders"]) => reply(
                StatusCode::CREATED,
                json!({"reminder_id": self.next("REM"), "invoice": id, "channel": body["channel"], "recipient_role": body["recipient_role"], "status": "queued"}),
            ),
            (&Method::POST, ["v1", "invoices"]) => {
                let mut invoice = body.clone();
                invoice["id"] = json!(self.next("INV"));
                invoice["status"] = json!("draft");
                reply(StatusCode::CREATED, invoice)
            }
            (&Method::POST, ["v1", "invoices", id, "refunds"]) => reply(
                StatusCode::CREATED,
                json!({"refund_id": self.next("REF"), "invoice": id, "amount": body["amount"], "status": "pending"}),
            ),
            (&Method::GET, ["v1", "contacts"]) => reply(
                StatusCode::OK,
                json!({"contacts": filter(&self.contacts, accounts)}),
            ),
            (&Method::POST, ["v1", "tickets"]) => reply(
                StatusCode::CREATED,
                json!({"ticket_id": self.next("TCK"), "subject": body["subject"], "status": "open"}),
            ),
            _ => reply(StatusCode::NOT_FOUND, json!({"error": "no such endpoint"})),
        }
    }

    fn next(&self, prefix: &str) -> String {
        format!(
            "{prefix}-{:08}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Records of the given accounts, or all of them when no account filter is given:
/// exactly why lastmile adds the acting user's scope as a filter.
fn filter(records: &[Value], accounts: &[String]) -> Vec<Value> {
    records
        .iter()
        .filter(|r| accounts.is_empty() || accounts.iter().any(|a| r["account"] == a.as_str()))
        .cloned()
        .collect()
}

fn reply(status: StatusCode, body: Value) -> Response<ResponseBody> {
    json_response(status, body.to_string())
}
