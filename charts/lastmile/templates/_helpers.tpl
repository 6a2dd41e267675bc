{{/*
Internal helpers. Every helper that the public sidecar templates (_sidecar.tpl) call uses
only .Values and .Release, so a parent chart can call them with
(dict "Values" .Values.lastmile "Release" .Release).
*/}}

{{/* The "lastmile" part of names. */}}
{{- define "lastmile.name" -}}
{{- default "lastmile" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-lastmile, or the release name alone when it already contains the name. */}}
{{- define "lastmile.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "lastmile.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A name derived from the full name: (list . "suffix"). */}}
{{- define "lastmile.componentName" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "lastmile.fullname" $root | trunc (int (sub 62 (len $suffix)))) $suffix | trimSuffix "-" -}}
{{- end -}}

{{- define "lastmile.configMapName" -}}
{{- include "lastmile.componentName" (list . "config") -}}
{{- end -}}

{{- define "lastmile.policyConfigMapName" -}}
{{- if .Values.policy.configMapName -}}
{{- .Values.policy.configMapName -}}
{{- else -}}
{{- include "lastmile.componentName" (list . "policies") -}}
{{- end -}}
{{- end -}}

{{- define "lastmile.stateClaimName" -}}
{{- if .Values.state.persistence.existingClaim -}}
{{- .Values.state.persistence.existingClaim -}}
{{- else -}}
{{- include "lastmile.componentName" (list . "state") -}}
{{- end -}}
{{- end -}}

{{- define "lastmile.exampleAgentName" -}}
{{- include "lastmile.componentName" (list . "example-agent") -}}
{{- end -}}

