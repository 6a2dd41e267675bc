# Tests of the invoicing bundle, with its own data.json and the library. Each test sends
# one request as the proxy would describe it and checks the decision.
#
# The decision is referenced by its full path, data.lastmile.decision: regorus evaluates
# every rule below an imported path, and `import data.lastmile` would take in the whole
# library (data.lastmile.lib) on every test.
package lastmile_test

alice := {"sub": "u_alice", "scope": ["account:acme"], "roles": ["agent-operator"]}

bob := {"sub": "u_bob", "scope": ["account:globex"], "roles": ["agent-operator"]}

lead := {"sub": "u_lead", "scope": ["account:acme"], "roles": ["agent-operator", "finance-lead"]}

req(user, method, segments, body) := {
	"version": 1,
	"route": "crm",
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

with_query(r, query) := object.union(r, {"request": object.union(r.request, {"query": query})})

codes(reasons) := {r.code | some r in reasons}

allowed(d) if {
	count(d.deny) == 0
	count(d.approval) == 0
}

reminder(user, id, body) := req(user, "POST", ["v1", "invoices", id, "reminders"], body)

# --- The behaviours `lastmile demo` prints. ---

test_reminder_allowed if {
	d := data.lastmile.decision with input as reminder(alice, "INV-00038122", {"channel": "email", "recipient_role": "billing"})
	allowed(d)
	d.dedup == {"key": ["send_reminder", "INV-00038122", "email"], "window_seconds": 86400, "shared": true}
	d.add_query == {}
}

test_reminder_with_raw_address_denied if {
	d := data.lastmile.decision with input as reminder(alice, "INV-00038122", {"channel": "email", "recipient_role": "billing", "email": "cfo@acme.example"})
	codes(d.deny) == {"field_not_allowed", "raw_recipient"}
}

test_other_accounts_invoice_denied if {
	d := data.lastmile.decision with input as req(bob, "GET", ["v1", "invoices", "INV-00038122"], null)
	codes(d.deny) == {"out_of_scope"}
}

test_invoice_search_scoped if {
	d := data.lastmile.decision with input as req(alice, "GET", ["v1", "invoices"], null)
	allowed(d)
	d.add_query == {"account": ["acme"]}
	not d.dedup
}

test_unknown_endpoint_denied if {
	d := data.lastmile.decision with input as req(alice, "DELETE", ["v1", "invoices", "INV-00038122"], null)
	codes(d.deny) == {"unknown_tool"}
}

test_malformed_id_denied if {
	d := data.lastmile.decision with input as req(alice, "GET", ["v1", "invoices", "42"], null)
	codes(d.deny) == {"bad_id"}
}

test_id_with_non_ascii_digits_denied if {
	d := data.lastmile.decision with input as req(alice, "GET", ["v1", "invoices", "INV-٠٠٠٣٨١٢٢"], null)
	codes(d.deny) == {"bad_id"}
}

# --- list_invoices and list_contacts. ---

test_invoice_search_by_status if {
	d := data.lastmile.decision with input as with_query(req(alice, "GET", ["v1", "invoices"], null), {"status": ["open"]})
	allowed(d)
	d.add_query == {"account": ["acme"]}
}

test_invoice_search_bad_status_denied if {
	d := data.lastmile.decision with input as with_query(req(alice, "GET", ["v1", "invoices"], null), {"status": ["void"]})
	codes(d.deny) == {"value_not_allowed"}
}

test_invoice_search_other_account_denied if {
	d := data.lastmile.decision with input as with_query(req(alice, "GET", ["v1", "invoices"], null), {"account": ["globex"]})
	codes(d.deny) == {"out_of_scope"}
}

test_invoice_search_without_user_denied if {
	d := data.lastmile.decision with input as req(null, "GET", ["v1", "invoices"], null)
	codes(d.deny) == {"out_of_scope"}
}

test_contact_search_scoped if {
	d := data.lastmile.decision with input as with_query(req(bob, "GET", ["v1", "contacts"], null), {"role": ["billing"]})
	allowed(d)
	d.add_query == {"account": ["globex"]}
}

test_contact_search_unknown_parameter_denied if {
	d := data.lastmile.decision with input as with_query(req(bob, "GET", ["v1", "contacts"], null), {"email": ["x"]})
	codes(d.deny) == {"field_not_allowed"}
}

# --- get_invoice. ---

test_own_invoice_allowed if {
	d := data.lastmile.decision with input as req(bob, "GET", ["v1", "invoices", "INV-00041007"], null)
	allowed(d)
}

test_unknown_invoice_denied if {
	d := data.lastmile.decision with input as req(alice, "GET", ["v1", "invoices", "INV-99999999"], null)
	codes(d.deny) == {"out_of_scope"}
}

# --- send_reminder. ---

test_reminder_by_letter_with_note_allowed if {
	d := data.lastmile.decision with input as reminder(alice, "INV-00038123", {"channel": "letter", "recipient_role": "ap_clerk", "note": "Second reminder."})
	allowed(d)
}

test_reminder_bad_channel_denied if {
	d := data.lastmile.decision with input as reminder(alice, "INV-00038122", {"channel": "sms", "recipient_role": "billing"})
	codes(d.deny) == {"value_not_allowed"}
}

test_reminder_unknown_role_denied if {
	d := data.lastmile.decision with input as reminder(alice, "INV-00038122", {"channel": "email", "recipient_role": "cfo"})
	codes(d.deny) == {"value_not_allowed"}
}

test_reminder_role_missing_denied if {
	d := data.lastmile.decision with input as reminder(alice, "INV-00038122", {"channel": "email"})
	codes(d.deny) == {"field_required"}
}

test_reminder_address_in_note_denied if {
	d := data.lastmile.decision with input as reminder(alice, "INV-00038122", {"channel": "email", "recipient_role": "billing", "note": "cc jane@acme.example"})
	codes(d.deny) == {"raw_recipient"}
}

test_reminder_for_other_account_denied if {
	d := data.lastmile.decision with input as reminder(bob, "INV-00038122", {"channel": "email", "recipient_role": "billing"})
	codes(d.deny) == {"out_of_scope"}
}

test_reminder_bad_id_denied if {
	d := data.lastmile.decision with input as reminder(alice, "INV-3812", {"channel": "email", "recipient_role": "billing"})
	codes(d.deny) == {"bad_id"}
}

# --- create_invoice. ---

invoice(user, amount) := req(user, "POST", ["v1", "invoices"], {"account": "acme", "amount": amount, "currency": "EUR"})

test_small_invoice_allowed if {
	d := data.lastmile.decision with input as invoice(alice, 1250)
	allowed(d)
	d.dedup == {"key": ["create_invoice", "acme", 1250, "EUR"], "window_seconds": 600, "shared": true}
}

test_large_invoice_needs_approval if {
	d := data.lastmile.decision with input as invoice(alice, 250000)
	count(d.deny) == 0
	codes(d.approval) == {"amount_over_limit"}
}

test_finance_lead_has_a_higher_limit if {
	allowed(data.lastmile.decision) with input as invoice(lead, 250000)
	codes(data.lastmile.decision.approval) == {"amount_over_limit"} with input as invoice(lead, 600000)
}

test_huge_invoice_denied if {
	d := data.lastmile.decision with input as invoice(alice, 1500000)
	codes(d.deny) == {"amount_over_ceiling"}
	count(d.approval) == 0
}

test_finance_lead_has_a_higher_ceiling if {
	d := data.lastmile.decision with input as invoice(lead, 1500000)
	count(d.deny) == 0
	codes(d.approval) == {"amount_over_limit"}
}

test_invoice_for_other_account_denied if {
	d := data.lastmile.decision with input as req(alice, "POST", ["v1", "invoices"], {"account": "globex", "amount": 10, "currency": "EUR"})
	codes(d.deny) == {"out_of_scope"}
}

test_invoice_bad_currency_denied if {
	d := data.lastmile.decision with input as req(alice, "POST", ["v1", "invoices"], {"account": "acme", "amount": 10, "currency": "GBP"})
	codes(d.deny) == {"value_not_allowed"}
}

test_invoice_amount_as_text_denied if {
	d := data.lastmile.decision with input as req(alice, "POST", ["v1", "invoices"], {"account": "acme", "amount": "10", "currency": "EUR"})
	codes(d.deny) == {"value_not_allowed"}
}

test_invoice_with_lines_allowed if {
	d := data.lastmile.decision with input as req(alice, "POST", ["v1", "invoices"], {"account": "acme", "amount": 10, "currency": "USD", "lines": [{"text": "Consulting", "amount": 10}]})
	allowed(d)
}

test_invoice_missing_account_denied if {
	d := data.lastmile.decision with input as req(alice, "POST", ["v1", "invoices"], {"amount": 10, "currency": "USD"})
	codes(d.deny) == {"field_required"}
}

# --- create_refund. ---

refund(user, id, amount) := req(user, "POST", ["v1", "invoices", id, "refunds"], {"amount": amount, "reason": "Duplicate charge"})

test_small_refund_allowed if {
	d := data.lastmile.decision with input as refund(alice, "INV-00038122", 100)
	allowed(d)
	d.dedup == {"key": ["create_refund", "INV-00038122", 100], "window_seconds": 86400, "shared": true}
}

test_large_refund_needs_approval if {
	d := data.lastmile.decision with input as refund(alice, "INV-00038122", 1200)
	count(d.deny) == 0
	codes(d.approval) == {"amount_over_limit"}
}

test_finance_lead_refunds_more if {
	allowed(data.lastmile.decision) with input as refund(lead, "INV-00038122", 1200)
}

test_refund_over_the_invoice_amount_denied if {
	d := data.lastmile.decision with input as refund(lead, "INV-00038123", 400)
	codes(d.deny) == {"amount_over_ceiling"}
}

test_refund_for_other_account_denied if {
	d := data.lastmile.decision with input as refund(bob, "INV-00038122", 10)
	codes(d.deny) == {"out_of_scope"}
}

test_refund_without_reason_denied if {
	d := data.lastmile.decision with input as req(alice, "POST", ["v1", "invoices", "INV-00038122", "refunds"], {"amount": 10})
	codes(d.deny) == {"field_required"}
}

# --- create_ticket. ---

test_ticket_allowed if {
	d := data.lastmile.decision with input as req(alice, "POST", ["v1", "tickets"], {"subject": "Invoice INV-00038122 disputed"})
	allowed(d)
	d.dedup == {"key": ["create_ticket", "Invoice INV-00038122 disputed"], "window_seconds": 600, "shared": false}
}

# --- The neutral request lastmile proves a bundle with. ---

test_neutral_request_denied if {
	d := data.lastmile.decision with input as {"version": 1, "route": "", "request": {"method": "GET", "path": "/", "segments": [], "query": {}, "headers": {}, "body": null}, "user": null, "approval": null, "now_ns": 0}
	codes(d.deny) == {"unknown_tool"}
}

test_other_route_denied if {
	d := data.lastmile.decision with input as object.union(req(alice, "GET", ["v1", "invoices"], null), {"route": "tickets"})
	codes(d.deny) == {"unknown_tool"}
}
