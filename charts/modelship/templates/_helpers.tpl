{{/*
Names, labels and the operator's RBAC rules, shared by every template.
*/}}

{{- define "modelship.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the prefix of every object the chart creates. A release named like the
chart ("modelship") is not doubled into "modelship-modelship".
*/}}
{{- define "modelship.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelship.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelship.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelship.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modelship.labels" -}}
helm.sh/chart: {{ include "modelship.chart" . }}
{{ include "modelship.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelship
{{- end }}

{{- define "modelship.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelship.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelship.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches, as a JSON list: empty in cluster scope (every namespace),
else watchNamespaces, or the release namespace when that list is empty.
Use: include "modelship.watchNamespaces" . | fromJsonArray
*/}}
{{- define "modelship.watchNamespaces" -}}
{{- if eq .Values.rbac.scope "namespaced" }}
{{- toJson (default (list .Release.Namespace) .Values.watchNamespaces) }}
{{- else }}
{{- toJson list }}
{{- end }}
{{- end }}

{{/*
Checks across values that values.schema.json cannot express with a clear message.
*/}}
{{- define "modelship.validate" -}}
{{- if and (eq .Values.rbac.scope "cluster") .Values.watchNamespaces }}
{{- fail (printf "watchNamespaces is set (%s) but rbac.scope is \"cluster\", which watches every namespace: set rbac.scope=namespaced to watch only those namespaces, or leave watchNamespaces empty" (join ", " .Values.watchNamespaces)) }}
{{- end }}
{{- if le (int .Values.operator.watch.clientTimeout) (int .Values.operator.watch.serverTimeout) }}
{{- fail (printf "operator.watch.clientTimeout (%d) must be greater than operator.watch.serverTimeout (%d): the client timeout is how long the operator waits for a watch the server should already have ended" (int .Values.operator.watch.clientTimeout) (int .Values.operator.watch.serverTimeout)) }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.liveness.port) }}
{{- fail (printf "metrics.port and liveness.port are both %d: the metrics and the health endpoint need a port each" (int .Values.metrics.port)) }}
{{- end }}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "serviceAccount.name is required when serviceAccount.create is false: name the existing ServiceAccount the operator runs as" }}
{{- end }}
{{- end }}

{{/*
Everything the operator does with the API, and nothing more (no wildcards, no Secrets). The same
rules back the ClusterRole (cluster scope) and each Role (namespaced scope).
kopf itself needs no more than this: it runs with peering standalone (no KopfPeering objects)
and scanning disabled (no listing of CRDs or namespaces), see operator handlers.py; it watches
the same four resources the handlers name and posts core/v1 Events.
*/}}
{{- define "modelship.rules" -}}
# Watched (kopf) and read fresh on each reconcile.
- apiGroups: ["modelship.dev"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch"]
# The operator's one status writer (a merge patch on the status subresource).
- apiGroups: ["modelship.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["get", "patch", "update"]
# Children carry ownerReferences with blockOwnerDeletion: clusters that enable the
# OwnerReferencesPermissionEnforcement admission plugin (OpenShift does) require this to set it.
- apiGroups: ["modelship.dev"]
  resources: ["modeldeployments/finalizers"]
  verbs: ["update"]
# One Deployment per model version: server-side apply, scale, delete.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# The stable and canary Services.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Pod readiness and restarts decide a rollout's health.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Events on each transition (the operator's own and kopf's warnings).
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Canary traffic split by weight in Gateway API mode.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- end }}
