# Recipient safety: a request may name a contact only by role ("billing", "ap_clerk"),
# never by a raw address. Code on the far side resolves the role to a destination, so an
# agent talked into "send it to attacker@example.com" has no field to put it in.
#
# Everything the agent writes into a known tool's request is scanned for anything that
# looks like an e-mail address (`raw_recipient`): each top-level body field (and
# everything nested in it), each query parameter (its name and values), and each header
# but the standard ones HTTP defines the meaning of (`exempt_headers`). A tool's optional
# `recipients` section lists the fields naming a contact and the roles each may name
# (`role_fields`), and what is exempt from the scan, for text where an address may appear
# and is sent nowhere (a ticket's description, a search box): top-level body fields
# (`free_text_fields`), query parameters (`free_text_query`) and headers
# (`free_text_headers`). Reasons name the field, parameter or header, never the value.
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

# A query parameter holding an address (in its name or any value) is refused. The same
# prefilter: the whole query as JSON text must contain an "@".
deny contains {"code": "raw_recipient", "message": msg} if {
	query := input.request.query
	contains(json.marshal(query), "@")
	spec := data.lastmile.lib.contracts.spec
	exempt := object.get(object.get(spec, "recipients", {}), "free_text_query", [])
	some name, values in query
	text := json.marshal([name, values])
	contains(text, "@")
	not name in exempt
	regex.match(address_pattern, text)
	msg := sprintf("query parameter '%s' holds an address: name a contact by role%s, never by address", [name, roles_named])
}

# A header the agent sets holding an address is refused, unless it is a standard header
# or one the tool exempts. lastmile presents names in lower case and hides the identity
# and credential headers, so only what the agent chose to send is judged. The same
# prefilter: the headers as JSON text must contain an "@".
deny contains {"code": "raw_recipient", "message": msg} if {
	headers := input.request.headers
	contains(json.marshal(headers), "@")
	spec := data.lastmile.lib.contracts.spec
	listed := object.get(object.get(spec, "recipients", {}), "free_text_headers", [])
	exempt := {lower(h) | some h in listed}
	some name, value in headers
	contains(value, "@")
	not name in exempt
	not standard_header(name)
	regex.match(address_pattern, value)
	msg := sprintf("header '%s' holds an address: name a contact by role%s, never by address", [name, roles_named])
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

# Headers whose meaning HTTP (RFC 9110/9111) or W3C Trace Context defines, which no API
# reads as a destination, and which clients fill in on their own: a user agent naming its
# operator (`+mailto:ops@...`) or an ETag with an "@" is not a recipient. Hop-by-hop
# headers never reach the upstream. `from` (an address by definition), `referer`,
# `forwarded`, `baggage` and every `x-` header stay scanned.
exempt_headers := {
	"host", "user-agent", "traceparent", "tracestate", "accept", "cache-control", "pragma",
	"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range",
	"range", "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
}

# Prefixes of standard header families: `accept-encoding`, `content-type`, ...
exempt_header_prefixes := ["accept-", "content-"]

standard_header(name) if name in exempt_headers

standard_header(name) if {
	some prefix in exempt_header_prefixes
	startswith(name, prefix)
}

# The roles this tool's role fields accept, for messages: " (ap_clerk, billing)", or ""
# when the tool lists none.
roles_named := concat("", [" (", concat(", ", sort(roles)), ")"]) if {
	roles := {role |
		some _, listed in data.lastmile.lib.contracts.spec.recipients.role_fields
		some role in listed
	}
	count(roles) > 0
} else := ""
