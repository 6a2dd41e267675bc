"""The workloads: which requests each one sends, and how they are handed to the tools.

Every request goes to `/crm/...` on every peer: the proxies strip `/crm` like lastmile's
route does, and the upstream answers 200 to any path, so the direct peer takes the same
paths. `expect` is the status a peer that enforces the invoicing policy must answer; a
peer without policy forwards everything (200).
"""

import json
import os

REMINDER = "/crm/v1/invoices/INV-00038122/reminders"
NOTE = ("Friendly reminder: invoice INV-00038122 for 1,250.00 EUR was due on 27 October "
        "and is now 30 days overdue. ")
# Replaced in every request by a number no other request of the run uses (see
# `sequence_base`): lastmile enforces the policy's dedup intent (create_invoice: account,
# amount, currency), so a repeated body would be answered by a replay instead of being
# forwarded. Unique amounts make every allowed POST a new intent, forwarded upstream.
SEQ = "{{N}}"


def _reminder(denied=False, size=1024):
    """A send_reminder body of about `size` bytes; denied ones name a raw address."""
    body = {"channel": "email", "recipient_role": "billing", "note": ""}
    if denied:
        body["email"] = "cfo@acme.example"
    base = len(json.dumps(body, separators=(",", ":")))
    body["note"] = (NOTE * (size // len(NOTE) + 1))[: max(0, size - base)]
    return json.dumps(body, separators=(",", ":")).encode()


def _invoice(size, denied=False):
    """A create_invoice body of at least `size` bytes (its `lines` array grows), for a new
    amount every request; a denied one adds a field the contract does not allow."""
    lines, body = [], b""
    while len(body) < size:
        n = len(lines) + 1
        lines.append({"sku": f"SKU-{n:05}", "description": f"Consulting hours, week {n}",
                      "quantity": 8, "unit_price": 150.0})
        doc = {"account": "acme", "amount": "AMOUNT", "currency": "EUR", "lines": lines}
        if denied:
            doc["email"] = "cfo@acme.example"
        body = json.dumps(doc, separators=(",", ":")).encode()
    return body.replace(b'"AMOUNT"', b"1200." + SEQ.encode())


def _req(method, path, body=None, expect=200, weight=1):
    return {"method": method, "path": path, "body": body, "expect": expect,
            "weight": weight}


def _mix():
    """Nine allowed calls over six tools (every POST a new intent), then one denied."""
    refund = b'{"amount":1.' + SEQ.encode() + b',"reason":"duplicate charge, October run"}'
    small = b'{"account":"acme","amount":250.' + SEQ.encode() + b',"currency":"USD"}'
    return [
        _req("POST", "/crm/v1/invoices", _invoice(1024)),
        _req("GET", "/crm/v1/invoices?status=open"),
        _req("POST", "/crm/v1/invoices/INV-00038122/refunds", refund),
        _req("GET", "/crm/v1/invoices/INV-00038123"),
        _req("POST", "/crm/v1/invoices", _invoice(600)),
        _req("GET", "/crm/v1/contacts?role=billing"),
        _req("POST", "/crm/v1/invoices", small),
        _req("GET", "/crm/v1/invoices"),
        _req("POST", "/crm/v1/invoices/INV-00038123/refunds", refund),
        _req("POST", REMINDER, _reminder(denied=True), expect=403),
    ]


# name -> (description, requests, TLS upstream?)
WORKLOADS = {
    "get": ("GET pass-through (a scoped invoice search)",
            [_req("GET", "/crm/v1/invoices")], False),
    "post-allow": ("~1 KiB JSON POST (create_invoice, a new intent each), allowed",
                   [_req("POST", "/crm/v1/invoices", _invoice(1024))], False),
    "post-deny": ("the same POST with a forbidden field, denied (403 from policy peers)",
                  [_req("POST", "/crm/v1/invoices", _invoice(1024, denied=True),
                        expect=403)], False),
    "mix": ("90/10 allow/deny mix over six tools", _mix(), False),
    "body-64k": ("64 KiB JSON POST (create_invoice with many lines), allowed",
                 [_req("POST", "/crm/v1/invoices", _invoice(64 * 1024))], False),
    "tls": ("the ~1 KiB allowed POST, TLS to the upstream (the proxy originates TLS)",
            [_req("POST", "/crm/v1/invoices", _invoice(1024))], True),
}

_runs = [0]


def sequence_base():
    """A fresh three-digit prefix for the {{N}} numbers of one load-tool run (the run's
    own counter supplies seven more digits)."""
    _runs[0] += 1
    return _runs[0] % 1000


def preflight_body(body, i):
    """A body for the one-off check requests, with numbers no load run uses."""
    return None if body is None else body.replace(SEQ.encode(), f"999{i:07}".encode())


def write_files(name, requests, headers, directory):
    """Writes the bodies, a wrk Lua script and a loadgen spec; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    spec, lua = [], []
    for i, request in enumerate(requests):
        entry = {"method": request["method"], "path": request["path"],
                 "headers": dict(headers), "weight": request["weight"]}
        body_lua = "nil"
        if request["body"] is not None:
            body_file = f"{name}-{i}.json"
            with open(os.path.join(directory, body_file), "wb") as f:
                f.write(request["body"])
            entry["body_file"] = body_file
            entry["headers"]["content-type"] = "application/json"
            body_lua = f'read("{os.path.join(directory, body_file)}")'
        spec.append(entry)
        hdrs = ", ".join(f'["{k}"] = "{v}"' for k, v in entry["headers"].items())
        for _ in range(request["weight"]):
            lua.append(f'  add("{request["method"]}", "{request["path"]}", {{{hdrs}}}, '
                       f'{body_lua})')
    spec_path = os.path.join(directory, f"{name}.spec.json")
    with open(spec_path, "w") as f:
        json.dump({"requests": spec}, f)
    lua_path = os.path.join(directory, f"{name}.lua")
    with open(lua_path, "w") as f:
        f.write(LUA.replace("{{REQUESTS}}", "\n".join(lua)))
    return spec_path, lua_path


# Requests without {{N}} are formatted once per thread in init(), after wrk has set the
# Host header; those with it are formatted per request with the next number. The cycle
# is fixed. The run's three-digit base comes as the script's argument.
LUA = """local reqs = {}
local i, n, base = 0, 0, 0
local function read(path)
  local f = assert(io.open(path, "rb"))
  local body = f:read("*a")
  f:close()
  return body
end
local function add(method, path, headers, body)
  if body and body:find("{{N}}", 1, true) then
    local pre, post = body:match("^(.-){{N}}(.*)$")
    table.insert(reqs, {method = method, path = path, headers = headers, pre = pre, post = post})
  else
    table.insert(reqs, wrk.format(method, path, headers, body))
  end
end
function init(args)
  base = tonumber(args[1] or "0")
{{REQUESTS}}
end
function request()
  i = i % #reqs + 1
  local r = reqs[i]
  if type(r) == "string" then return r end
  n = (n + 1) % 10000000
  return wrk.format(r.method, r.path, r.headers, r.pre .. string.format("%03d%07d", base, n) .. r.post)
end
"""
