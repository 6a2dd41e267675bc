# Tool contracts: which API calls an agent may make, and with which arguments.
#
# Every entry of `data.tools` names one tool: a route, a method and a path pattern, plus
# what its body and query may hold. A request that matches no tool is denied
# (`unknown_tool`); a request that matches one is checked against that tool's contract.
# The other library packages read the tool, its contract and its arguments from here.
# The data schema is documented in policies/README.md ("lastmile.lib.contracts").
#
# Written for the regorus interpreter's costs (policies/README.md, "Performance"): rule
# bodies start with their cheapest, most selective condition; values used in a loop are
# bound to a local variable first; `data.` paths are never indexed with a variable.
package lastmile.lib.contracts

# --- Which tool the request calls. -----------------------------------------------------

# The tool the request calls: the entry of data.tools whose method, route and path
# pattern match. A pattern segment starting with ":" is a placeholder matching any one
# segment; every other segment must be equal. A tool without `route` matches on every
# route. Two tools matching one request is an error in the contract, and the evaluation
# fails (lastmile refuses the request as a policy_error).
tool := name if {
	segments := input.request.segments
	some name, t in data.tools
	t.method == input.request.method
	count(t.path) == count(segments)
	object.get(t, "route", input.route) == input.route
	count([i | some i, p in t.path; p != segments[i]; not startswith(p, ":")]) == 0
}

# The tool's name for the decision: `{"tool": name}`, or `{}` when no tool matches. The
# trace records which tool a call was.
named := {"tool": tool}

default named := {}

# The matched tool's contract: `data.tools[tool]`.
spec := tools[tool] if {
	tools := data.tools
}

# The parsed body (JSON, or a form: its values are strings) when it is an object; {}
# otherwise.
body := input.request.body if is_object(input.request.body)

default body := {}

# The tool's arguments: its path placeholders and body fields in one object. A
# placeholder is named without its colon, and wins over a body field of the same name:
# ["v1", "invoices", ":invoice_id"] and /v1/invoices/INV-1 give {"invoice_id": "INV-1"}.
# Scope, dedup and ID checks look arguments up by name here.
args := object.union(body, {substring(p, 1, -1): segments[i] |
	segments := input.request.segments
	some i, p in spec.path
	startswith(p, ":")
})

# --- Reasons: the call itself. --------------------------------------------------------

# A request that matches no tool is denied: the contract lists every allowed call.
deny contains {"code": "unknown_tool", "message": msg} if {
	not tool
	msg := concat(" ", [request_line, "is not a tool call this agent may make"])
}

# --- Reasons: the body. ---------------------------------------------------------------

# Only the body fields the tool allows may be set (`allowed_fields`; none when absent).
# object.remove leaves exactly the fields that are not allowed, in one builtin call.
deny contains {"code": "field_not_allowed", "message": msg} if {
	some field, _ in object.remove(body, object.get(spec, "allowed_fields", []))
	msg := sprintf("field '%s' may not be set by %s", [field, tool])
}

# A body that is not a JSON object cannot be checked field by field, so it is refused:
# a JSON array or scalar, or bytes that are not JSON at all (`body` null, `body_bytes`
# over 0). A bodiless request has a null body and no `body_bytes`, and passes.
deny contains {"code": "field_not_allowed", "message": msg} if {
	not is_object(input.request.body)
	input.request.body != null
	spec
	msg := sprintf("%s takes a JSON object body", [tool])
}

deny contains {"code": "field_not_allowed", "message": msg} if {
	input.request.body == null
	object.get(input.request, "body_bytes", 0) != 0
	object.get(input.request, "body_opaque", false) != true
	spec
	msg := sprintf("%s takes a JSON object body, not this one (it is not JSON)", [tool])
}

# A body lastmile forwards without reading it (`body_opaque`: its type is listed in the
# route's `opaque_content_types`, or the route is dry-run) cannot be checked at all, so it
# is denied unless the tool accepts one (`"opaque_body": true`, say for a file upload).
deny contains {"code": "opaque_body", "message": msg} if {
	input.request.body_opaque == true
	not opaque_accepted
	msg := sprintf("%s: the policy cannot read a body of type %v, so it is not sent", [request_line, object.get(input.request, "content_type", null)])
}

opaque_accepted if spec.opaque_body == true

