//! The banner the demo prints once it serves: where everything listens, the demo
//! users' tokens, and a command to paste for each thing lastmile does.

use super::SAMPLE_CRM_ADDR;
use crate::config::Config;

/// The demo's printed credentials.
pub(super) struct Tokens<'a> {
    pub alice: &'a str,
    pub bob: &'a str,
    pub approver: &'a str,
    pub admin: &'a str,
}

/// The demo's instructions, printed once it serves: every example is a command to
/// paste, in sections.
pub(super) fn print_banner(config: &Config, tokens: &Tokens<'_>) {
    let data = format!("http://{}", config.listen);
    let admin = format!("http://{}", config.admin_listen);
    println!(
        "{}{}{}{}",
        banner_intro(config, &data, &admin, tokens),
        banner_policy_examples(&data),
        banner_approval_walkthrough(&data, &admin, tokens.approver),
        banner_trace_lookup(&admin, tokens.admin),
    );
}

/// Where everything listens, and the demo users' tokens.
fn banner_intro(config: &Config, data: &str, admin: &str, tokens: &Tokens<'_>) -> String {
    let Tokens { alice, bob, .. } = tokens;
    format!(
        r#"
lastmile demo
  proxy        {data}/crm/...  ->  sample CRM on http://{SAMPLE_CRM_ADDR}
  admin        {admin}/metrics  {admin}/healthz  {admin}/readyz  {admin}/traces/<trace-id>
  policies     {policies}  with the library {library}
               (edit them: changes are live within a second)

Two demo users (tokens valid 12 h): alice may act on account acme, bob on globex.
  export ALICE='{alice}'
  export BOB='{bob}'

"#,
        policies = config.policies.dir.display(),
        library = config
            .policies
            .library_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// One request for each thing the demo policy does: allow, scope, deny, refuse.
fn banner_policy_examples(data: &str) -> String {
    let json = JSON_HEADER;
    format!(
        r#"Allowed: alice sends a reminder for an acme invoice (the CRM answers 201):
  curl -si -X POST {data}/crm/v1/invoices/INV-00038122/reminders {json} -H "x-lastmile-user: $ALICE" -d '{{"channel":"email","recipient_role":"billing"}}'

Allowed, and scoped: alice lists invoices; lastmile adds account=acme, so globex's never show:
  curl -s {data}/crm/v1/invoices -H "x-lastmile-user: $ALICE"

Denied, field not allowed and a raw address (403 with the reasons; the CRM sees nothing):
  curl -si -X POST {data}/crm/v1/invoices/INV-00038122/reminders {json} -H "x-lastmile-user: $ALICE" -d '{{"channel":"email","recipient_role":"billing","email":"cfo@acme.example"}}'

Denied, out of scope: bob asks for an acme invoice:
  curl -si {data}/crm/v1/invoices/INV-00038122 -H "x-lastmile-user: $BOB"

Refused, no token (401):
  curl -si {data}/crm/v1/invoices

"#
    )
}

/// A request parked for approval, its decision by an approver, and the agent's poll.
fn banner_approval_walkthrough(data: &str, admin: &str, approver: &str) -> String {
    let json = JSON_HEADER;
    format!(
        r#"Needs approval: alice refunds 1200 on an acme invoice. lastmile parks it (202 with an
approval id and a poll URL); the CRM sees nothing until a human approves:
  curl -si -X POST {data}/crm/v1/invoices/INV-00038122/refunds {json} -H "x-lastmile-user: $ALICE" -d '{{"amount":1200,"reason":"Duplicate charge"}}'
Approve or deny it on the approvals page, signing in with carol's approver token:
  {admin}/ui/approvals
  export APPROVER='{approver}'
or with the approver API:
  curl -s '{admin}/approvals?state=pending' -H "authorization: Bearer $APPROVER"
  curl -s -X POST {admin}/approvals/<approval_id>/approve -H "authorization: Bearer $APPROVER" {json} -d '{{"comment":"checked"}}'
Then the agent fetches the CRM's real answer (add ?wait=30s to wait for the decision):
  curl -si {data}/_lastmile/approvals/<approval_id> -H "x-lastmile-user: $ALICE"

"#
    )
}

/// How the operator finds a decision from a response's trace id.
fn banner_trace_lookup(admin: &str, admin_token: &str) -> String {
    format!(
        r#"Every response carries lastmile-trace-id; the operator looks the decision up with:
  export ADMIN='{admin_token}'
  curl -s {admin}/traces/<lastmile-trace-id> -H "authorization: Bearer $ADMIN"
Decision trace lines follow below, one JSON object per request.
"#
    )
}

/// The curl flag the banner's JSON requests carry.
const JSON_HEADER: &str = "-H 'content-type: application/json'";
