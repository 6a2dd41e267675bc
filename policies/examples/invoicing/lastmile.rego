# Example bundle: the sample CRM's invoicing API (proxy/src/demo/upstream.rs), served on
# the route "crm". The tool contracts, scopes, limits and dedup windows live in data.json;
# the shared library (policies/lib) checks them. This file combines the library's reasons
# and obligations, and adds one rule of its own.
#
# Library rules are referenced by their full path (data.lastmile.lib.<package>.<rule>),
# not through `import`: regorus evaluates every rule of an imported package on first use,
# a full path evaluates only the rule asked for (see policies/README.md, "Performance").
package lastmile

# The decision document lastmile reads (see the README, "Policy contract"): the union of
# every package's reasons, the scope filter for searches, and the dedup intent.
decision := object.union(
	{
		"deny": (((data.lastmile.lib.contracts.deny | data.lastmile.lib.scope.deny) | data.lastmile.lib.amounts.deny) | data.lastmile.lib.recipients.deny) | deny,
		"approval": data.lastmile.lib.amounts.approval,
		"add_query": data.lastmile.lib.scope.add_query,
	},
	data.lastmile.lib.dedup.obligation,
)

# This bundle's own rule: a refund may not exceed the amount of the invoice it refunds
# (the invoice amounts are in data.records.invoices).
deny contains {"code": "amount_over_ceiling", "message": msg} if {
	data.lastmile.lib.contracts.tool == "create_refund"
	id := data.lastmile.lib.contracts.args.invoice_id
	invoice := data.records.invoices[id]
	refund := data.lastmile.lib.amounts.amount
	is_number(refund)
	refund > invoice.amount
	msg := sprintf("a refund of %v is more than the %v of invoice %s", [refund, invoice.amount, id])
}
