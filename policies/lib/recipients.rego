# Recipient safety: a request may name a contact only by role ("billing", "ap_clerk"),
# never by a raw address. Code on the far side resolves the role to a destination, so an
# agent talked into "send it to attacker@example.com" has no field to put it in.
#
# Every tool's body is scanned (each top-level field, and everything nested in it) for
# anything that looks like an e-mail address (`raw_recipient`). A tool's optional
# `recipients` section lists the fields naming a contact and the roles each may name
# (`role_fields`), and top-level fields exempt from the scan (`free_text_fields`, for
# text where an address may appear and is sent nowhere, e.g. a ticket's description).
# The data schema is documented in policies/README.md ("lastmile.lib.recipients").
package lastmile.lib.recipients

# What an address looks like: something@something, with no space, quote or JSON
# punctuation next to the "@". Matched against JSON text.
address_pattern := `[^@\s"\[\]{},:]+@[^@\s"\[\]{},:]+`

# A field holding an address (at any depth) is refused. A cheap prefilter runs first: the
# whole body as JSON text must contain an "@", so most bodies never reach the regex.
deny contains {"code": "raw_recipient", "message": msg} if {
	body := data.lastmile.lib.contracts.body
	contains(json.marshal(body), "@")
	spec := data.lastmile.lib.contracts.spec
	exempt := object.get(object.get(spec, "recipients", {}), "free_text_fields", [])
	some field, value in body
	text := json.marshal(value)
	contains(text, "@")
	not field in exempt
	regex.match(address_pattern, text)
	msg := sprintf("field '%s' holds an address: name a contact by role%s, never by address", [field, roles_named])
}

# A field listed in `role_fields` must name one of the roles listed for it.
deny contains {"code": "value_not_allowed", "message": msg} if {
	role_fields := data.lastmile.lib.contracts.spec.recipients.role_fields
	body := data.lastmile.lib.contracts.body
	some field, roles in role_fields
	value := body[field]
	not value in roles
	msg := sprintf("%s must name a role (%s), not %v", [field, concat(", ", roles), value])
}

# Recipient rules never ask for approval; the set exists so bundles can union every
# package.
approval := set()

# --- Helpers. -------------------------------------------------------------------------

# The roles this tool's role fields accept, for messages: " (ap_clerk, billing)", or ""
# when the tool lists none.
roles_named := concat("", [" (", concat(", ", sort(roles)), ")"]) if {
	roles := {role |
		some _, listed in data.lastmile.lib.contracts.spec.recipients.role_fields
		some role in listed
	}
	count(roles) > 0
} else := ""
