# Tests of lastmile.lib.scope, on a small contract and record set of their own.
package lastmile.lib.scope_test

import data.lastmile.lib.scope

tools := {
	"search": {
		"method": "GET",
		"path": ["v1", "things"],
		"scope": {"filter_query": "account"},
	},
	"search_by_header": {
		"method": "GET",
		"path": ["v1", "others"],
		"scope": {"filter_header": "x-account-scope"},
	},
	"get_thing": {
		"method": "GET",
		"path": ["v1", "things", ":thing_id"],
		"id_patterns": {"thing_id": "^T-[0-9]{4}$"},
		"scope": {"record_fields": {"thing_id": "things"}},
	},
	"create_thing": {
		"method": "POST",
		"path": ["v1", "things"],
		"allowed_fields": ["account"],
		"scope": {"account_fields": ["account"]},
	},
	"get_team_doc": {
		"method": "GET",
		"path": ["v1", "docs", ":doc_id"],
		"scope": {"claim": "team", "record_fields": {"doc_id": "docs"}},
	},
	"ping": {
		"method": "GET",
		"path": ["v1", "ping"],
		"scope": {},
	},
	"unscoped": {
		"method": "GET",
		"path": ["v1", "unscoped"],
	},
}

records := {
	"things": {
		"T-0001": {"account": "acme"},
		"T-0002": {"account": "globex"},
	},
	"docs": {"D-1": {"team": "ops"}},
}

alice := {"sub": "u_alice", "scope": ["account:acme", "team:ops"]}

bob := {"sub": "u_bob", "scope": ["account:globex"]}

multi := {"sub": "u_multi", "scope": ["account:globex", "account:acme", "other"]}

req(user, method, path, body) := {
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
	"user": user,
	"approval": null,
	"now_ns": 0,
}

with_query(r, query) := object.union(r, {"request": object.union(r.request, {"query": query})})

codes(reasons) := {r.code | some r in reasons}

# --- The user's grants. ---

test_granted_accounts if {
	g := scope.granted with input as req(multi, "GET", ["v1", "things"], null) with data.tools as tools
	g == {"acme", "globex"}
}

test_nothing_granted_without_a_user if {
	g := scope.granted with input as req(null, "GET", ["v1", "things"], null) with data.tools as tools
	g == set()
}

test_nothing_granted_for_a_non_list_scope if {
	g := scope.granted with input as req({"scope": "account:acme"}, "GET", ["v1", "things"], null) with data.tools as tools
	g == set()
}

test_claim_kind_is_configurable if {
	g := scope.granted with input as req(alice, "GET", ["v1", "docs", "D-1"], null) with data.tools as tools
	g == {"ops"}
}

# --- Records named by the request. ---

test_own_record_allowed if {
	d := scope.deny with input as req(alice, "GET", ["v1", "things", "T-0001"], null)
		with data.tools as tools
		with data.records as records
	count(d) == 0
}

test_other_accounts_record_denied if {
	d := scope.deny with input as req(bob, "GET", ["v1", "things", "T-0001"], null)
		with data.tools as tools
		with data.records as records
	codes(d) == {"out_of_scope"}
	some reason in d
	reason.message == "T-0001 (things) belongs to an account outside the acting user's scope"
}

test_record_denied_without_a_user if {
	d := scope.deny with input as req(null, "GET", ["v1", "things", "T-0001"], null)
		with data.tools as tools
		with data.records as records
	codes(d) == {"out_of_scope"}
}

test_unknown_record_denied if {
	d := scope.deny with input as req(alice, "GET", ["v1", "things", "T-0009"], null)
		with data.tools as tools
		with data.records as records
	codes(d) == {"out_of_scope"}
}

test_unknown_record_denied_without_any_records if {
	d := scope.deny with input as req(alice, "GET", ["v1", "things", "T-0001"], null)
		with data.tools as tools
	codes(d) == {"out_of_scope"}
}

