{{/*
The public named templates: put lastmile into your own agent pod.

Every template takes a context with .Values (this chart's values) and .Release. In this
chart pass `.`; in a parent chart that has lastmile as a dependency pass
  (dict "Values" .Values.lastmile "Release" .Release)
and add the pieces to your Deployment's pod template:

  metadata:
    annotations:
      {{- include "lastmile.sidecar.podAnnotations" $lastmile | nindent 8 }}
  spec:
    initContainers:
      {{- include "lastmile.sidecar.initContainers" $lastmile | nindent 8 }}
    containers:
      - name: agent
        env:
          {{- include "lastmile.sidecar.agentEnv" $lastmile | nindent 12 }}
      {{- include "lastmile.sidecar.containers" $lastmile | nindent 8 }}
    volumes:
      {{- include "lastmile.sidecar.volumes" $lastmile | nindent 8 }}

initContainers gets the sidecar when sidecar.native is true (the default), containers when
it is false; the other one renders nothing. The lastmile release provides the config and
policy ConfigMaps the volumes name, so install it in the same namespace.
*/}}

{{/* The sidecar container: one list item. */}}
{{- define "lastmile.sidecar" -}}
{{- $v := .Values -}}
- name: {{ $v.sidecar.name }}
  image: {{ include "lastmile.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $v.sidecar.native }}
  # A native sidecar: started before the agent, stopped after it.
  restartPolicy: Always
  {{- end }}
  args:
    - run
    - --config
    - {{ include "lastmile.configPath" . }}
  env:
    - name: RUST_LOG
      value: {{ $v.proxy.logLevel | quote }}
    {{- if $v.proxy.workerThreads }}
    - name: TOKIO_WORKER_THREADS
      value: {{ $v.proxy.workerThreads | int | quote }}
    {{- end }}
    {{- if $v.dedup.redis.existingSecret }}
    - name: LASTMILE_DEDUP_REDIS_URL
      valueFrom:
        secretKeyRef:
          name: {{ $v.dedup.redis.existingSecret }}
          key: {{ $v.dedup.redis.existingSecretKey }}
    {{- else if $v.dedup.redis.url }}
    - name: LASTMILE_DEDUP_REDIS_URL
      value: {{ $v.dedup.redis.url | quote }}
    {{- end }}
    {{- with $v.sidecar.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: lastmile-admin
      containerPort: {{ $v.proxy.adminPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /readyz
      port: lastmile-admin
    {{- toYaml $v.probes.startup | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: lastmile-admin
    {{- toYaml $v.probes.readiness | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: lastmile-admin
    {{- toYaml $v.probes.liveness | nindent 4 }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: lastmile-config
      mountPath: {{ include "lastmile.configDir" . }}
      readOnly: true
    - name: lastmile-policies
      mountPath: {{ $v.policy.mountPath }}
      readOnly: true
    {{- range $i, $route := $v.routes }}
    {{- if $route.credential }}
    - name: {{ include "lastmile.credentialVolumeName" $i }}
      mountPath: {{ printf "%s/%s" (include "lastmile.credentialsDir" $) $route.name }}
      readOnly: true
    {{- if and (eq ($route.credential.mode | default "static") "token_exchange") $route.credential.ca }}
    - name: {{ include "lastmile.credentialCaVolumeName" $i }}
      mountPath: {{ printf "%s/%s" (include "lastmile.credentialCaDir" $) $route.name }}
      readOnly: true
    {{- end }}
    {{- end }}
    {{- end }}
    {{- if $v.identity.enabled }}
    {{- if or $v.identity.keys.secretName $v.identity.keys.configMapName }}
    - name: lastmile-identity-keys
      mountPath: {{ include "lastmile.identityKeysDir" . }}
      readOnly: true
    {{- end }}
    {{- if $v.identity.hs256.secretName }}
    - name: lastmile-identity-hs256
      mountPath: {{ include "lastmile.identityHs256Dir" . }}
      readOnly: true
    {{- end }}
    {{- if $v.identity.jwksCa.configMapName }}
    - name: lastmile-identity-jwks-ca
      mountPath: {{ include "lastmile.identityJwksCaDir" . }}
      readOnly: true
    {{- end }}
    {{- end }}
    {{- if and $v.approvals.enabled $v.approvals.approvers.secretName }}
    - name: lastmile-approvers
      mountPath: {{ include "lastmile.approversDir" . }}
      readOnly: true
    {{- end }}
    {{- if $v.proxy.adminToken.secretName }}
    - name: lastmile-admin-token
      mountPath: {{ include "lastmile.adminTokenDir" . }}
      readOnly: true
    {{- end }}
    - name: lastmile-state
      mountPath: {{ $v.state.mountPath }}
    {{- with $v.sidecar.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* For the pod's initContainers: the sidecar in native mode, else nothing. */}}
{{- define "lastmile.sidecar.initContainers" -}}
{{- if .Values.sidecar.native -}}
{{ include "lastmile.sidecar" . }}
{{- end -}}
{{- end -}}

{{/* For the pod's containers: the sidecar in plain-container mode, else nothing. */}}
{{- define "lastmile.sidecar.containers" -}}
{{- if not .Values.sidecar.native -}}
{{ include "lastmile.sidecar" . }}
{{- end -}}
{{- end -}}

{{/* The pod volumes the sidecar mounts (list items). Credentials and identity keys come
from Secrets mounted into the sidecar only: the agent container never mounts them. Every
volume is mounted whole, never with subPath, so Secret and ConfigMap edits reach the
running sidecar (policies are hot-reloaded, credential files re-read). */}}
{{- define "lastmile.sidecar.volumes" -}}
{{- $v := .Values -}}
- name: lastmile-config
  configMap:
    name: {{ include "lastmile.configMapName" . }}
- name: lastmile-policies
  configMap:
    name: {{ include "lastmile.policyConfigMapName" . }}
{{- range $i, $route := $v.routes }}
{{- with $route.credential }}
{{- $mode := .mode | default "static" }}
{{- if eq $mode "per_user" }}
{{- /* Every key of the Secret is a user's file: the whole Secret, no items. */}}
- name: {{ include "lastmile.credentialVolumeName" $i }}
  secret:
    secretName: {{ required (printf "routes[%s].credential.secretName is required" $route.name) .secretName }}
{{- else if eq $mode "token_exchange" }}
{{- if and .clientSecret .clientAssertionKey }}{{ fail (printf "routes[%s].credential: set one of clientSecret or clientAssertionKey" $route.name) }}{{ end }}
{{- $clientSecret := .clientAssertionKey }}
{{- if not $clientSecret }}{{ $clientSecret = required (printf "routes[%s].credential.clientSecret or clientAssertionKey is required" $route.name) .clientSecret }}{{ end }}
{{- $defaultKey := ternary "client-key.pem" "client-secret" (not (empty .clientAssertionKey)) }}
- name: {{ include "lastmile.credentialVolumeName" $i }}
  secret:
    secretName: {{ required (printf "routes[%s].credential client Secret's secretName is required" $route.name) $clientSecret.secretName }}
    items:
      - key: {{ $clientSecret.key | default $defaultKey }}
        path: {{ $clientSecret.key | default $defaultKey }}
{{- with .ca }}
- name: {{ include "lastmile.credentialCaVolumeName" $i }}
{{- if .secretName }}
  secret:
    secretName: {{ .secretName }}
    items:
      - key: {{ .key | default "ca.crt" }}
        path: {{ .key | default "ca.crt" }}
{{- else }}
  configMap:
    name: {{ required (printf "routes[%s].credential.ca: set secretName or configMapName" $route.name) .configMapName }}
    items:
      - key: {{ .key | default "ca.crt" }}
        path: {{ .key | default "ca.crt" }}
{{- end }}
{{- end }}
{{- else }}
- name: {{ include "lastmile.credentialVolumeName" $i }}
  secret:
    secretName: {{ required (printf "routes[%s].credential.secretName is required" $route.name) .secretName }}
    items:
      - key: {{ .secretKey | default "token" }}
        path: {{ .secretKey | default "token" }}
{{- end }}
{{- end }}
{{- end }}
{{- if $v.identity.enabled }}
{{- if $v.identity.keys.secretName }}
- name: lastmile-identity-keys
  secret:
    secretName: {{ $v.identity.keys.secretName }}
    items:
      - key: {{ $v.identity.keys.key }}
        path: {{ $v.identity.keys.key }}
{{- else if $v.identity.keys.configMapName }}
- name: lastmile-identity-keys
  configMap:
    name: {{ $v.identity.keys.configMapName }}
    items:
      - key: {{ $v.identity.keys.key }}
        path: {{ $v.identity.keys.key }}
{{- end }}
{{- if $v.identity.hs256.secretName }}
- name: lastmile-identity-hs256
  secret:
    secretName: {{ $v.identity.hs256.secretName }}
    items:
      - key: {{ $v.identity.hs256.key }}
        path: {{ $v.identity.hs256.key }}
{{- end }}
{{- if $v.identity.jwksCa.configMapName }}
- name: lastmile-identity-jwks-ca
  configMap:
    name: {{ $v.identity.jwksCa.configMapName }}
    items:
      - key: {{ $v.identity.jwksCa.key }}
        path: {{ $v.identity.jwksCa.key }}
{{- end }}
{{- end }}
{{- if and $v.approvals.enabled $v.approvals.approvers.secretName }}
- name: lastmile-approvers
  secret:
    secretName: {{ $v.approvals.approvers.secretName }}
    items:
      - key: {{ $v.approvals.approvers.key }}
        path: {{ $v.approvals.approvers.key }}
{{- end }}
{{- if $v.proxy.adminToken.secretName }}
- name: lastmile-admin-token
  secret:
    secretName: {{ $v.proxy.adminToken.secretName }}
    items:
      - key: {{ $v.proxy.adminToken.key }}
        path: {{ $v.proxy.adminToken.key }}
{{- end }}
- name: lastmile-state
{{- if $v.state.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "lastmile.stateClaimName" . }}
{{- else }}
  emptyDir:
    {{- toYaml $v.state.emptyDir | nindent 4 }}
{{- end }}
{{- with $v.sidecar.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod annotations (a YAML map, possibly empty). No checksum annotation by default: a
policy edit is hot-reloaded and must not restart pods. policy.rolloutOnChange and
proxy.rolloutOnConfigChange add checksums that roll the pods on a change instead. */}}
{{- define "lastmile.sidecar.podAnnotations" -}}
{{- $v := .Values -}}
{{- if $v.proxy.rolloutOnConfigChange }}
checksum/lastmile-config: {{ include "lastmile.configFile" . | sha256sum }}
{{- end }}
{{- if and $v.policy.rolloutOnChange (not $v.policy.configMapName) }}
checksum/lastmile-policy: {{ toJson $v.policy.files | sha256sum }}
{{- end }}
{{- if $v.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ $v.proxy.adminPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Environment variables for the agent container (list items): LASTMILE_URL, the data
port, and LASTMILE_<ROUTE>_URL for each route with a prefix. The agent calls these
instead of the upstreams; it never holds the upstream credentials. */}}
{{- define "lastmile.sidecar.agentEnv" -}}
{{- $base := printf "http://127.0.0.1:%d" (int .Values.proxy.listenPort) -}}
- name: LASTMILE_URL
  value: {{ $base | quote }}
{{- range .Values.routes }}
{{- if .prefix }}
- name: {{ printf "LASTMILE_%s_URL" (.name | upper | replace "-" "_") }}
  value: {{ printf "%s%s" $base (.prefix | trimSuffix "/") | quote }}
{{- end }}
{{- end }}
{{- end -}}
