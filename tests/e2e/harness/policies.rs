//! The Rego policies the tests serve (Rego v1, package `lastmile`, entry point
//! `data.lastmile.decision`).

/// The main test policy:
/// - deny a body carrying a field named `forbidden`;
/// - deny a POST by a user whose scope lacks `crm.write`;
/// - require approval for a body `amount` over 1000;
/// - narrow `GET /v1/search` to the acting user's `account` claim;
/// - tell the upstream who acts, in `x-acting-user`;
/// - when the body asks for it (`set_host: true`), try to set the reserved `Host`
///   header: a malformed decision, which lastmile must treat as a policy error.
pub const TEST_POLICY: &str = r#"package lastmile

decision := {
	"deny": deny,
	"approval": approval,
	"add_query": add_query,
	"add_headers": add_headers,
}

body := input.request.body if is_object(input.request.body)

default body := {}

deny contains {"code": "forbidden_field", "message": "the field 'forbidden' may not be sent"} if {
	"forbidden" in object.keys(body)
}

deny contains {"code": "missing_scope", "message": "the acting user lacks the crm.write scope"} if {
	input.request.method == "POST"
	input.user != null
	not "crm.write" in input.user.scope
}

approval contains {"code": "amount_over_limit", "message": msg} if {
	body.amount > 1000
	msg := sprintf("amount %v is over the limit of 1000", [body.amount])
}

add_query := {"account": input.user.account} if {
	input.request.method == "GET"
	input.request.segments == ["v1", "search"]
	is_string(input.user.account)
}

default add_query := {}

add_headers["x-acting-user"] := input.user.sub if is_string(input.user.sub)

add_headers["host"] := "evil.example" if body.set_host == true
"#;

/// Allows everything.
pub const ALLOW_ALL: &str = "package lastmile\n\ndecision := {}\n";

/// Denies everything, with `code` as the reason code (so a test can tell versions apart).
pub fn deny_all(code: &str) -> String {
    format!(
        "package lastmile\n\ndecision := {{\"deny\": [{{\"code\": \"{code}\", \"message\": \"policy {code} denies everything\"}}]}}\n"
    )
}

/// Does not compile.
pub const BROKEN: &str = "package lastmile\n\ndecision := {\n\t\"deny\": [\n";

/// Dedup on every POST with a JSON object body: the intent is the path and the body
/// (minus `deny`); a body with `"deny": true` is denied, so tests can show that a
/// refusal never takes the key. `"shared": true` makes the intent the same for all users.
pub const DEDUP_POLICY: &str = r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {}

decision := object.union(verdict, dedup)

verdict := {"deny": [{"code": "test_deny", "message": "the body asks to be denied"}]} if body.deny == true

default verdict := {}

dedup := {"dedup": {
	"key": {"path": input.request.path, "body": object.remove(body, ["deny"])},
	"window_seconds": 3600,
	"shared": object.get(body, "shared", false) == true,
}} if {
	input.request.method == "POST"
	count(body) > 0
}

default dedup := {}
"#;