test_malformed_id_left_to_contracts if {
	d := scope.deny with input as req(alice, "GET", ["v1", "things", "42"], null)
		with data.tools as tools
		with data.records as records
	count(d) == 0
}

test_record_of_another_claim_kind if {
	d := scope.deny with input as req(alice, "GET", ["v1", "docs", "D-1"], null)
		with data.tools as tools
		with data.records as records
	count(d) == 0
	d2 := scope.deny with input as req(bob, "GET", ["v1", "docs", "D-1"], null)
		with data.tools as tools
		with data.records as records
	codes(d2) == {"out_of_scope"}
	some reason in d2
	reason.message == "D-1 (docs) belongs to a team outside the acting user's scope"
}

# --- Accounts named by the request. ---

test_own_account_allowed if {
	d := scope.deny with input as req(alice, "POST", ["v1", "things"], {"account": "acme"}) with data.tools as tools
	count(d) == 0
}

test_other_account_denied if {
	d := scope.deny with input as req(alice, "POST", ["v1", "things"], {"account": "globex"}) with data.tools as tools
	codes(d) == {"out_of_scope"}
}

test_non_string_account_denied if {
	d := scope.deny with input as req(alice, "POST", ["v1", "things"], {"account": ["acme"]}) with data.tools as tools
	codes(d) == {"out_of_scope"}
}

# --- Tools without a scope. ---

test_explicitly_unscoped_tool_allowed if {
	d := scope.deny with input as req(null, "GET", ["v1", "ping"], null) with data.tools as tools
	count(d) == 0
}

test_tool_without_scope_section_denied if {
	d := scope.deny with input as req(alice, "GET", ["v1", "unscoped"], null) with data.tools as tools
	codes(d) == {"out_of_scope"}
}

test_unknown_tool_left_to_contracts if {
	d := scope.deny with input as req(alice, "GET", ["v1", "nothing"], null) with data.tools as tools
	count(d) == 0
}

# --- Searches. ---

test_search_narrowed_to_granted_accounts if {
	r := req(multi, "GET", ["v1", "things"], null)
	q := scope.add_query with input as r with data.tools as tools
	q == {"account": ["acme", "globex"]}
	d := scope.deny with input as r with data.tools as tools
	count(d) == 0
}

test_search_narrowed_further_by_the_agent if {
	r := with_query(req(multi, "GET", ["v1", "things"], null), {"account": ["globex"]})
	q := scope.add_query with input as r with data.tools as tools
	q == {"account": ["globex"]}
	d := scope.deny with input as r with data.tools as tools
	count(d) == 0
}

test_search_widened_by_the_agent_denied if {
	r := with_query(req(alice, "GET", ["v1", "things"], null), {"account": ["acme", "globex"]})
	d := scope.deny with input as r with data.tools as tools
	codes(d) == {"out_of_scope"}
	some reason in d
	reason.message == "account 'globex' is outside the acting user's scope"
}

test_search_without_grants_denied if {
	r := req(null, "GET", ["v1", "things"], null)
	d := scope.deny with input as r with data.tools as tools
	codes(d) == {"out_of_scope"}
	q := scope.add_query with input as r with data.tools as tools
	q == {}
}

test_search_narrowed_by_header if {
	r := req(multi, "GET", ["v1", "others"], null)
	h := scope.add_headers with input as r with data.tools as tools
	h == {"x-account-scope": "acme,globex"}
	q := scope.add_query with input as r with data.tools as tools
	q == {}
}

test_header_search_without_grants_denied if {
	d := scope.deny with input as req(null, "GET", ["v1", "others"], null) with data.tools as tools
	codes(d) == {"out_of_scope"}
}

test_no_obligations_for_other_tools if {
	r := req(alice, "GET", ["v1", "things", "T-0001"], null)
	q := scope.add_query with input as r with data.tools as tools with data.records as records
	h := scope.add_headers with input as r with data.tools as tools with data.records as records
	q == {}
	h == {}
}

test_no_approval if {
	count(scope.approval) == 0
}
