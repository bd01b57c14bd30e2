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
{{- with .Values.kafka.bootstrapServers }}
- name: KFAAS_KAFKA_BOOTSTRAP_SERVERS
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}


{{/* The platform Kafka's security (ADR 027): KFAAS_KAFKA_* pointing at the mounted Secrets. A
  password is read from its file, never put in the environment; a username is no secret. */}}
{{- define "kfaas.kafkaSecurityEnv" -}}
{{- with .Values.kafka -}}
{{- $mechanisms := dict "BASIC_AUTH" "PLAIN" "SASL_SCRAM_256_AUTH" "SCRAM-SHA-256" "SASL_SCRAM_512_AUTH" "SCRAM-SHA-512" -}}
{{- if and .tls.caSecretRef.name (not .tls.enabled) -}}
{{- fail "kafka.tls.caSecretRef is only used with kafka.tls.enabled: true" -}}
{{- end -}}
{{- if and .auth.mechanism (not .auth.secretRef.name) -}}
{{- fail (printf "kafka.auth.mechanism %s needs kafka.auth.secretRef.name (the Secret with the credentials)" .auth.mechanism) -}}
{{- end -}}
{{- if and (has .auth.mechanism (list "BASIC_AUTH" "CLIENT_CERTIFICATE_TLS_AUTH")) (not .tls.enabled) -}}
{{- fail (printf "kafka.auth.mechanism %s sends a password or a certificate: it needs kafka.tls.enabled: true" .auth.mechanism) -}}
{{- end -}}
{{- if .tls.enabled }}
- name: KFAAS_KAFKA_TLS
  value: "true"
{{- end }}
{{- if .tls.caSecretRef.name }}
- name: KFAAS_KAFKA_CA_FILE
  value: /etc/kfaas/kafka/ca/ca.crt
{{- end }}
{{- if eq .auth.mechanism "CLIENT_CERTIFICATE_TLS_AUTH" }}
- name: KFAAS_KAFKA_CERT_FILE
  value: /etc/kfaas/kafka/auth/tls.crt
- name: KFAAS_KAFKA_KEY_FILE
  value: /etc/kfaas/kafka/auth/tls.key
{{- else if .auth.mechanism }}
- name: KFAAS_KAFKA_SASL_MECHANISM
  value: {{ get $mechanisms .auth.mechanism | quote }}
- name: KFAAS_KAFKA_USERNAME
  valueFrom: {secretKeyRef: {name: {{ .auth.secretRef.name | quote }}, key: username}}
- name: KFAAS_KAFKA_PASSWORD_FILE
  value: /etc/kfaas/kafka/auth/password
{{- end }}
{{- end -}}
{{- end -}}

{{/* For the operator only (ADR 032): the names of the Secrets behind the platform's Kafka files
  and Redis URL, which it mounts by name into the poller pods of mappings that write there. */}}
{{- define "kfaas.pollerPlatformSecretsEnv" -}}
{{- with .Values.kafka.tls.caSecretRef.name }}
- name: KFAAS_KAFKA_CA_SECRET
  value: {{ . | quote }}
{{- end }}
{{- if .Values.kafka.auth.mechanism }}
- name: KFAAS_KAFKA_AUTH_SECRET
  value: {{ .Values.kafka.auth.secretRef.name | quote }}
{{- end }}
{{- with .Values.redis.urlSecret.name }}
- name: KFAAS_REDIS_URL_SECRET
  value: {{ . | quote }}
- name: KFAAS_REDIS_URL_SECRET_KEY
  value: {{ $.Values.redis.urlSecret.key | quote }}
{{- end }}
{{- end -}}

{{- define "kfaas.kafkaVolumeMounts" -}}
{{- if .Values.kafka.tls.caSecretRef.name }}
- {name: kafka-ca, mountPath: /etc/kfaas/kafka/ca, readOnly: true}
{{- end }}
{{- if .Values.kafka.auth.mechanism }}
- {name: kafka-auth, mountPath: /etc/kfaas/kafka/auth, readOnly: true}
{{- end }}
{{- end -}}

{{- define "kfaas.kafkaVolumes" -}}
{{- with .Values.kafka.tls.caSecretRef.name }}
- name: kafka-ca
  secret: {secretName: {{ . | quote }}, items: [{key: ca.crt, path: ca.crt}], defaultMode: 0440}
{{- end }}
{{- if .Values.kafka.auth.mechanism }}
- name: kafka-auth
  secret: {secretName: {{ .Values.kafka.auth.secretRef.name | quote }}, defaultMode: 0440}
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
{{- end }}
{{- with .Values.gateway.tracing }}
- name: KFAAS_TRACING_SAMPLE_RATE
  value: {{ .sampleRate | quote }}
- name: KFAAS_TRACING_RESERVOIR_PER_SECOND
  value: {{ .reservoirPerSecond | int | quote }}
{{- end -}}
{{- end -}}
