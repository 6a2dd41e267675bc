# The demo policy for the sample CRM: tool contracts, the acting user's scope, recipient
# safety and an amount limit. `lastmile demo` serves this directory; edit it while the
# demo runs and the change is live within a second.
package lastmile

# The decision document lastmile reads (see the README, "Policy contract").
decision := object.union(
	{
		"deny": deny,
		"approval": approval,
		"add_query": add_query,
	},
	named,
)

# The tool's name for the trace, when the request is one of the tools below.
named := {"tool": tool}

default named := {}

segments := input.request.segments

body := input.request.body if is_object(input.request.body)

default body := {}

# --- Tool contracts: which API calls the agent may make, and with which fields. -------

tool := "list_invoices" if {
	input.request.method == "GET"
	segments == ["v1", "invoices"]
}

tool := "get_invoice" if {
	input.request.method == "GET"
	count(segments) == 3
	segments[1] == "invoices"
}

tool := "send_reminder" if {
	input.request.method == "POST"
	count(segments) == 4
	segments[1] == "invoices"
	segments[3] == "reminders"
}

tool := "create_invoice" if {
	input.request.method == "POST"
	segments == ["v1", "invoices"]
}

tool := "list_contacts" if {
	input.request.method == "GET"
	segments == ["v1", "contacts"]
}

tool := "create_ticket" if {
	input.request.method == "POST"
	segments == ["v1", "tickets"]
}

deny contains {"code": "unknown_tool", "message": msg} if {
	not tool
	msg := sprintf("%s %s is not an allowed tool call", [input.request.method, input.request.path])
}

deny contains {"code": "field_not_allowed", "message": msg} if {
	some field, _ in body
	not field in data.tools[tool].allowed_fields
	msg := sprintf("field '%s' may not be set by %s", [field, tool])
}

deny contains {"code": "field_required", "message": msg} if {
	some field in data.tools[tool].required_fields
	not field in object.keys(body)
	msg := sprintf("%s requires the field '%s'", [tool, field])
}

deny contains {"code": "value_not_allowed", "message": msg} if {
	some field, allowed in data.tools[tool].enums
	value := body[field]
	not value in allowed
	msg := sprintf("%s may not be %v (allowed: %v)", [field, value, allowed])
}

# --- Record IDs: the agent may only name invoices by their canonical ID. --------------

invoice_id := segments[2] if {
	tool in {"get_invoice", "send_reminder"}
}

deny contains {"code": "bad_id", "message": msg} if {
	id := invoice_id
	not regex.match(`^INV-[0-9]{8}$`, id)
	msg := sprintf("'%s' is not an invoice ID (INV- and 8 digits)", [id])
}

# --- Scope: the acting user may only touch the accounts their token names. ------------

user_accounts := {substring(s, count("account:"), -1) |
	some s in input.user.scope
	startswith(s, "account:")
}

deny contains {"code": "out_of_scope", "message": msg} if {
	account := data.invoice_accounts[invoice_id]
	not account in user_accounts
	msg := sprintf("invoice %s belongs to an account outside the acting user's scope", [invoice_id])
}

# An invoice the policy does not know cannot be shown to be in scope: refuse it.
deny contains {"code": "out_of_scope", "message": msg} if {
	id := invoice_id
	not data.invoice_accounts[id]
	msg := sprintf("invoice %s is not known to be in the acting user's scope", [id])
}

deny contains {"code": "out_of_scope", "message": msg} if {
	tool == "create_invoice"
	not body.account in user_accounts
	msg := sprintf("account '%v' is outside the acting user's scope", [body.account])
}

# Searches are narrowed to the user's accounts, so other records are never candidates.
add_query := {"account": sort(user_accounts)} if {
	tool in {"list_invoices", "list_contacts"}
}

deny contains {"code": "out_of_scope", "message": "the acting user is granted no account to search"} if {
	tool in {"list_invoices", "list_contacts"}
	count(user_accounts) == 0
}

default add_query := {}

# --- Recipient safety: contacts by role only; code resolves the address. --------------

deny contains {"code": "raw_recipient", "message": "name a contact by role (billing, ap_clerk), never by address"} if {
	some _, value in body
	is_string(value)
	contains(value, "@") # a cheap prefilter: most values never reach the regex
	regex.match(`[^@\s]+@[^@\s]+`, value)
}

# --- Amounts: large invoices need a human. --------------------------------------------

approval contains {"code": "amount_over_limit", "message": msg} if {
	tool == "create_invoice"
	body.amount > data.limits.invoice_amount
	msg := sprintf("amount %v is over the limit of %v", [body.amount, data.limits.invoice_amount])
}
