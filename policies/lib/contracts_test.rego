# Tests of lastmile.lib.contracts, on a small contract of their own (`tools` below).
package lastmile.lib.contracts_test

import data.lastmile.lib.contracts

tools := {
	"list_things": {
		"route": "crm",
		"method": "GET",
		"path": ["v1", "things"],
		"allowed_query": ["status", "thing"],
		"enums": {"status": ["open", "closed"]},
		"id_patterns": {"thing": "^T-[0-9]{4}$"},
		"scope": {"filter_query": "account"},
	},
	"get_thing": {
		"route": "crm",
		"method": "GET",
		"path": ["v1", "things", ":thing_id"],
		"id_patterns": {"thing_id": "^T-[0-9]{4}$"},
		"scope": {},
	},
	"poke_thing": {
		"route": "crm",
		"method": "POST",
		"path": ["v1", "things", ":thing_id", "pokes"],
		"allowed_fields": ["strength", "note", "tags", "thing_id"],
		"required_fields": ["strength"],
		"enums": {"strength": ["gentle", "firm"]},
		"types": {"note": "string", "tags": "array"},
		"max_lengths": {"note": 10},
		"id_patterns": {"thing_id": "^T-[0-9]{4}$"},
		"scope": {},
	},
	"link_thing": {
		"route": "crm",
		"method": "POST",
		"path": ["v1", "links"],
		"allowed_fields": ["thing"],
		"id_patterns": {"thing": "^T-[0-9]{4}$"},
		"scope": {},
	},
	"anywhere": {
		"method": "GET",
		"path": ["v1", "anywhere"],
		"scope": {},
	},
}

req(method, path, body) := {
	"version": 1,
	"route": "crm",
	"request": {
		"method": method,
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

with_query(r, query) := object.union(r, {"request": object.union(r.request, {"query": query})})

codes(reasons) := {r.code | some r in reasons}

poke := req("POST", ["v1", "things", "T-0001", "pokes"], {"strength": "gentle"})

# --- Tool matching. ---

test_literal_path_matches if {
	contracts.tool == "list_things" with input as req("GET", ["v1", "things"], null) with data.tools as tools
}

test_named_gives_the_tool_for_the_decision if {
	contracts.named == {"tool": "list_things"} with input as req("GET", ["v1", "things"], null) with data.tools as tools
}

test_named_is_empty_when_no_tool_matches if {
	contracts.named == {} with input as req("DELETE", ["v1", "things"], null) with data.tools as tools
}

test_placeholder_matches_any_segment if {
	contracts.tool == "get_thing" with input as req("GET", ["v1", "things", "whatever"], null) with data.tools as tools
}

test_method_must_match if {
	not contracts.tool with input as req("DELETE", ["v1", "things", "T-0001"], null) with data.tools as tools
}

test_segment_count_must_match if {
	not contracts.tool with input as req("GET", ["v1", "things", "T-0001", "extra"], null) with data.tools as tools
}

test_literal_segments_must_match if {
	not contracts.tool with input as req("POST", ["v1", "things", "T-0001", "kicks"], {}) with data.tools as tools
}

test_route_must_match if {
	r := object.union(req("GET", ["v1", "things"], null), {"route": "billing"})
	not contracts.tool with input as r with data.tools as tools
}

test_tool_without_route_matches_any_route if {
	r := object.union(req("GET", ["v1", "anywhere"], null), {"route": "billing"})
	contracts.tool == "anywhere" with input as r with data.tools as tools
}

test_spec_is_the_tools_contract if {
	s := contracts.spec with input as req("GET", ["v1", "things", "T-0001"], null) with data.tools as tools
	s == tools.get_thing
}

test_unknown_tool_denied if {
	d := contracts.deny with input as req("DELETE", ["v1", "things"], null) with data.tools as tools
	codes(d) == {"unknown_tool"}
	some r in d
	r.message == "DELETE /v1/things is not a tool call this agent may make"
}

test_unknown_tool_denied_on_an_input_without_a_request if {
	d := contracts.deny with input as {} with data.tools as tools
	codes(d) == {"unknown_tool"}
}

test_unknown_tool_denied_without_any_contract if {
	d := contracts.deny with input as req("GET", ["v1", "things"], null) with data.tools as {}
	codes(d) == {"unknown_tool"}
}

test_known_tool_allowed if {
	d := contracts.deny with input as poke with data.tools as tools
	count(d) == 0
}

# --- Arguments. ---

test_args_join_placeholders_and_body if {
	a := contracts.args with input as poke with data.tools as tools
	a == {"thing_id": "T-0001", "strength": "gentle"}
}

test_placeholder_wins_over_body_field if {
	r := req("POST", ["v1", "things", "T-0001", "pokes"], {"strength": "gentle", "thing_id": "T-9999"})
	a := contracts.args with input as r with data.tools as tools
	a.thing_id == "T-0001"
}

test_body_is_empty_object_unless_an_object if {
	b := contracts.body with input as req("GET", ["v1", "things"], null) with data.tools as tools
	b == {}
}

# --- Body fields. ---

test_field_not_allowed if {
	r := req("POST", ["v1", "things", "T-0001", "pokes"], {"strength": "gentle", "email": "x"})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"field_not_allowed"}
	some reason in d
	reason.message == "field 'email' may not be set by poke_thing"
}

test_no_fields_allowed_without_allowed_fields if {
	r := req("GET", ["v1", "things", "T-0001"], {"x": 1})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"field_not_allowed"}
}

test_body_not_an_object_denied if {
	r := req("POST", ["v1", "things", "T-0001", "pokes"], ["gentle"])
	d := contracts.deny with input as r with data.tools as tools
	"field_not_allowed" in codes(d)
}

