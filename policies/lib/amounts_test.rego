# Tests of lastmile.lib.amounts, on a small contract of their own.
package lastmile.lib.amounts_test

import data.lastmile.lib.amounts

tools := {
	"pay": {
		"method": "POST",
		"path": ["v1", "payments"],
		"allowed_fields": ["amount"],
		"scope": {},
		"amount": {
			"limit": 100,
			"ceiling": 1000,
			"roles": {
				"lead": {"limit": 500},
				"director": {"limit": 800, "ceiling": 5000},
				"intern": {"limit": 10},
			},
		},
	},
	"refund": {
		"method": "POST",
		"path": ["v1", "refunds"],
		"allowed_fields": ["value"],
		"scope": {},
		"amount": {"field": "value", "limit": 50},
	},
	"refund_invoice": {
		"method": "POST",
		"path": ["v1", "invoices", ":invoice_id", "refunds"],
		"allowed_fields": ["amount"],
		"scope": {},
		"amount": {
			"limit": 1000,
			"record_ceiling": {"arg": "invoice_id", "collection": "invoices", "field": "total"},
		},
	},
	"cap": {
		"method": "POST",
		"path": ["v1", "caps"],
		"allowed_fields": ["amount"],
		"scope": {},
		"amount": {"ceiling": 10},
	},
	"note": {
		"method": "POST",
		"path": ["v1", "notes"],
		"allowed_fields": ["amount"],
		"scope": {},
	},
}

req(roles, path, body) := {
	"version": 1,
	"route": "crm",
	"request": {
		"method": "POST",
		"path": concat("/", array.concat([""], path)),
		"segments": path,
		"query": {},
		"headers": {},
		"body": body,
	},
	"user": {"sub": "u", "roles": roles},
	"approval": null,
	"now_ns": 0,
}

codes(reasons) := {r.code | some r in reasons}

pay(roles, amount) := req(roles, ["v1", "payments"], {"amount": amount})

test_within_limit_allowed if {
	count(amounts.deny) == 0 with input as pay([], 100) with data.tools as tools
	count(amounts.approval) == 0 with input as pay([], 100) with data.tools as tools
}

test_over_limit_needs_approval if {
	a := amounts.approval with input as pay(["agent"], 101) with data.tools as tools
	codes(a) == {"amount_over_limit"}
	some reason in a
	reason.message == "amount 101 is over the limit of 100 for pay; a person must approve"
	count(amounts.deny) == 0 with input as pay(["agent"], 101) with data.tools as tools
}

test_over_ceiling_denied_without_approval if {
	d := amounts.deny with input as pay([], 1001) with data.tools as tools
	codes(d) == {"amount_over_ceiling"}
	count(amounts.approval) == 0 with input as pay([], 1001) with data.tools as tools
}

test_at_ceiling_needs_approval_only if {
	count(amounts.deny) == 0 with input as pay([], 1000) with data.tools as tools
	codes(amounts.approval) == {"amount_over_limit"} with input as pay([], 1000) with data.tools as tools
}

test_role_raises_the_limit if {
	count(amounts.approval) == 0 with input as pay(["lead"], 400) with data.tools as tools
	codes(amounts.approval) == {"amount_over_limit"} with input as pay(["lead"], 600) with data.tools as tools
}

test_role_can_lower_the_limit if {
	codes(amounts.approval) == {"amount_over_limit"} with input as pay(["intern"], 50) with data.tools as tools
}

test_highest_role_override_wins if {
	amounts.limit == 800 with input as pay(["intern", "lead", "director"], 1) with data.tools as tools
	count(amounts.approval) == 0 with input as pay(["lead", "director"], 700) with data.tools as tools
}

test_role_raises_the_ceiling if {
	amounts.ceiling == 5000 with input as pay(["director"], 1) with data.tools as tools
	count(amounts.deny) == 0 with input as pay(["director"], 4000) with data.tools as tools
	codes(amounts.approval) == {"amount_over_limit"} with input as pay(["director"], 4000) with data.tools as tools
}