{{/* Labels on every resource of the chart (needs .Chart: chart templates only). */}}
{{- define "lastmile.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lastmile.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lastmile
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "lastmile.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lastmile.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The example agent's pod selector. */}}
{{- define "lastmile.exampleAgentSelectorLabels" -}}
{{ include "lastmile.selectorLabels" . }}
app.kubernetes.io/component: example-agent
{{- end -}}

{{/* Labels of the pods that carry the sidecar (podSelector, else the example agent's). */}}
{{- define "lastmile.podSelectorLabels" -}}
{{- if .Values.podSelector -}}
{{- toYaml .Values.podSelector -}}
{{- else -}}
{{- include "lastmile.exampleAgentSelectorLabels" . -}}
{{- end -}}
{{- end -}}

{{- define "lastmile.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (required "image.tag (or image.digest) is required" .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Fixed paths inside the sidecar. Mount points are siblings: none is inside another
volume, so every volume is mounted whole (no subPath) and updates in place. */}}
{{- define "lastmile.configDir" -}}/etc/lastmile/config{{- end -}}
{{- define "lastmile.configPath" -}}/etc/lastmile/config/lastmile.yaml{{- end -}}
{{- define "lastmile.credentialsDir" -}}/etc/lastmile/credentials{{- end -}}
{{- define "lastmile.credentialCaDir" -}}/etc/lastmile/credential-ca{{- end -}}
{{- define "lastmile.identityKeysDir" -}}/etc/lastmile/identity/keys{{- end -}}
{{- define "lastmile.identityHs256Dir" -}}/etc/lastmile/identity/hs256{{- end -}}
{{- define "lastmile.identityJwksCaDir" -}}/etc/lastmile/identity/jwks-ca{{- end -}}
{{- define "lastmile.approversDir" -}}/etc/lastmile/approvers{{- end -}}
{{- define "lastmile.adminTokenDir" -}}/etc/lastmile/admin{{- end -}}

{{/* Cross-field checks the JSON schema cannot express; fails the render with a reason. */}}
{{- define "lastmile.validate" -}}
{{- $v := .Values -}}
{{- if not $v.routes -}}
{{- fail "routes: at least one route is required" -}}
{{- end -}}
{{- $names := dict -}}
{{- range $v.routes -}}
{{- if hasKey $names .name -}}
{{- fail (printf "routes: the name %q is used twice" .name) -}}
{{- end -}}
{{- $_ := set $names .name true -}}
{{- if not (regexMatch "^https?://" .upstream) -}}
{{- fail (printf "routes[%s].upstream: %q must start with http:// or https://" .name .upstream) -}}
{{- end -}}
{{- end -}}
{{- range $v.routes -}}
{{- $mode := dig "credential" "mode" "static" . -}}
{{- if and (ne $mode "static") (not $v.identity.enabled) -}}
{{- fail (printf "routes[%s].credential.mode %s acts for the verified user: it needs identity.enabled" .name $mode) -}}
{{- end -}}
{{- if and .credential .credential.ca .credential.ca.secretName .credential.ca.configMapName -}}
{{- fail (printf "routes[%s].credential.ca: set secretName or configMapName, not both" .name) -}}
{{- end -}}
{{- end -}}
{{- if $v.identity.enabled -}}
{{- $sources := 0 -}}
{{- if $v.identity.keys.secretName }}{{ $sources = add1 $sources }}{{ end -}}
{{- if $v.identity.keys.configMapName }}{{ $sources = add1 $sources }}{{ end -}}
{{- if and $v.identity.keys.secretName $v.identity.keys.configMapName -}}
{{- fail "identity.keys: set secretName or configMapName, not both" -}}
{{- end -}}
{{- if $v.identity.hs256.secretName }}{{ $sources = add1 $sources }}{{ end -}}
{{- if $v.identity.jwksUrl }}{{ $sources = add1 $sources }}{{ end -}}
{{- if eq $sources 0 -}}
{{- fail "identity.enabled: set identity.keys.secretName, identity.keys.configMapName, identity.hs256.secretName or identity.jwksUrl" -}}
{{- end -}}
{{- if and $v.identity.jwksCa.configMapName (not $v.identity.jwksUrl) -}}
{{- fail "identity.jwksCa needs identity.jwksUrl" -}}
{{- end -}}
{{- end -}}
{{- if and $v.dedup.redis.url $v.dedup.redis.existingSecret -}}
{{- fail "dedup.redis: set url or existingSecret, not both" -}}
{{- end -}}
{{- if and $v.approvals.enabled (not $v.approvals.approvers.secretName) (not (and $v.identity.enabled $v.approvals.jwtAudience)) -}}
{{- fail "approvals.enabled: set approvals.approvers.secretName, or enable identity and set approvals.jwtAudience (approver JWTs), or nobody can approve" -}}
{{- end -}}
{{- if and $v.approvals.jwtAudience (eq $v.approvals.jwtAudience ($v.identity.audience | default "")) -}}
{{- fail "approvals.jwtAudience must differ from identity.audience: the agent holds user tokens for that audience" -}}
{{- end -}}
{{- end -}}

{{/* The lastmile config file (YAML). Only fields the proxy knows are written: it rejects
unknown fields at start. Optional route fields are written only when set, so the proxy's
own defaults apply. */}}
{{- define "lastmile.configFile" -}}
{{- $v := .Values -}}
{{- $policies := dict
  "dir" $v.policy.mountPath
  "entrypoint" $v.policy.entrypoint
  "eval_timeout_ms" (int64 $v.policy.evalTimeoutMs)
  "reload_debounce_ms" (int64 $v.policy.reloadDebounceMs)
  "poll_interval_seconds" (int64 $v.policy.pollIntervalSeconds) -}}
{{- $routes := list -}}
{{- range $v.routes -}}
{{- $route := dict "name" .name "upstream" .upstream -}}
{{- if .prefix }}{{ $_ := set $route "prefix" .prefix }}{{ end -}}
{{- if .hosts }}{{ $_ := set $route "hosts" .hosts }}{{ end -}}
{{- if .caFile }}{{ $_ := set $route "ca_file" .caFile }}{{ end -}}
{{- with .credential -}}
{{- $dir := printf "%s/%s" (include "lastmile.credentialsDir" $) $route.name -}}
{{- $mode := .mode | default "static" -}}
{{- $credential := dict -}}
{{- if eq $mode "static" -}}
{{- $credential = dict
  "header" (.header | default "authorization")
  "value_file" (printf "%s/%s" $dir (.secretKey | default "token")) -}}
{{- if .prefix }}{{ $_ := set $credential "prefix" .prefix }}{{ end -}}
{{- else -}}
{{- $credential = dict "mode" $mode -}}
{{- if .header }}{{ $_ := set $credential "header" .header }}{{ end -}}
{{- if hasKey . "prefix" }}{{ $_ := set $credential "prefix" .prefix }}{{ end -}}
{{- end -}}
{{- if eq $mode "per_user" -}}
{{- $_ := set $credential "dir" $dir -}}
{{- if .claim }}{{ $_ := set $credential "claim" .claim }}{{ end -}}
{{- else if eq $mode "token_exchange" -}}
{{- $_ := set $credential "token_endpoint" .tokenEndpoint -}}
{{- $_ := set $credential "client_id" .clientId -}}
{{- with .clientAssertionKey -}}
{{- $_ := set $credential "client_assertion_key_file" (printf "%s/%s" $dir (.key | default "client-key.pem")) -}}
{{- $_ := set $credential "client_assertion_alg" .alg -}}
{{- if .kid }}{{ $_ := set $credential "client_assertion_kid" .kid }}{{ end -}}
{{- else -}}
{{- $_ := set $credential "client_secret_file" (printf "%s/%s" $dir (.clientSecret.key | default "client-secret")) -}}
{{- end -}}
{{- if .audience }}{{ $_ := set $credential "audience" .audience }}{{ end -}}
{{- if .resource }}{{ $_ := set $credential "resource" .resource }}{{ end -}}
{{- if .scope }}{{ $_ := set $credential "scope" .scope }}{{ end -}}
{{- if .subjectTokenType }}{{ $_ := set $credential "subject_token_type" .subjectTokenType }}{{ end -}}
{{- if .timeoutMs }}{{ $_ := set $credential "timeout_ms" (int64 .timeoutMs) }}{{ end -}}
{{- with .ca -}}
{{- $_ := set $credential "ca_file" (printf "%s/%s/%s" (include "lastmile.credentialCaDir" $) $route.name (.key | default "ca.crt")) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $route "credential" $credential -}}
{{- end -}}
{{- if .mode }}{{ $_ := set $route "mode" .mode }}{{ end -}}
{{- if .timeoutMs }}{{ $_ := set $route "timeout_ms" (int64 .timeoutMs) }}{{ end -}}
{{- if .connectTimeoutMs }}{{ $_ := set $route "connect_timeout_ms" (int64 .connectTimeoutMs) }}{{ end -}}
{{- if .maxBodyBytes }}{{ $_ := set $route "max_body_bytes" (int64 .maxBodyBytes) }}{{ end -}}
{{- if hasKey . "requireUser" }}{{ $_ := set $route "require_user" .requireUser }}{{ end -}}
{{- $routes = append $routes $route -}}
{{- end -}}
{{- $trace := dict "output" $v.trace.output "ring_size" (int64 $v.trace.ringSize) "include_body" $v.trace.includeBody -}}
{{- if $v.trace.redactFields }}{{ $_ := set $trace "redact_fields" $v.trace.redactFields }}{{ end -}}
{{- $config := dict
  "listen" (printf "%s:%d" $v.proxy.listenAddress (int $v.proxy.listenPort))
  "admin_listen" (printf "%s:%d" $v.proxy.adminAddress (int $v.proxy.adminPort))
  "policies" $policies
  "routes" $routes
  "trace" $trace
  "server" (dict "header_read_timeout_ms" (int64 $v.proxy.headerReadTimeoutMs) "shutdown_grace_ms" (int64 $v.proxy.shutdownGraceMs)) -}}
{{- if $v.proxy.adminToken.secretName -}}
{{- $_ := set $config "admin" (dict "token_file" (printf "%s/%s" (include "lastmile.adminTokenDir" .) $v.proxy.adminToken.key)) -}}
{{- end -}}
{{- if $v.identity.enabled -}}
{{- $identity := dict "header" $v.identity.header "leeway_seconds" (int64 $v.identity.leewaySeconds) -}}
{{- if or $v.identity.keys.secretName $v.identity.keys.configMapName -}}
{{- $_ := set $identity "keys_file" (printf "%s/%s" (include "lastmile.identityKeysDir" .) $v.identity.keys.key) -}}
{{- end -}}
{{- if $v.identity.hs256.secretName -}}
{{- $_ := set $identity "hs256_secret_file" (printf "%s/%s" (include "lastmile.identityHs256Dir" .) $v.identity.hs256.key) -}}
{{- end -}}
{{- if $v.identity.jwksUrl }}{{ $_ := set $identity "jwks_url" $v.identity.jwksUrl }}{{ end -}}
{{- if $v.identity.jwksCa.configMapName -}}
{{- $_ := set $identity "jwks_ca_file" (printf "%s/%s" (include "lastmile.identityJwksCaDir" .) $v.identity.jwksCa.key) -}}
{{- end -}}
{{- if $v.identity.issuer }}{{ $_ := set $identity "issuer" $v.identity.issuer }}{{ end -}}
{{- if $v.identity.audience }}{{ $_ := set $identity "audience" $v.identity.audience }}{{ end -}}
{{- $_ := set $config "identity" $identity -}}
{{- end -}}
{{- if or $v.dedup.redis.url $v.dedup.redis.existingSecret -}}
{{- $redis := dict "url_env" "LASTMILE_DEDUP_REDIS_URL" "key_prefix" ($v.dedup.redis.keyPrefix | default (printf "lastmile:dedup:%s:" .Release.Name)) -}}
{{- $_ := set $config "dedup" (dict "store" "redis" "redis" $redis) -}}
{{- end -}}
{{- if $v.approvals.enabled -}}
{{- $approvals := dict
  "store_path" (printf "%s/approvals.db" $v.state.mountPath)
  "expire_after_seconds" (int64 $v.approvals.expireAfterSeconds)
  "approver_role" $v.approvals.approverRole
  "max_wait_seconds" (int64 $v.approvals.maxWaitSeconds) -}}
{{- if $v.approvals.approvers.secretName -}}
{{- $_ := set $approvals "approvers_file" (printf "%s/%s" (include "lastmile.approversDir" .) $v.approvals.approvers.key) -}}
{{- end -}}
{{- if and $v.identity.enabled $v.approvals.jwtAudience }}{{ $_ := set $approvals "jwt_audience" $v.approvals.jwtAudience }}{{ end -}}
{{- if $v.approvals.publicUrl }}{{ $_ := set $approvals "public_url" $v.approvals.publicUrl }}{{ end -}}
{{- if $v.approvals.webhook.url -}}
{{- $_ := set $approvals "webhook" (dict "url" $v.approvals.webhook.url "timeout_ms" (int64 $v.approvals.webhook.timeoutMs) "max_attempts" (int64 $v.approvals.webhook.maxAttempts)) -}}
{{- end -}}
{{- $_ := set $config "approvals" $approvals -}}
{{- end -}}
{{- $config = mustMergeOverwrite $config (deepCopy $v.proxy.extraConfig) -}}
{{- toYaml $config -}}
{{- end -}}

{{/* A DNS-1123 volume name for a route's credential: route names may hold '_'. */}}
{{- define "lastmile.credentialVolumeName" -}}
{{- printf "lastmile-credential-%d" (int .) -}}
{{- end -}}

{{/* The volume of a token_exchange route's CA for its token endpoint. */}}
{{- define "lastmile.credentialCaVolumeName" -}}
{{- printf "lastmile-credential-ca-%d" (int .) -}}
{{- end -}}