# Every field in `required_fields` must be present in the body. (The count is a fast
# path: when every required field is there, no field is looked at one by one.)
deny contains {"code": "field_required", "message": msg} if {
	required := spec.required_fields
	b := body
	count(object.filter(b, required)) < count(required)
	some field in required
	not field in object.keys(b)
	msg := sprintf("%s requires the field '%s'", [tool, field])
}

# A body field named in `enums` must hold one of the listed values.
deny contains {"code": "value_not_allowed", "message": msg} if {
	enums := spec.enums
	b := body
	some field, allowed in enums
	value := b[field]
	not value in allowed
	msg := sprintf("%s may not be %v (allowed: %v)", [field, value, allowed])
}

# A body field named in `types` must have that JSON type: "string", "number", "boolean",
# "array", "object" or "null".
deny contains {"code": "value_not_allowed", "message": msg} if {
	types := spec.types
	b := body
	some field, wanted in types
	value := b[field]
	type_name(value) != wanted
	msg := sprintf("%s must be of type %s, not %s", [field, wanted, type_name(value)])
}

# A string body field named in `max_lengths` may hold at most that many characters.
deny contains {"code": "value_not_allowed", "message": msg} if {
	max_lengths := spec.max_lengths
	b := body
	some field, most in max_lengths
	value := b[field]
	is_string(value)
	count(value) > most
	msg := sprintf("%s is longer than %v characters", [field, most])
}

# --- Reasons: record IDs. -------------------------------------------------------------

# An argument (path placeholder or body field) named in `id_patterns` must be a string
# matching that regular expression: the agent may name records only canonically.
deny contains {"code": "bad_id", "message": msg} if {
	patterns := spec.id_patterns
	a := args
	some name, pattern in patterns
	value := a[name]
	is_string(value)
	not regex.match(pattern, value)
	msg := sprintf("'%s' is not a valid %s (expected %s)", [value, name, pattern])
}

deny contains {"code": "bad_id", "message": msg} if {
	patterns := spec.id_patterns
	a := args
	some name, _ in patterns
	value := a[name]
	not is_string(value)
	msg := sprintf("%v is not a valid %s (IDs are strings)", [value, name])
}

# --- Reasons: the query. --------------------------------------------------------------

# The query's reasons, only looked at when the request has a query.
deny contains reason if {
	is_object(input.request.query)
	input.request.query != {}
	some reason in query_reasons
}

# Only the query parameters the tool allows may be sent (`allowed_query`; none when
# absent). The scope filter parameter (`scope.filter_query`) is always allowed: the scope
# package checks it and lastmile replaces it.
query_reasons contains {"code": "field_not_allowed", "message": msg} if {
	s := spec
	allowed := object.get(s, "allowed_query", [])
	filter := object.get(object.get(s, "scope", {}), "filter_query", null)
	some name, _ in input.request.query
	not name in allowed
	name != filter
	msg := sprintf("query parameter '%s' may not be sent to %s", [name, tool])
}

# A query parameter named in `enums` may only hold listed values.
query_reasons contains {"code": "value_not_allowed", "message": msg} if {
	enums := spec.enums
	some name, values in input.request.query
	allowed := enums[name]
	some value in values
	not value in allowed
	msg := sprintf("query parameter %s may not be %v (allowed: %v)", [name, value, allowed])
}

# A query parameter named in `id_patterns` must match it.
query_reasons contains {"code": "bad_id", "message": msg} if {
	patterns := spec.id_patterns
	some name, values in input.request.query
	pattern := patterns[name]
	some value in values
	not regex.match(pattern, value)
	msg := sprintf("'%s' is not a valid %s (expected %s)", [value, name, pattern])
}

# Contracts never ask for approval; the set exists so bundles can union every package.
approval := set()

# --- Helpers. -------------------------------------------------------------------------

# True when `value` is a string matching the regular expression `pattern`.
well_formed(pattern, value) if {
	is_string(value)
	regex.match(pattern, value)
}

# True when the argument `name` is well formed, or has no pattern.
valid_arg(name) if well_formed(spec.id_patterns[name], args[name])

valid_arg(name) if not spec.id_patterns[name]

# "METHOD /path" for messages, whatever the input holds.
request_line := sprintf("%v %v", [input.request.method, input.request.path]) if {
	is_string(input.request.method)
	is_string(input.request.path)
} else := "this request"