test_role_without_ceiling_keeps_the_default if {
	amounts.ceiling == 1000 with input as pay(["lead"], 1) with data.tools as tools
	codes(amounts.deny) == {"amount_over_ceiling"} with input as pay(["lead"], 1500) with data.tools as tools
}

test_defaults_without_a_user if {
	r := object.union(pay([], 150), {"user": null})
	codes(amounts.approval) == {"amount_over_limit"} with input as r with data.tools as tools
}

test_defaults_for_non_list_roles if {
	r := object.union(pay([], 150), {"user": {"roles": "lead"}})
	codes(amounts.approval) == {"amount_over_limit"} with input as r with data.tools as tools
}

test_amount_must_be_a_number if {
	d := amounts.deny with input as pay([], "5000") with data.tools as tools
	codes(d) == {"value_not_allowed"}
	count(amounts.approval) == 0 with input as pay([], "5000") with data.tools as tools
}

test_amount_may_not_be_negative if {
	d := amounts.deny with input as pay([], -5) with data.tools as tools
	codes(d) == {"value_not_allowed"}
}

test_amount_field_is_configurable if {
	r := req([], ["v1", "refunds"], {"value": 60})
	codes(amounts.approval) == {"amount_over_limit"} with input as r with data.tools as tools
	count(amounts.deny) == 0 with input as r with data.tools as tools
}

test_no_limit_no_approval if {
	r := req([], ["v1", "caps"], {"amount": 9})
	count(amounts.approval) == 0 with input as r with data.tools as tools
	r2 := req([], ["v1", "caps"], {"amount": 11})
	codes(amounts.deny) == {"amount_over_ceiling"} with input as r2 with data.tools as tools
}

test_missing_amount_left_to_required_fields if {
	r := req([], ["v1", "payments"], {})
	count(amounts.deny) == 0 with input as r with data.tools as tools
	count(amounts.approval) == 0 with input as r with data.tools as tools
}

test_tool_without_amount_section_ignored if {
	r := req([], ["v1", "notes"], {"amount": "lots"})
	count(amounts.deny) == 0 with input as r with data.tools as tools
	count(amounts.approval) == 0 with input as r with data.tools as tools
}

invoices := {"invoices": {"INV-1": {"total": 300}}}

refund_invoice(id, amount) := req([], ["v1", "invoices", id, "refunds"], {"amount": amount})

test_within_record_ceiling_allowed if {
	count(amounts.deny) == 0 with input as refund_invoice("INV-1", 300) with data.tools as tools with data.records as invoices
}

test_over_record_ceiling_denied if {
	d := amounts.deny with input as refund_invoice("INV-1", 301) with data.tools as tools with data.records as invoices
	codes(d) == {"amount_over_ceiling"}
	some reason in d
	reason.message == "amount 301 is more than the total 300 of INV-1"
}

test_record_ceiling_ignored_for_unknown_records if {
	count(amounts.deny) == 0 with input as refund_invoice("INV-2", 301) with data.tools as tools with data.records as invoices
}

# A form-encoded body (Stripe's `amount=250000`) carries the amount as a string.
form_pay(amount) := object.union(pay([], amount), {"request": object.union(pay([], amount).request, {"content_type": "application/x-www-form-urlencoded"})})

test_form_amounts_are_read_as_numbers if {
	codes(amounts.deny) == {"amount_over_ceiling"} with input as form_pay("250000") with data.tools as tools
	codes(amounts.approval) == {"amount_over_limit"} with input as form_pay("101") with data.tools as tools
	count(amounts.deny) == 0 with input as form_pay("99.50") with data.tools as tools
	count(amounts.approval) == 0 with input as form_pay("99.50") with data.tools as tools
}

test_every_odd_form_amount_is_refused if {
	every bad in ["-5", "1e9", " 10", "0x10", "", "10,5"] {
		"value_not_allowed" in codes(amounts.deny) with input as form_pay(bad) with data.tools as tools
	}
}

test_a_string_amount_in_json_stays_refused if {
	codes(amounts.deny) == {"value_not_allowed"} with input as pay([], "250000") with data.tools as tools
}
