{{- define "personalize-watch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "personalize-watch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "personalize-watch.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "personalize-watch.labels" -}}
app.kubernetes.io/name: {{ include "personalize-watch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "personalize-watch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "personalize-watch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "personalize-watch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "personalize-watch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "personalize-watch.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* The rules the operator needs on SolutionVersionWatches and Events, nothing more. */}}
{{- define "personalize-watch.rules" -}}
# get: a watch is read again after a status write conflict.
- apiGroups: ["personalize-watch.dev"]
  resources: ["solutionversionwatches"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["personalize-watch.dev"]
  resources: ["solutionversionwatches/status"]
  verbs: ["patch"]
# Events are named by what they announce: created once, never patched or listed.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* The account-roles ConfigMap's name, when the chart makes one. */}}
{{- define "personalize-watch.accountRolesName" -}}
{{- if .Values.accountRoles -}}
{{ include "personalize-watch.fullname" . }}-account-roles
{{- end -}}
{{- end -}}
