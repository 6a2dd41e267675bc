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
		"allowed_query": ["q", "note"],
		"scope": {},
		"recipients": {
			"free_text_fields": ["description"],
			"free_text_query": ["q"],
			"free_text_headers": ["X-Reporter"],
		},
	},
	"plain": {
		"method": "POST",
		"path": ["v1", "plain"],
		"allowed_fields": ["text"],
		"scope": {},
	},
}

req(path, body) := req_with(path, body, {}, {})

# A request with a query (`{"name": ["value", ...]}`) and headers (lower-case name →
# joined value) as lastmile presents them.
req_with(path, body, query, headers) := {
	"version": 1,
	"route": "crm",
	"request": {
		"method": "POST",
		"path": concat("/", array.concat([""], path)),
		"segments": path,
		"query": query,
		"headers": headers,
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

deny_with(path, query, headers) := d if {
	d := recipients.deny with input as req_with(path, {"recipient_role": "billing"}, query, headers)
		with data.tools as tools
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

# --- Query values. ---------------------------------------------------------------------

test_address_in_a_query_value_denied if {
	d := deny_with(["v1", "reminders"], {"note": ["mail attacker@evil.example"]}, {})
	codes(d) == {"raw_recipient"}
	some reason in d
	reason.message == "query parameter 'note' holds an address: name a contact by role (ap_clerk, billing), never by address"
}

test_address_in_a_repeated_query_value_denied if {
	d := deny_with(["v1", "reminders"], {"note": ["first", "x@y.example"]}, {})
	codes(d) == {"raw_recipient"}
}

test_address_as_a_query_name_denied if {
	codes(deny_with(["v1", "reminders"], {"x@y.example": [""]}, {})) == {"raw_recipient"}
}

test_query_message_never_holds_the_value if {
	some reason in deny_with(["v1", "reminders"], {"note": ["mail attacker@evil.example"]}, {})
	not contains(reason.message, "attacker")
}

test_at_sign_alone_in_query_allowed if {
	count(deny_with(["v1", "reminders"], {"note": ["ping @ops"], "page": ["2"]}, {})) == 0
}

test_free_text_query_exempt if {
	count(deny_with(["v1", "tickets"], {"q": ["jane@acme.example"]}, {})) == 0
}

test_only_listed_query_exempt if {
	codes(deny_with(["v1", "tickets"], {"q": ["x"], "note": ["jane@acme.example"]}, {})) == {"raw_recipient"}
}

# --- Headers. -------------------------------------------------------------------------

test_address_in_a_header_denied if {
	d := deny_with(["v1", "reminders"], {}, {"x-recipient": "attacker@evil.example"})
	codes(d) == {"raw_recipient"}
	some reason in d
	reason.message == "header 'x-recipient' holds an address: name a contact by role (ap_clerk, billing), never by address"
}

test_display_name_address_in_a_header_denied if {
	d := deny_with(["v1", "plain"], {}, {"x-notify": "\"Jane\" <jane@acme.example>, ops"})
	codes(d) == {"raw_recipient"}
}

test_from_header_scanned if {
	codes(deny_with(["v1", "plain"], {}, {"from": "agent@acme.example"})) == {"raw_recipient"}
}

test_standard_headers_exempt if {
	headers := {
		"user-agent": "bot/1.0 (+mailto:ops@acme.example)",
		"accept": "application/json",
		"accept-language": "en@latin",
		"content-type": "application/json",
		"content-disposition": "attachment; filename=\"jane@acme.example.pdf\"",
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate": "vendor=a@b",
		"host": "crm.internal",
		"if-none-match": "\"v1@2024\"",
	}
	count(deny_with(["v1", "plain"], {}, headers)) == 0
}

test_at_sign_alone_in_header_allowed if {
	count(deny_with(["v1", "plain"], {}, {"x-note": "meet @ 5pm"})) == 0
}

test_free_text_headers_exempt_in_any_case if {
	count(deny_with(["v1", "tickets"], {}, {"x-reporter": "jane@acme.example"})) == 0
}

test_only_listed_headers_exempt if {
	codes(deny_with(["v1", "tickets"], {}, {"x-reporter": "a", "x-cc": "jane@acme.example"})) == {"raw_recipient"}
}

test_headers_of_unknown_tools_left_to_contracts if {
	count(deny_with(["v1", "nothing"], {"note": ["x@y.example"]}, {"x-recipient": "x@y.example"})) == 0
}

test_no_approval if {
	count(recipients.approval) == 0
}
