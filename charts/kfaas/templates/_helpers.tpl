{{/* Names and labels shared by every template. */}}
{{- define "kfaas.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kfaas.labels" -}}
app.kubernetes.io/name: kfaas
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kfaas.selector" -}}
app.kubernetes.io/name: kfaas
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kfaas.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{- define "kfaas.gatewayUrl" -}}
http://{{ include "kfaas.fullname" . }}-gateway.{{ .Release.Namespace }}.svc:{{ .Values.gateway.service.port }}
{{- end -}}

{{- define "kfaas.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kfaas.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Environment every kfaas component reads (DESIGN, Configuration). */}}
{{- define "kfaas.commonEnv" -}}
- name: KFAAS_PLATFORM_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: KFAAS_REGION
  value: {{ .Values.region | quote }}
- name: KFAAS_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- if .Values.watchNamespace }}
- name: KFAAS_WATCH_NAMESPACE
  value: {{ .Values.watchNamespace | quote }}
{{- end }}
{{- if .Values.redis.urlSecret.name }}
- name: KFAAS_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ .Values.redis.urlSecret.name | quote }}, key: {{ .Values.redis.urlSecret.key | quote }}}}
{{- else if .Values.redis.url }}
- name: KFAAS_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- end }}
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}


{{/* The gateway's bounds (docs/security.md, "Bounded resources"). */}}
{{- define "kfaas.gatewayLimitsEnv" -}}
{{- with .Values.gateway.limits -}}
- name: KFAAS_HEADER_TIMEOUT_SECONDS
  value: {{ .headerTimeoutSeconds | quote }}
- name: KFAAS_BODY_IDLE_TIMEOUT_SECONDS
  value: {{ .bodyIdleTimeoutSeconds | quote }}
- name: KFAAS_BODY_TIMEOUT_SECONDS
  value: {{ .bodyTimeoutSeconds | quote }}
- name: KFAAS_KEEPALIVE_TIMEOUT_SECONDS
  value: {{ .keepaliveTimeoutSeconds | quote }}
- name: KFAAS_MAX_CONNECTIONS
  value: {{ .maxConnections | int | quote }}
- name: KFAAS_BODY_MEMORY_BYTES
  value: {{ .bodyMemory | quote }}
- name: KFAAS_ASYNC_QUEUE_MAX_EVENTS
  value: {{ .asyncQueueMaxEvents | int | quote }}
- name: KFAAS_ASYNC_QUEUE_MAX_BYTES
  value: {{ .asyncQueueMaxBytes | quote }}
{{- end -}}
{{- end -}}
