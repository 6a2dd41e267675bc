# Amount limits: money moved by one call. Over the tool's limit a person must approve
# (`approval`, code amount_over_limit); over its hard ceiling the call is refused
# outright (`deny`, code amount_over_ceiling). Limits and ceilings can differ per role.
#
# A tool's `amount` section names the body field holding the amount (`field`, default
# "amount"), the `limit` and `ceiling`, and per-role overrides in `roles`. A user holding
# several roles with an override gets the highest of them; a user holding none gets the
# tool's default. Without a `limit` nothing needs approval; without a `ceiling` nothing
# is refused for its size.
# The data schema is documented in policies/README.md ("lastmile.lib.amounts").
package lastmile.lib.amounts

# The body field holding the amount.
field := object.get(data.lastmile.lib.contracts.spec.amount, "field", "amount")

# The amount field as sent; undefined when the body has no such field
# (`required_fields` says whether it must be there).
sent := body[field] if {
	body := data.lastmile.lib.contracts.body
}

# The amount the request moves. A form-encoded body (Stripe's `amount=250000`) carries
# every value as a string: there a plain decimal numeral is read as its number. Anything
# else stays as sent, so a string amount in JSON, or "-5", "1e9", " 10" in a form, is
# refused below as not a number.
amount := to_number(sent) if {
	is_string(sent)
	form_body
	regex.match(`^[0-9]{1,15}(\.[0-9]{1,15})?$`, sent)
} else := sent

form_body if {
	content_type := input.request.content_type
	is_string(content_type)
	startswith(lower(content_type), "application/x-www-form-urlencoded")
}

# The approval limit that applies to the acting user: the highest `limit` among the
# overrides of the roles they hold (the token's `roles` claim), else the tool's `limit`.
limit := max(values) if {
	overrides := data.lastmile.lib.contracts.spec.amount.roles
	values := [v |
		is_array(input.user.roles)
		some role in input.user.roles
		v := overrides[role].limit
	]
	count(values) > 0
} else := data.lastmile.lib.contracts.spec.amount.limit

# The hard ceiling that applies to the acting user, chosen the same way.
ceiling := max(values) if {
	overrides := data.lastmile.lib.contracts.spec.amount.roles
	values := [v |
		is_array(input.user.roles)
		some role in input.user.roles
		v := overrides[role].ceiling
	]
	count(values) > 0
} else := data.lastmile.lib.contracts.spec.amount.ceiling

# An amount must be a number: a string would compare by type, not by value.
deny contains {"code": "value_not_allowed", "message": msg} if {
	data.lastmile.lib.contracts.spec.amount
	value := amount
	not is_number(value)
	msg := sprintf("%s must be a number", [field])
}

# An amount may not be negative: a negative refund is a charge.
deny contains {"code": "value_not_allowed", "message": msg} if {
	data.lastmile.lib.contracts.spec.amount
	is_number(amount)
	amount < 0
	msg := sprintf("%s may not be negative", [field])
}

# Over the hard ceiling: refused, whoever approves.
deny contains {"code": "amount_over_ceiling", "message": msg} if {
	data.lastmile.lib.contracts.spec.amount
	is_number(amount)
	amount > ceiling
	msg := sprintf("%s %v is over the hard ceiling of %v for %s", [field, amount, ceiling, data.lastmile.lib.contracts.tool])
}

# An amount may not exceed an amount recorded in data: a refund no larger than the
# invoice it refunds. `record_ceiling` names the argument holding the record's ID
# (`arg`), its collection in data.records (`collection`) and the record's field holding
# the amount (`field`).
deny contains {"code": "amount_over_ceiling", "message": msg} if {
	config := data.lastmile.lib.contracts.spec.amount.record_ceiling
	is_number(amount)
	args := data.lastmile.lib.contracts.args
	id := args[config.arg]
	records := data.records
	recorded := records[config.collection][id][config.field]
	amount > recorded
	msg := sprintf("%s %v is more than the %s %v of %v", [field, amount, config.field, recorded, id])
}

# Over the limit but within the ceiling: a person must approve.
approval contains {"code": "amount_over_limit", "message": msg} if {
	data.lastmile.lib.contracts.spec.amount
	is_number(amount)
	amount > limit
	not amount > ceiling
	msg := sprintf("%s %v is over the limit of %v for %s; a person must approve", [field, amount, limit, data.lastmile.lib.contracts.tool])
}
