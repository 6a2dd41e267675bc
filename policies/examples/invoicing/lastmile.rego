# Example bundle: the sample CRM's invoicing API (proxy/src/demo/upstream.rs), served on
# the route "crm". Everything this API needs is configuration: the tool contracts,
# scopes, amount limits and dedup windows live in data.json, and the shared library
# (policies/lib) checks them. This file only combines the library's reasons and
# obligations into the decision; see the ticketing example for rules of a bundle's own.
#
# Library rules are referenced by their full path (data.lastmile.lib.<package>.<rule>),
# not through `import`: regorus evaluates every rule of an imported package on first use,
# a full path evaluates only the rule asked for (see policies/README.md, "Performance").
package lastmile

# The decision document lastmile reads (see the README, "Policy contract"): the union of
# every package's reasons, the scope filter for searches, and the dedup intent.
decision := object.union(object.union(
	{
		"deny": ((data.lastmile.lib.contracts.deny | data.lastmile.lib.scope.deny) | data.lastmile.lib.amounts.deny) | data.lastmile.lib.recipients.deny,
		"approval": data.lastmile.lib.amounts.approval,
		"add_query": data.lastmile.lib.scope.add_query,
	},
	data.lastmile.lib.dedup.obligation,
), data.lastmile.lib.contracts.named)
