{{/*
Helpers shared by every template. Per-service templates `range` over .Values.services and
call "crowdcrunch.serviceConfig" to get that service's settings merged over .Values.defaults.
*/}}

{{/* Chart name, overridable. */}}
{{- define "crowdcrunch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource-name prefix: <release>-<chart>, or the release name alone when it already contains
the chart name. Kept to 40 characters so "<prefix>-postgresql-hl" and friends fit 63.
*/}}
{{- define "crowdcrunch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "crowdcrunch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image tag: image.tag or the chart's appVersion. */}}
{{- define "crowdcrunch.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{/* The image reference: repository@digest when a digest is given, else repository:tag. */}}
{{- define "crowdcrunch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "crowdcrunch.imageTag" .) }}
{{- end }}
{{- end }}

{{/* The `version` label (Kiali): the image tag made label-safe. */}}
{{- define "crowdcrunch.version" -}}
{{- regexReplaceAll "[^A-Za-z0-9_.-]" (include "crowdcrunch.imageTag" .) "_" | trunc 63 | trimSuffix "-" | trimSuffix "_" | trimSuffix "." }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "crowdcrunch.commonLabels" -}}
helm.sh/chart: {{ include "crowdcrunch.chart" . }}
{{ include "crowdcrunch.stableLabels" . }}
{{- end }}

{{/* The common labels without helm.sh/chart, for pod templates: a chart bump alone does not roll pods. */}}
{{- define "crowdcrunch.stableLabels" -}}
app.kubernetes.io/name: {{ include "crowdcrunch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "crowdcrunch.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: crowdcrunch
{{- end }}

{{/* Selects every pod of this release (PeerAuthentication, Telemetry, scoped deny-all). */}}
{{- define "crowdcrunch.releaseSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: crowdcrunch
{{- end }}

{{/* Name of one service's objects. Args: dict root, name. */}}
{{- define "crowdcrunch.componentName" -}}
{{- printf "%s-%s" (include "crowdcrunch.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component. Args: dict root, name. */}}
{{- define "crowdcrunch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crowdcrunch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/*
All labels of one component: the recommended app.kubernetes.io/* set plus `app` and
`version`, which Kiali and Istio telemetry read. service.istio.io/canonical-name is set
explicitly because Istio would otherwise prefer app.kubernetes.io/name, which is the same
("crowdcrunch") for every component. Args: dict root, name.
*/}}
{{- define "crowdcrunch.labels" -}}
helm.sh/chart: {{ include "crowdcrunch.chart" .root }}
{{ include "crowdcrunch.podLabels" . }}
{{- end }}

{{/* The component labels without helm.sh/chart, for pod templates. Args: dict root, name. */}}
{{- define "crowdcrunch.podLabels" -}}
{{ include "crowdcrunch.stableLabels" .root }}
app.kubernetes.io/component: {{ .name }}
app: {{ .name }}
version: {{ include "crowdcrunch.version" .root | quote }}
{{- end }}

{{/* Pod-only labels (Istio canonical service). Args: dict root, name. */}}
{{- define "crowdcrunch.meshPodLabels" -}}
{{- if .root.Values.istio.enabled }}
service.istio.io/canonical-name: {{ .name }}
service.istio.io/canonical-revision: {{ include "crowdcrunch.version" .root | quote }}
{{- if .root.Values.istio.injection }}
sidecar.istio.io/inject: "true"
{{- end }}
{{- end }}
{{- end }}

{{/*
Pod annotations that put a pod properly into the mesh: probe rewriting (HTTP and gRPC probes
go to the sidecar agent, so they work under STRICT mTLS), the proxy starting before and
draining after the app, and sidecar resources. Args: root.
*/}}
{{- define "crowdcrunch.meshPodAnnotations" -}}
{{- if .Values.istio.enabled }}
{{- $p := .Values.istio.proxy }}
sidecar.istio.io/rewriteAppHTTPProbers: {{ .Values.istio.rewriteAppProbers | toString | quote }}
{{- $cfg := dict "holdApplicationUntilProxyStarts" $p.holdApplicationUntilProxyStarts "terminationDrainDuration" $p.terminationDrainDuration }}
{{- if $p.exitOnZeroActiveConnections }}
{{- $_ := set $cfg "proxyMetadata" (dict "EXIT_ON_ZERO_ACTIVE_CONNECTIONS" "true") }}
{{- end }}
proxy.istio.io/config: {{ $cfg | toJson | quote }}
{{- with $p.cpu }}
sidecar.istio.io/proxyCPU: {{ . | quote }}
{{- end }}
{{- with $p.memory }}
sidecar.istio.io/proxyMemory: {{ . | quote }}
{{- end }}
{{- with $p.memoryLimit }}
sidecar.istio.io/proxyMemoryLimit: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
One service's settings: .Values.defaults deep-merged with .Values.services.<name> (the
service wins), as YAML; callers use `include ... | fromYaml`. Args: dict root, name.
*/}}
{{- define "crowdcrunch.serviceConfig" -}}
{{- $own := index .root.Values.services .name | default dict }}
{{- mergeOverwrite (deepCopy .root.Values.defaults) (deepCopy $own) | toYaml }}
{{- end }}

{{/* Container port of a service's API: 8080 for http (the edge), 50051 for grpc. Args: cfg. */}}
{{- define "crowdcrunch.apiPort" -}}
{{- if eq .protocol "http" }}8080{{ else }}50051{{ end }}
{{- end }}

{{/* Name of the API port: grpc or http. Args: cfg. */}}
{{- define "crowdcrunch.apiPortName" -}}
{{- if eq .protocol "http" }}http{{ else }}grpc{{ end }}
{{- end }}

{{/* Metrics port, on every component. */}}
{{- define "crowdcrunch.metricsPort" -}}9090{{- end }}

{{/*
The services that call `name`, as a JSON list, from the `calls` lists (the call graph).
Args: dict root, name.
*/}}
{{- define "crowdcrunch.callers" -}}
{{- $callers := list }}
{{- range $caller := keys .root.Values.services | sortAlpha }}
{{- $cfg := include "crowdcrunch.serviceConfig" (dict "root" $.root "name" $caller) | fromYaml }}
{{- if has $.name ($cfg.calls | default list) }}
{{- $callers = append $callers $caller }}
{{- end }}
{{- end }}
{{- $callers | toJson }}
{{- end }}

{{/* SPIFFE-style principal of a service account. Args: dict root, namespace, sa. */}}
{{- define "crowdcrunch.principal" -}}
{{- printf "%s/ns/%s/sa/%s" .root.Values.istio.trustDomain .namespace .sa }}
{{- end }}

{{/*
Prefix of every service's account name: a service's account is <prefix><service>, and the
services read their peers' names from the mesh principal with it removed
(CROWDCRUNCH_AUTH_MESH_ACCOUNT_PREFIX).
*/}}
{{- define "crowdcrunch.meshAccountPrefix" -}}
{{- printf "%s-" (include "crowdcrunch.fullname" .) }}
{{- end }}

{{/* Mesh principal of one of this release's services. Args: dict root, name. */}}
{{- define "crowdcrunch.servicePrincipal" -}}
{{- include "crowdcrunch.principal" (dict "root" .root "namespace" .root.Release.Namespace "sa" (include "crowdcrunch.componentName" (dict "root" .root "name" .name))) }}
{{- end }}

{{/*
Whether the services may take a caller's identity from Istio's x-forwarded-client-cert header:
only under STRICT mTLS, where every caller is a sidecar that sets it. Anything else could
forge it. "true" or "false".
*/}}
{{- define "crowdcrunch.trustMeshIdentity" -}}
{{- $i := .Values.istio }}
{{- and $i.enabled $i.peerAuthentication.enabled (eq $i.peerAuthentication.mode "STRICT") | toString }}
{{- end }}

{{/*
Who may call each RPC, by service: files/access.yaml, generated from the protos' access rules
(the chart test regenerates it and fails on any difference).
*/}}
{{- define "crowdcrunch.accessRules" -}}
{{- $text := .Files.Get "files/access.yaml" }}
{{- if not $text }}
{{- fail "files/access.yaml is missing from the chart: regenerate it with CROWDCRUNCH_UPDATE_CHART_ACCESS=1 cargo test -p crowdcrunch --test chart" }}
{{- end }}
{{- $text }}
{{- end }}

{{/* The jwtRules of every RequestAuthentication: the identity provider of `auth`. */}}
{{- define "crowdcrunch.jwtRules" -}}
jwtRules:
  - issuer: {{ .Values.auth.issuer | quote }}
    jwksUri: {{ .Values.auth.jwksUrl | quote }}
    audiences: [{{ .Values.auth.audience | quote }}]
    forwardOriginalToken: true
{{- end }}

{{/* Service account of the helm test pod. */}}
{{- define "crowdcrunch.smokeName" -}}
{{- printf "%s-smoke" (include "crowdcrunch.fullname" .) }}
{{- end }}

{{/* Name of the bundled PostgreSQL's objects. */}}
{{- define "crowdcrunch.postgresqlName" -}}
{{- printf "%s-postgresql" (include "crowdcrunch.fullname" .) }}
{{- end }}

{{/* Secret holding the services' database URL(s). */}}
{{- define "crowdcrunch.databaseSecretName" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "crowdcrunch.fullname" .)) }}
{{- end }}

{{/* Secret holding the key of the services' page tokens. */}}
{{- define "crowdcrunch.pageTokenSecretName" -}}
{{- .Values.pageTokens.existingSecret | default (printf "%s-page-tokens" (include "crowdcrunch.fullname" .)) }}
{{- end }}

{{/* Secret holding the bundled PostgreSQL's password. */}}
{{- define "crowdcrunch.postgresqlSecretName" -}}
{{- .Values.postgresql.auth.existingSecret | default (printf "%s-postgresql" (include "crowdcrunch.fullname" .)) }}
{{- end }}

{{/* Key of the bundled PostgreSQL's password in its Secret. */}}
{{- define "crowdcrunch.postgresqlPasswordKey" -}}
{{- if .Values.postgresql.auth.existingSecret }}{{ .Values.postgresql.auth.passwordKey }}{{ else }}password{{ end }}
{{- end }}

{{/*
The non-secret environment of one service, as ConfigMap data. The same text feeds the
ConfigMap and the pod's checksum/config annotation. Args: dict root, name, cfg.
*/}}
{{- define "crowdcrunch.configData" -}}
{{- $root := .root }}
{{- $cfg := .cfg }}
CROWDCRUNCH_LISTEN_ADDR: {{ printf "0.0.0.0:%s" (include "crowdcrunch.apiPort" $cfg) | quote }}
CROWDCRUNCH_METRICS_ADDR: {{ printf "0.0.0.0:%s" (include "crowdcrunch.metricsPort" .) | quote }}
CROWDCRUNCH_DRAIN_GRACE: {{ printf "%ds" (int $cfg.drainGraceSeconds) | quote }}
CROWDCRUNCH_MAX_CONNECTION_AGE: {{ $cfg.maxConnectionAge | quote }}
CROWDCRUNCH_LOG_FORMAT: {{ $cfg.logFormat | quote }}
RUST_LOG: {{ $cfg.logLevel | quote }}
OTEL_SERVICE_NAME: {{ .name | quote }}
CROWDCRUNCH_AUTH_ISSUER: {{ $root.Values.auth.issuer | quote }}
CROWDCRUNCH_AUTH_AUDIENCE: {{ $root.Values.auth.audience | quote }}
CROWDCRUNCH_AUTH_JWKS_URL: {{ $root.Values.auth.jwksUrl | quote }}
CROWDCRUNCH_AUTH_CUSTOMER_CLAIM: {{ $root.Values.auth.customerClaim | quote }}
CROWDCRUNCH_AUTH_ROLES_CLAIM: {{ $root.Values.auth.rolesClaim | quote }}
CROWDCRUNCH_AUTH_TRUST_MESH_IDENTITY: {{ include "crowdcrunch.trustMeshIdentity" $root | quote }}
CROWDCRUNCH_AUTH_MESH_ACCOUNT_PREFIX: {{ include "crowdcrunch.meshAccountPrefix" $root | quote }}
{{- with $root.Values.observability.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- if eq .name "edge" }}
{{- with $root.Values.edge }}
CROWDCRUNCH_EDGE_INTROSPECTION: {{ .introspection | quote }}
CROWDCRUNCH_EDGE_GRAPHIQL: {{ .graphiql | quote }}
CROWDCRUNCH_EDGE_FIELD_SUGGESTIONS: {{ .fieldSuggestions | quote }}
CROWDCRUNCH_EDGE_ALLOWED_ORIGINS: {{ join "," .allowedOrigins | quote }}
{{- /* Only Istio's ingress gateway in front sets the headers a trusted proxy is believed for. */}}
CROWDCRUNCH_EDGE_TRUSTED_PROXY: {{ and .trustedProxy $root.Values.istio.enabled | quote }}
{{- end }}
{{- end }}
{{- range $callee := $cfg.calls | default list | uniq | sortAlpha }}
{{- $calleeCfg := include "crowdcrunch.serviceConfig" (dict "root" $root "name" $callee) | fromYaml }}
{{ printf "CROWDCRUNCH_%s_ENDPOINTS" (upper $callee) }}: {{ printf "http://%s:%s" (include "crowdcrunch.componentName" (dict "root" $root "name" $callee)) (include "crowdcrunch.apiPort" $calleeCfg) | quote }}
{{- end }}
{{- end }}

{{/*
What the database Secret is made from, for the pods' checksum/secret annotation: a changed
URL, password or Secret reference rolls the pods. (A generated password is kept across
upgrades, so it never changes the checksum.)
*/}}
{{- define "crowdcrunch.databaseChecksumInput" -}}
{{- dict "database" .Values.database "postgresql" (dict "enabled" .Values.postgresql.enabled "auth" .Values.postgresql.auth) | toJson }}
{{- end }}

{{/* Hardened container securityContext (no shell, no privileges, read-only root). Args: dict uid. */}}
{{- define "crowdcrunch.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Hardened pod securityContext. Args: dict uid. */}}
{{- define "crowdcrunch.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Istio fault injection (chaos) of one route. Args: dict chaos, protocol. */}}
{{- define "crowdcrunch.fault" -}}
{{- $chaos := .chaos }}
{{- if or $chaos.delay.enabled $chaos.abort.enabled }}
fault:
  {{- if $chaos.delay.enabled }}
  delay:
    percentage:
      value: {{ $chaos.delay.percent }}
    fixedDelay: {{ $chaos.delay.fixedDelay }}
  {{- end }}
  {{- if $chaos.abort.enabled }}
  abort:
    percentage:
      value: {{ $chaos.abort.percent }}
    {{- if eq .protocol "http" }}
    httpStatus: {{ $chaos.abort.httpStatus }}
    {{- else }}
    grpcStatus: {{ $chaos.abort.grpcStatus | quote }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}
{{/* Retries on failures where the request cannot have reached the application. */}}
{{- define "crowdcrunch.neverDeliveredRetries" -}}
retries:
  attempts: {{ .attempts }}
  perTryTimeout: {{ .perTryTimeout }}
  retryOn: connect-failure,refused-stream
{{- end }}

{{/*
Checks across values that a JSON schema cannot express; each fails with one clear line.
Included once, from the Deployment template.
*/}}
{{- define "crowdcrunch.validate" -}}
{{- $root := . }}
{{- if and (not .Values.database.existingSecret) (not .Values.database.url) (not .Values.postgresql.enabled) }}
{{- fail "database: set database.existingSecret or database.url, or enable the bundled postgresql (postgresql.enabled=true)" }}
{{- end }}
{{- if not .Values.auth.issuer }}
{{- fail "auth.issuer must be set: the `iss` of your identity provider's tokens (authentication cannot be turned off)" }}
{{- end }}
{{- if not .Values.auth.jwksUrl }}
{{- fail "auth.jwksUrl must be set: the URL of your identity provider's JSON Web Key Set" }}
{{- end }}
{{- if not (hasKey .Values.services "edge") }}
{{- fail "services.edge is required: it is the only way in" }}
{{- end }}
{{- range $name := keys .Values.services | sortAlpha }}
{{- $cfg := include "crowdcrunch.serviceConfig" (dict "root" $root "name" $name) | fromYaml }}
{{- range $callee := $cfg.calls | default list }}
{{- if not (hasKey $root.Values.services $callee) }}
{{- fail (printf "services.%s.calls names %q, which is not in services" $name $callee) }}
{{- end }}
{{- if eq $callee $name }}
{{- fail (printf "services.%s.calls names the service itself" $name) }}
{{- end }}
{{- end }}
{{- if and (not $root.Values.database.existingSecret) $cfg.database $cfg.databaseSecretKey (ne $cfg.databaseSecretKey $root.Values.database.secretKey) }}
{{- fail (printf "services.%s.databaseSecretKey only applies to database.existingSecret; the chart-created Secret has the one key database.secretKey" $name) }}
{{- end }}
{{- if le (int $cfg.terminationGracePeriodSeconds) (add $cfg.preStopSleepSeconds $cfg.drainGraceSeconds | int) }}
{{- fail (printf "services.%s: terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + drainGraceSeconds (%d)" $name (int $cfg.terminationGracePeriodSeconds) (add $cfg.preStopSleepSeconds $cfg.drainGraceSeconds | int)) }}
{{- end }}
{{- if and $cfg.autoscaling.enabled (gt (int $cfg.autoscaling.minReplicas) (int $cfg.autoscaling.maxReplicas)) }}
{{- fail (printf "services.%s.autoscaling: minReplicas must not exceed maxReplicas" $name) }}
{{- end }}
{{- end }}
{{- end }}
