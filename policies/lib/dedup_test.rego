# Tests of lastmile.lib.dedup, on a small contract of their own.
package lastmile.lib.dedup_test

import data.lastmile.lib.dedup

tools := {
	"remind": {
		"method": "POST",
		"path": ["v1", "invoices", ":invoice_id", "reminders"],
		"allowed_fields": ["channel", "note"],
		"scope": {},
		"dedup": {"key": ["invoice_id", "channel"], "window_seconds": 86400, "shared": true},
	},
	"comment": {
		"method": "POST",
		"path": ["v1", "comments"],
		"allowed_fields": ["text"],
		"scope": {},
		"dedup": {"key": ["text", "missing"], "window_seconds": 600},
	},
	"broken": {
		"method": "POST",
		"path": ["v1", "broken"],
		"scope": {},
		"dedup": {"key": ["x"], "window_seconds": 1.5},
	},
	"plain": {
		"method": "POST",
		"path": ["v1", "plain"],
		"scope": {},
	},
}

req(path, body) := {
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
	"user": null,
	"approval": null,
	"now_ns": 0,
}

test_intent_from_placeholder_and_body_field if {
	o := dedup.obligation with input as req(["v1", "invoices", "INV-1", "reminders"], {"channel": "email", "note": "x"})
		with data.tools as tools
	o == {"dedup": {"key": ["remind", "INV-1", "email"], "window_seconds": 86400, "shared": true}}
}

test_other_fields_do_not_change_the_intent if {
	a := dedup.obligation with input as req(["v1", "invoices", "INV-1", "reminders"], {"channel": "email", "note": "x"})
		with data.tools as tools
	b := dedup.obligation with input as req(["v1", "invoices", "INV-1", "reminders"], {"channel": "email", "note": "y"})
		with data.tools as tools
	a == b
}

test_key_fields_change_the_intent if {
	a := dedup.obligation with input as req(["v1", "invoices", "INV-1", "reminders"], {"channel": "email"})
		with data.tools as tools
	b := dedup.obligation with input as req(["v1", "invoices", "INV-1", "reminders"], {"channel": "letter"})
		with data.tools as tools
	a != b
}

test_not_shared_by_default_and_missing_fields_are_null if {
	o := dedup.obligation with input as req(["v1", "comments"], {"text": "hello"}) with data.tools as tools
	o == {"dedup": {"key": ["comment", "hello", null], "window_seconds": 600, "shared": false}}
}

test_window_passed_on_as_written if {
	o := dedup.obligation with input as req(["v1", "broken"], {}) with data.tools as tools
	o.dedup.window_seconds == 1.5
}

test_tool_without_dedup_gives_no_intent if {
	o := dedup.obligation with input as req(["v1", "plain"], {}) with data.tools as tools
	o == {}
}

test_unknown_tool_gives_no_intent if {
	o := dedup.obligation with input as req(["v1", "nothing"], {}) with data.tools as tools
	o == {}
}

test_never_denies_nor_asks if {
	count(dedup.deny) == 0
	count(dedup.approval) == 0
}
