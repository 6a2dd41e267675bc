"""The upstream and the peers: their configs, and how each is started.

Every server runs one worker on loopback: nginx `worker_processes 1`, HAProxy `nbthread
1`, Envoy `--concurrency 1`, lastmile `TOKIO_WORKER_THREADS=1`, the OPA authz service one
thread (plus the Go runtime's own). A peer is started with a plain or a TLS upstream and
stopped before the next one starts, so peers never compete with each other.
"""

import base64
import os

from . import procs

UPSTREAM, UPSTREAM_TLS = 18081, 18443
BODY = ('{"invoices":[{"id":"INV-00038122","account":"acme","amount":1250.00,'
        '"currency":"EUR","status":"open","due":"2026-10-27"},{"id":"INV-00038123",'
        '"account":"acme","amount":310.50,"currency":"EUR","status":"paid",'
        '"due":"2026-09-30"}],"next":null}')

# name -> (description, listen port)
PEERS = {
    "direct": ("direct to the upstream (the floor)", UPSTREAM),
    "nginx": ("nginx 1.22 reverse proxy, no policy", 18082),
    "haproxy": ("HAProxy 2.6 reverse proxy, no policy", 18083),
    "envoy": ("Envoy 1.40 router, no policy", 18084),
    "envoy-opa": ("Envoy 1.40 + jwt_authn + ext_authz to OPA v1.20 (same Rego)", 18085),
    "lastmile-pass": ("lastmile, pass-through policy (bench/policies/allow-all)", 18086),
    "lastmile-full": ("lastmile, invoicing bundle + library, identity tokens", 18087),
    # The full configuration with more of the trace: the upstream's bodies recorded, or
    # every record also exported as an OTLP span (to the upstream nginx, which answers
    # 200 to anything: the collector's own cost is not the peer's).
    "lastmile-full-bodies": ("lastmile-full, response bodies recorded in the trace", 18088),
    "lastmile-full-otlp": ("lastmile-full, every record exported as an OTLP span", 18089),
}
FULL_PEERS = ("lastmile-full", "lastmile-full-bodies", "lastmile-full-otlp")
POLICY_PEERS = ("envoy-opa",) + FULL_PEERS


