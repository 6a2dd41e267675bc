# Example bundle: a ticketing API (create, comment on and close tickets, and search
# them). Its tools match on every route, so serve it on a route of its own. The tool
# contracts, scopes and dedup windows live in data.json; the shared library
# (policies/lib) checks them. This file combines the library's reasons and obligations
# and adds two things of its own: closing a high-priority ticket needs a person's
# approval, and every forwarded call names the acting user to the upstream.
#
# Library rules are referenced by their full path (data.lastmile.lib.<package>.<rule>),
# not through `import`: regorus evaluates every rule of an imported package on first use,
# a full path evaluates only the rule asked for (see policies/README.md, "Performance").
package lastmile

# The decision document lastmile reads (see the README, "Policy contract").
decision := object.union(object.union(
	{
		"deny": ((data.lastmile.lib.contracts.deny | data.lastmile.lib.scope.deny) | data.lastmile.lib.amounts.deny) | data.lastmile.lib.recipients.deny,
		"approval": data.lastmile.lib.amounts.approval | approval,
		"add_headers": object.union(data.lastmile.lib.scope.add_headers, acting_user),
	},
	data.lastmile.lib.dedup.obligation,
), data.lastmile.lib.contracts.named)

# Closing a high-priority ticket needs a person's approval (ticket priorities are in
# data.records.tickets).
approval contains {"code": "high_priority_close", "message": msg} if {
	data.lastmile.lib.contracts.tool == "close_ticket"
	id := data.lastmile.lib.contracts.args.ticket_id
	tickets := data.records.tickets
	tickets[id].priority == "high"
	msg := sprintf("ticket %s has high priority: a person must approve closing it", [id])
}

# The upstream's audit log names the person the agent acts for.
acting_user := {"x-acting-user": input.user.sub} if is_string(input.user.sub)

default acting_user := {}