test_body_not_json_denied if {
	r := object.union(req("POST", ["v1", "things", "T-0001", "pokes"], null), {"request": {"body_bytes": 12}})
	d := contracts.deny with input as r with data.tools as tools
	"field_not_allowed" in codes(d)
}

opaque(r) := object.union(r, {"request": {"body": null, "body_opaque": true, "body_bytes": 5, "content_type": "text/plain"}})

test_opaque_body_denied_by_default if {
	d := contracts.deny with input as opaque(poke) with data.tools as tools
	codes(d) == {"opaque_body", "field_required"}
}

test_opaque_body_denied_without_a_tool if {
	r := opaque(req("POST", ["v1", "nothing"], null))
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"opaque_body", "unknown_tool"}
}

test_opaque_body_accepted_by_a_tool_that_opts_in if {
	t := object.union(tools, {"upload": {"route": "crm", "method": "PUT", "path": ["v1", "files"], "opaque_body": true, "scope": {}}})
	r := opaque(req("PUT", ["v1", "files"], null))
	d := contracts.deny with input as r with data.tools as t
	count(d) == 0
}

test_form_body_checked_like_json if {
	r := object.union(req("POST", ["v1", "things", "T-0001", "pokes"], {"strength": "gentle", "email": "a@b.example"}), {"request": {"body_opaque": false, "content_type": "application/x-www-form-urlencoded"}})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"field_not_allowed"}
}

test_bodiless_get_allowed if {
	r := object.union(req("GET", ["v1", "things", "T-0001"], null), {"request": {"body_bytes": 0}})
	d := contracts.deny with input as r with data.tools as tools
	count(d) == 0
}

test_field_required if {
	r := req("POST", ["v1", "things", "T-0001", "pokes"], {"note": "hi"})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"field_required"}
	some reason in d
	reason.message == "poke_thing requires the field 'strength'"
}

test_enum_value_not_allowed if {
	r := req("POST", ["v1", "things", "T-0001", "pokes"], {"strength": "brutal"})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"value_not_allowed"}
}

test_type_not_allowed if {
	r := req("POST", ["v1", "things", "T-0001", "pokes"], {"strength": "firm", "note": 5, "tags": "a"})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"value_not_allowed"}
	count(d) == 2
}

test_types_allowed if {
	r := req("POST", ["v1", "things", "T-0001", "pokes"], {"strength": "firm", "note": "ok", "tags": []})
	d := contracts.deny with input as r with data.tools as tools
	count(d) == 0
}

test_too_long_denied if {
	r := req("POST", ["v1", "things", "T-0001", "pokes"], {"strength": "firm", "note": "far too long"})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"value_not_allowed"}
}

test_max_length_is_inclusive if {
	r := req("POST", ["v1", "things", "T-0001", "pokes"], {"strength": "firm", "note": "0123456789"})
	d := contracts.deny with input as r with data.tools as tools
	count(d) == 0
}

# --- IDs. ---

test_bad_path_id_denied if {
	d := contracts.deny with input as req("GET", ["v1", "things", "42"], null) with data.tools as tools
	codes(d) == {"bad_id"}
}

test_bad_body_id_denied if {
	d := contracts.deny with input as req("POST", ["v1", "links"], {"thing": "T-1"}) with data.tools as tools
	codes(d) == {"bad_id"}
}

test_good_body_id_allowed if {
	d := contracts.deny with input as req("POST", ["v1", "links"], {"thing": "T-0001"}) with data.tools as tools
	count(d) == 0
}

test_non_string_id_denied if {
	d := contracts.deny with input as req("POST", ["v1", "links"], {"thing": 1234}) with data.tools as tools
	codes(d) == {"bad_id"}
}

test_id_pattern_is_anchored if {
	d := contracts.deny with input as req("GET", ["v1", "things", "xT-0001"], null) with data.tools as tools
	codes(d) == {"bad_id"}
}

test_id_pattern_digits_are_ascii if {
	d := contracts.deny with input as req("GET", ["v1", "things", "T-٠١٢٣"], null) with data.tools as tools
	codes(d) == {"bad_id"}
}

test_valid_arg if {
	contracts.valid_arg("thing_id") with input as poke with data.tools as tools
	contracts.valid_arg("strength") with input as poke with data.tools as tools
	not contracts.valid_arg("thing_id") with input as req("GET", ["v1", "things", "1"], null) with data.tools as tools
}

# --- Query. ---

test_query_allowed if {
	r := with_query(req("GET", ["v1", "things"], null), {"status": ["open"], "thing": ["T-0001"]})
	d := contracts.deny with input as r with data.tools as tools
	count(d) == 0
}

test_query_parameter_not_allowed if {
	r := with_query(req("GET", ["v1", "things"], null), {"limit": ["10"]})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"field_not_allowed"}
}

test_query_scope_filter_parameter_left_to_scope if {
	r := with_query(req("GET", ["v1", "things"], null), {"account": ["acme"]})
	d := contracts.deny with input as r with data.tools as tools
	count(d) == 0
}

test_query_enum_value_not_allowed if {
	r := with_query(req("GET", ["v1", "things"], null), {"status": ["open", "lost"]})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"value_not_allowed"}
	count(d) == 1
}

test_query_bad_id if {
	r := with_query(req("GET", ["v1", "things"], null), {"thing": ["T-1"]})
	d := contracts.deny with input as r with data.tools as tools
	codes(d) == {"bad_id"}
}

test_no_approval if {
	count(contracts.approval) == 0
}
