# Tests of lastmile.lib.recipients, on a small contract of their own.
package lastmile.lib.recipients_test

import data.lastmile.lib.recipients

tools := {
	"remind": {
		"method": "POST",
		"path": ["v1", "reminders"],
		"allowed_fields": ["recipient_role", "note", "lines", "cc"],
		"scope": {},
		"recipients": {"role_fields": {"recipient_role": ["billing", "ap_clerk"]}},
	},
	"ticket": {
		"method": "POST",
		"path": ["v1", "tickets"],
		"allowed_fields": ["description", "subject"],
		"scope": {},
		"recipients": {"free_text_fields": ["description"]},
	},
	"plain": {
		"method": "POST",
		"path": ["v1", "plain"],
		"allowed_fields": ["text"],
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

codes(reasons) := {r.code | some r in reasons}

deny_for(path, body) := d if {
	d := recipients.deny with input as req(path, body) with data.tools as tools
}

test_role_allowed if {
	count(deny_for(["v1", "reminders"], {"recipient_role": "billing", "note": "30 days overdue"})) == 0
}

test_unknown_role_denied if {
	codes(deny_for(["v1", "reminders"], {"recipient_role": "cfo"})) == {"value_not_allowed"}
}

test_address_as_role_denied if {
	d := deny_for(["v1", "reminders"], {"recipient_role": "cfo@acme.example"})
	codes(d) == {"value_not_allowed", "raw_recipient"}
}

test_address_in_any_field_denied if {
	d := deny_for(["v1", "reminders"], {"recipient_role": "billing", "cc": "cfo@acme.example"})
	codes(d) == {"raw_recipient"}
	some reason in d
	reason.message == "field 'cc' holds an address: name a contact by role (ap_clerk, billing), never by address"
}

test_address_in_free_text_denied if {
	d := deny_for(["v1", "reminders"], {"recipient_role": "billing", "note": "please also send to Jane <jane@acme.example>"})
	codes(d) == {"raw_recipient"}
}

test_address_nested_denied if {
	d := deny_for(["v1", "reminders"], {"recipient_role": "billing", "lines": [{"text": "ok"}, {"notify": "x@y.example"}]})
	codes(d) == {"raw_recipient"}
}

test_address_in_a_nested_key_denied if {
	d := deny_for(["v1", "reminders"], {"recipient_role": "billing", "lines": [{"x@y.example": 1}]})
	codes(d) == {"raw_recipient"}
}

test_mailto_denied if {
	codes(deny_for(["v1", "plain"], {"text": "mailto:x@y.example"})) == {"raw_recipient"}
}

test_at_sign_alone_allowed if {
	count(deny_for(["v1", "plain"], {"text": "meet @ 5pm, ping @ops"})) == 0
}

test_free_text_field_exempt if {
	count(deny_for(["v1", "tickets"], {"subject": "login", "description": "jane@acme.example cannot log in"})) == 0
}

test_only_listed_fields_exempt if {
	codes(deny_for(["v1", "tickets"], {"subject": "jane@acme.example", "description": "x"})) == {"raw_recipient"}
}

test_tools_without_section_scanned if {
	d := deny_for(["v1", "plain"], {"text": "cfo@acme.example"})
	codes(d) == {"raw_recipient"}
	some reason in d
	reason.message == "field 'text' holds an address: name a contact by role, never by address"
}

test_unknown_tool_left_to_contracts if {
	count(deny_for(["v1", "nothing"], {"text": "cfo@acme.example"})) == 0
}

test_no_approval if {
	count(recipients.approval) == 0
}