def _write(ctx, name, text):
    path = os.path.join(ctx.work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def start_upstream(ctx):
    """nginx `return 200` with a JSON body, one worker, plain and TLS listeners."""
    conf = _write(ctx, "upstream.conf", f"""
worker_processes 1; daemon off; pid {ctx.work}/upstream.pid; error_log {ctx.work}/upstream.err;
events {{ worker_connections 4096; }}
http {{ access_log off; client_max_body_size 2m; client_body_buffer_size 128k;
  server {{ listen 127.0.0.1:{UPSTREAM} reuseport; listen 127.0.0.1:{UPSTREAM_TLS} ssl;
    ssl_certificate {ctx.chain}; ssl_certificate_key {ctx.key};
    keepalive_requests 1000000;
    location / {{ default_type application/json; return 200 '{BODY}'; }} }} }}
""")
    proc = procs.start("upstream", ["nginx", "-c", conf], ctx.work)
    procs.wait_http(f"http://127.0.0.1:{UPSTREAM}/", proc=proc, expect=200)
    return proc


def start(ctx, name, tls):
    """Starts a peer; returns the PIDs whose CPU and memory are the peer's cost."""
    if name == "direct":
        return [ctx.upstream.pid]
    started = {"nginx": _nginx, "haproxy": _haproxy, "envoy": _envoy,
               "envoy-opa": _envoy_opa, "lastmile-pass": _lastmile,
               "lastmile-full": _lastmile, "lastmile-full-bodies": _lastmile,
               "lastmile-full-otlp": _lastmile}[name](ctx, name, tls)
    port = PEERS[name][1]
    headers = {"x-lastmile-user": ctx.token}
    for proc in started:
        procs.wait_http(f"http://127.0.0.1:{port}/crm/v1/invoices", headers=headers,
                        proc=proc, expect=200, timeout=30)
    return started


def _upstream_url(tls):
    return f"https://127.0.0.1:{UPSTREAM_TLS}" if tls else f"http://127.0.0.1:{UPSTREAM}"


def _nginx(ctx, name, tls):
    ssl = (f"proxy_ssl_trusted_certificate {ctx.cert}; proxy_ssl_verify on; "
           "proxy_ssl_name localhost; proxy_ssl_session_reuse on;") if tls else ""
    port = UPSTREAM_TLS if tls else UPSTREAM
    scheme = "https" if tls else "http"
    conf = _write(ctx, "nginx.conf", f"""
worker_processes 1; daemon off; pid {ctx.work}/nginx.pid; error_log {ctx.work}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; client_max_body_size 2m; client_body_buffer_size 128k;
  upstream up {{ server 127.0.0.1:{port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{PEERS[name][1]}; keepalive_requests 1000000;
    location /crm/ {{ proxy_pass {scheme}://up/; proxy_http_version 1.1;
      proxy_set_header Connection ""; {ssl} }} }} }}
""")
    return [procs.start(name, ["nginx", "-c", conf], ctx.work)]


def _haproxy(ctx, name, tls):
    ssl = f" ssl verify required ca-file {ctx.cert} sni str(localhost)" if tls else ""
    port = UPSTREAM_TLS if tls else UPSTREAM
    # maxconn stays well under the file-descriptor limit (20000 here).
    conf = _write(ctx, "haproxy.cfg", f"""
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:{PEERS[name][1]}
  default_backend be
backend be
  http-request replace-path /crm(/.*) \\1
  server up 127.0.0.1:{port}{ssl}
""")
    return [procs.start(name, ["haproxy", "-db", "-f", conf], ctx.work)]


def _envoy_cluster(ctx, name, port, tls):
    tls_socket = f"""
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: localhost
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: {ctx.cert}}}
            match_typed_subject_alt_names: [{{san_type: DNS, matcher: {{exact: localhost}}}}]""" \
        if tls else ""
    return f"""
  - name: {name}
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}{tls_socket}"""


def _envoy_filters(ctx):
    """jwt_authn verifies the token (HS256, as lastmile does) and forwards its payload;
    ext_authz sends method, path, headers and body to the OPA service."""
    key = base64.urlsafe_b64encode(ctx.secret).decode().rstrip("=")
    jwks = '{"keys":[{"kty":"oct","alg":"HS256","k":"' + key + '"}]}'
    return f"""
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  issuer: https://idp.bench
                  audiences: [lastmile]
                  local_jwks: {{inline_string: '{jwks}'}}
                  from_headers: [{{name: x-lastmile-user}}]
                  forward_payload_header: x-jwt-payload
              rules: [{{match: {{prefix: /}}, requires: {{provider_name: bench}}}}]
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              failure_mode_allow: false
              with_request_body: {{max_request_bytes: 1048576, allow_partial_message: false}}
              http_service:
                server_uri: {{uri: "http://127.0.0.1:{ctx.authz_port}", cluster: authz, timeout: 2s}}
                authorization_request:
                  allowed_headers:
                    patterns: [{{exact: content-type}}, {{exact: x-jwt-payload}}, {{exact: x-request-id}}]"""


def _envoy_config(ctx, name, tls, policy):
    port = UPSTREAM_TLS if tls else UPSTREAM
    clusters = _envoy_cluster(ctx, "upstream", port, tls)
    if policy:
        clusters += _envoy_cluster(ctx, "authz", ctx.authz_port, False)
    return _write(ctx, f"{name}.yaml", f"""
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {PEERS[name][1] + 1000}}}}}}}
static_resources:
  listeners:
  - name: ingress
    address: {{socket_address: {{address: 127.0.0.1, port_value: {PEERS[name][1]}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{match: {{prefix: /crm/}}, route: {{cluster: upstream, prefix_rewrite: /}}}}]
          http_filters:{_envoy_filters(ctx) if policy else ""}
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:{clusters}
""")


def _envoy(ctx, name, tls, policy=False):
    conf = _envoy_config(ctx, name, tls, policy)
    argv = [ctx.envoy, "-c", conf, "--concurrency", "1", "--disable-hot-restart",
            "-l", "warning", "--base-id", str(PEERS[name][1])]
    return [procs.start(name, argv, ctx.work)]


def _envoy_opa(ctx, name, tls):
    authz = procs.start("opa-authz", [
        ctx.opa_authz, "--listen", f"127.0.0.1:{ctx.authz_port}", "--library", ctx.opa_lib,
        "--bundle", ctx.bundle, "--lib", ctx.library], ctx.work)
    procs.wait_http(f"http://127.0.0.1:{ctx.authz_port}/", proc=authz)
    return [authz] + _envoy(ctx, name, tls, policy=True)


def _trace_extra(name):
    """The trace settings a peer adds to the file output."""
    if name == "lastmile-full-bodies":
        return ", include_response_body: true"
    if name == "lastmile-full-otlp":
        return f", otlp: {{endpoint: 'http://127.0.0.1:{UPSTREAM}/v1/traces'}}"
    return ""


def _lastmile(ctx, name, tls):
    full = name in FULL_PEERS
    port = PEERS[name][1]
    lines = [f"listen: 127.0.0.1:{port}", f"admin_listen: 127.0.0.1:{port + 10}"]
    if full:
        lines += [f"policies: {{dir: {ctx.policy_dir(name)}, library_dirs: [{ctx.library}]}}",
                  f"identity: {{hs256_secret_file: {ctx.secret_file}, "
                  "issuer: https://idp.bench, audience: lastmile}"]
    else:
        lines += [f"policies: {{dir: {ctx.policy_dir(name)}}}"]
    ca = f", ca_file: {ctx.cert}" if tls else ""
    lines += ["routes:",
              f"  - {{name: crm, prefix: /crm, upstream: '{_upstream_url(tls)}'{ca}, "
              f"require_user: {'true' if full else 'false'},",
              f"     credential: {{header: authorization, value_file: {ctx.crm_token}, "
              "prefix: 'Bearer '}}",
              f"trace: {{output: {ctx.work}/{name}-trace.jsonl{_trace_extra(name)}}}"]
    conf = _write(ctx, f"{name}.yaml", "\n".join(lines) + "\n")
    # MIMALLOC_ARENA_EAGER_COMMIT=0 as in the container image (see the Dockerfile).
    env = {"TOKIO_WORKER_THREADS": "1", "RUST_LOG": "warn", "MIMALLOC_ARENA_EAGER_COMMIT": "0"}
    return [procs.start(name, [ctx.lastmile, "run", "--config", conf], ctx.work, env)]
