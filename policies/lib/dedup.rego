# Dedup: which arguments make two calls the same intent, and for how long a repeat is a
# duplicate. This package only computes the decision's `dedup` object; lastmile keys its
# window on it (see the README, "Decision document").
#
# A tool's `dedup` section lists the arguments forming the intent (`key`: path
# placeholders or body fields, looked up in data.lastmile.lib.contracts.args), the
# window in seconds (`window_seconds`), and whether the intent is the same whoever acts
# (`shared`; when false or absent, lastmile adds the acting user to the key).
# The data schema is documented in policies/README.md ("lastmile.lib.dedup").
package lastmile.lib.dedup

# What a bundle merges into its decision: {"dedup": {...}} for a tool with a `dedup`
# section, {} otherwise. The key is the tool's name, then the value of each listed
# argument (null when the request lacks it); "shared" is true only when the section says
# so. The window is passed on as written: lastmile refuses a decision whose window is not
# a positive whole number of seconds (policy_error), so a mistake there fails closed and
# the bundle's tests show it.
#   {"dedup": {"key": ["send_reminder", "INV-00038122", "email"], "window_seconds": 86400, "shared": true}}
obligation := {"dedup": {"key": key, "window_seconds": config.window_seconds, "shared": object.get(config, "shared", false) == true}} if {
	config := data.lastmile.lib.contracts.spec.dedup
	args := data.lastmile.lib.contracts.args
	key := array.concat([data.lastmile.lib.contracts.tool], [object.get(args, name, null) | some name in config.key])
}

default obligation := {}

# Dedup never denies nor asks for approval; the sets exist so bundles can union every
# package.
deny := set()

approval := set()
