package lastmile_test

import data.lastmile

alice := {"sub": "u_alice", "scope": ["account:acme"]}

req(method, segments, body) := {
	"route": "crm",
	"request": {
		"method": method,
		"path": concat("/", array.concat([""], segments)),
		"segments": segments,
		"body": body,
	},
	"user": alice,
}

codes(d) := {r.code | some r in d.deny}

test_reminder_allowed if {
	d := lastmile.decision with input as req("POST", ["v1", "invoices", "INV-00038122", "reminders"], {"channel": "email", "recipient_role": "billing"})
	count(d.deny) == 0
	count(d.approval) == 0
}

test_extra_field_denied if {
	d := lastmile.decision with input as req("POST", ["v1", "invoices", "INV-00038122", "reminders"], {"channel": "email", "recipient_role": "billing", "email": "cfo@acme.example"})
	"field_not_allowed" in codes(d)
	"raw_recipient" in codes(d)
}

test_other_account_denied if {
	d := lastmile.decision with input as req("GET", ["v1", "invoices", "INV-00041007"], null)
	codes(d) == {"out_of_scope"}
}

test_bad_id_denied if {
	d := lastmile.decision with input as req("GET", ["v1", "invoices", "42"], null)
	"bad_id" in codes(d)
}

test_search_scoped if {
	d := lastmile.decision with input as req("GET", ["v1", "invoices"], null)
	d.add_query == {"account": ["acme"]}
}

test_large_invoice_needs_approval if {
	d := lastmile.decision with input as req("POST", ["v1", "invoices"], {"account": "acme", "amount": 250000, "currency": "EUR"})
	count(d.deny) == 0
	{r.code | some r in d.approval} == {"amount_over_limit"}
}

test_unknown_invoice_denied if {
	d := lastmile.decision with input as req("GET", ["v1", "invoices", "INV-99999999"], null)
	codes(d) == {"out_of_scope"}
}

test_search_without_accounts_denied if {
	d := lastmile.decision with input as object.union(req("GET", ["v1", "invoices"], null), {"user": {"sub": "u_x", "scope": []}})
	codes(d) == {"out_of_scope"}
}
