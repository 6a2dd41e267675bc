# Scope: the acting user may only touch the accounts their token's scope names, and
# searches are narrowed to those accounts, so records of other accounts are never even
# candidates.
#
# A user's `scope` claim lists entries such as "account:acme". A tool's `scope` section
# says which arguments name an account (`account_fields`), which name a record whose
# account is looked up in `data.records` (`record_fields`), and how a search is narrowed
# (`filter_query`, `filter_header`). A tool without a `scope` section is refused: declare
# `"scope": {}` for a tool that touches no account's data.
# The data schema is documented in policies/README.md ("lastmile.lib.scope").
package lastmile.lib.scope

# The values the acting user's scope grants for the tool's claim kind (`scope.claim`,
# "account" by default): the entry "account:acme" grants "acme". Empty without a user or
# without such entries.
granted := {substring(s, count(prefix), -1) |
	prefix := concat("", [object.get(data.lastmile.lib.contracts.spec.scope, "claim", "account"), ":"])
	scopes := input.user.scope
	is_array(scopes)
	some s in scopes
	is_string(s)
	startswith(s, prefix)
}

# --- Direct access: accounts and records the request names. ---------------------------

# An argument (path placeholder or body field) listed in `account_fields` names an
# account directly; it must be one the user's scope grants.
deny contains {"code": "out_of_scope", "message": msg} if {
	fields := data.lastmile.lib.contracts.spec.scope.account_fields
	args := data.lastmile.lib.contracts.args
	some name in fields
	value := args[name]
	not value in granted
	msg := sprintf("%s '%v' is outside the acting user's scope", [claim, value])
}

# An argument listed in `record_fields` names a record of a collection, and the record's
# owner must be granted: `data.records[collection][id]` is an object whose claim field
# ("account" by default) names it. A record the policy does not know cannot be checked,
# so it is refused too (fail closed); a malformed ID is left to the contract's `bad_id`.
deny contains {"code": "out_of_scope", "message": msg} if {
	config := data.lastmile.lib.contracts.spec.scope
	fields := config.record_fields
	kind := object.get(config, "claim", "account")
	args := data.lastmile.lib.contracts.args
	some name, collection in fields
	id := args[name]
	owner := object.get(object.get(object.get(records, collection, {}), id, {}), kind, null)
	not owner in granted
	data.lastmile.lib.contracts.valid_arg(name)
	msg := record_message(id, collection, owner)
}

# A known tool without a `scope` section fails closed.
deny contains {"code": "out_of_scope", "message": msg} if {
	not data.lastmile.lib.contracts.spec.scope
	data.lastmile.lib.contracts.spec
	msg := sprintf("the contract of %s declares no scope", [data.lastmile.lib.contracts.tool])
}

# --- Searches: narrowed to the user's scope. ------------------------------------------

# The agent may narrow a search itself (`?account=acme`), never widen it.
deny contains {"code": "out_of_scope", "message": msg} if {
	name := data.lastmile.lib.contracts.spec.scope.filter_query
	values := input.request.query[name]
	some value in values
	not value in granted
	msg := sprintf("%s '%v' is outside the acting user's scope", [claim, value])
}

# A search cannot be narrowed to nothing: an empty filter would drop the parameter and
# let the upstream return every account's records.
deny contains {"code": "out_of_scope", "message": msg} if {
	name := data.lastmile.lib.contracts.spec.scope.filter_query
	count(object.get(object.get(input.request, "query", {}), name, granted)) == 0
	msg := sprintf("the acting user's scope names no %s, so %s cannot be narrowed", [claim, data.lastmile.lib.contracts.tool])
}

deny contains {"code": "out_of_scope", "message": msg} if {
	data.lastmile.lib.contracts.spec.scope.filter_header
	count(granted) == 0
	msg := sprintf("the acting user's scope names no %s, so %s cannot be narrowed", [claim, data.lastmile.lib.contracts.tool])
}

# Obligation: `filter_query` replaces the agent's parameter of that name with the values
# the search is narrowed to (`{"account": ["acme"]}`); lastmile drops whatever the agent
# sent under that name. The values are those the agent asked for (`?account=acme`; any
# outside the scope is denied above), else every granted one.
add_query := {name: sort(values)} if {
	name := data.lastmile.lib.contracts.spec.scope.filter_query
	values := object.get(object.get(input.request, "query", {}), name, granted)
	count(values) > 0
}

default add_query := {}

# Obligation: `filter_header` sends the granted values comma-separated in that header,
# for upstreams that scope by header (`{"x-account-scope": "acme,globex"}`).
add_headers := {name: concat(",", sort(granted))} if {
	name := data.lastmile.lib.contracts.spec.scope.filter_header
	count(granted) > 0
}

default add_headers := {}

# Scope never asks for approval; the set exists so bundles can union every package.
approval := set()

# --- Helpers. -------------------------------------------------------------------------

# The tool's claim kind, for messages.
claim := object.get(data.lastmile.lib.contracts.spec.scope, "claim", "account")

# data.records, or {} when the bundle has none (every record is then unknown).
records := data.records

default records := {}

# Why a record is out of scope, for messages (never naming the record's owner).
record_message(id, collection, null) := sprintf("%v (%s) is not known to the policy, so its %s cannot be checked", [id, collection, claim])

record_message(id, collection, owner) := sprintf("%v (%s) belongs to %s outside the acting user's scope", [id, collection, claim_phrase]) if owner != null

# "an account", "a team": for messages.
claim_phrase := concat(" ", ["an", claim]) if {
	substring(claim, 0, 1) in {"a", "e", "i", "o", "u"}
} else := concat(" ", ["a", claim])
