# Tests of the ticketing bundle, with its own data.json and the library. The decision is
# referenced by its full path (see the invoicing example's tests for why).
package lastmile_test

alice := {"sub": "u_alice", "scope": ["account:acme"], "roles": ["agent-operator"]}

bob := {"sub": "u_bob", "scope": ["account:globex"], "roles": ["agent-operator"]}

req(user, method, segments, body) := {
	"version": 1,
	"route": "helpdesk",
	"mode": "enforce",
	"request": {
		"method": method,
		"path": concat("/", array.concat([""], segments)),
		"segments": segments,
		"query": {},
		"headers": {"content-type": "application/json"},
		"body": body,
	},
	"user": user,
	"approval": null,
	"now_ns": 1764180000000000000,
}

codes(reasons) := {r.code | some r in reasons}

allowed(d) if {
	count(d.deny) == 0
	count(d.approval) == 0
}

ticket(user, body) := req(user, "POST", ["v2", "tickets"], body)

comment(user, id, body) := req(user, "POST", ["v2", "tickets", id, "comments"], body)

close(user, id, body) := req(user, "POST", ["v2", "tickets", id, "close"], body)

# --- create_ticket. ---

test_ticket_allowed if {
	d := data.lastmile.decision with input as ticket(alice, {"subject": "Printer on fire", "priority": "normal", "account": "acme"})
	allowed(d)
	d.dedup == {"key": ["create_ticket", "acme", "Printer on fire"], "window_seconds": 600, "shared": true}
	d.add_headers == {"x-acting-user": "u_alice"}
}

test_ticket_with_description_allowed if {
	d := data.lastmile.decision with input as ticket(alice, {"subject": "Login", "priority": "low", "account": "acme", "description": "jane@acme.example cannot log in"})
	allowed(d)
}

test_ticket_address_in_subject_denied if {
	d := data.lastmile.decision with input as ticket(alice, {"subject": "Write to jane@acme.example", "priority": "low", "account": "acme"})
	codes(d.deny) == {"raw_recipient"}
}

test_ticket_bad_priority_denied if {
	d := data.lastmile.decision with input as ticket(alice, {"subject": "x", "priority": "urgent", "account": "acme"})
	codes(d.deny) == {"value_not_allowed"}
}

test_ticket_missing_priority_denied if {
	d := data.lastmile.decision with input as ticket(alice, {"subject": "x", "account": "acme"})
	codes(d.deny) == {"field_required"}
}

test_ticket_for_other_account_denied if {
	d := data.lastmile.decision with input as ticket(alice, {"subject": "x", "priority": "low", "account": "globex"})
	codes(d.deny) == {"out_of_scope"}
}

test_ticket_extra_field_denied if {
	d := data.lastmile.decision with input as ticket(alice, {"subject": "x", "priority": "low", "account": "acme", "assignee": "bob"})
	codes(d.deny) == {"field_not_allowed"}
}

# --- comment_ticket. ---

test_comment_allowed if {
	d := data.lastmile.decision with input as comment(alice, "TCK-00000001", {"body": "Replaced the toner.", "visibility": "public"})
	allowed(d)
	d.dedup == {"key": ["comment_ticket", "TCK-00000001", "public", "Replaced the toner."], "window_seconds": 600, "shared": false}
}

test_comment_bad_visibility_denied if {
	d := data.lastmile.decision with input as comment(alice, "TCK-00000001", {"body": "x", "visibility": "everyone"})
	codes(d.deny) == {"value_not_allowed"}
}

test_comment_with_address_denied if {
	d := data.lastmile.decision with input as comment(alice, "TCK-00000001", {"body": "Reply to jane@acme.example", "visibility": "public"})
	codes(d.deny) == {"raw_recipient"}
}

test_comment_other_account_denied if {
	d := data.lastmile.decision with input as comment(bob, "TCK-00000001", {"body": "x", "visibility": "internal"})
	codes(d.deny) == {"out_of_scope"}
}

test_comment_unknown_ticket_denied if {
	d := data.lastmile.decision with input as comment(alice, "TCK-00000999", {"body": "x", "visibility": "internal"})
	codes(d.deny) == {"out_of_scope"}
}

test_comment_bad_id_denied if {
	d := data.lastmile.decision with input as comment(alice, "1", {"body": "x", "visibility": "internal"})
	codes(d.deny) == {"bad_id"}
}

# --- close_ticket. ---

test_close_allowed if {
	d := data.lastmile.decision with input as close(alice, "TCK-00000001", {"resolution": "fixed"})
	allowed(d)
	d.dedup == {"key": ["close_ticket", "TCK-00000001"], "window_seconds": 3600, "shared": true}
}

test_close_high_priority_needs_approval if {
	d := data.lastmile.decision with input as close(alice, "TCK-00000002", {"resolution": "fixed"})
	count(d.deny) == 0
	codes(d.approval) == {"high_priority_close"}
}

test_close_bad_id_denied if {
	d := data.lastmile.decision with input as close(alice, "not-an-id", {"resolution": "fixed"})
	codes(d.deny) == {"bad_id"}
}

test_close_bad_resolution_denied if {
	d := data.lastmile.decision with input as close(bob, "TCK-00000003", {"resolution": "ignored"})
	codes(d.deny) == {"value_not_allowed"}
}

test_close_other_account_denied if {
	d := data.lastmile.decision with input as close(bob, "TCK-00000002", {"resolution": "fixed"})
	codes(d.deny) == {"out_of_scope"}
}

# --- list_tickets. ---

test_search_scoped_by_header if {
	d := data.lastmile.decision with input as req(bob, "GET", ["v2", "tickets"], null)
	allowed(d)
	d.add_headers == {"x-account-scope": "globex", "x-acting-user": "u_bob"}
	not d.dedup
}

test_search_without_user_denied if {
	d := data.lastmile.decision with input as req(null, "GET", ["v2", "tickets"], null)
	codes(d.deny) == {"out_of_scope"}
	d.add_headers == {}
}

test_unknown_endpoint_denied if {
	d := data.lastmile.decision with input as req(alice, "DELETE", ["v2", "tickets", "TCK-00000001"], null)
	codes(d.deny) == {"unknown_tool"}
}
