{{- /* Settings of function pods the operator reads (docs/security.md, "Function pods"). */ -}}
{{- define "kfaas.runtimeTokenKeyEnv" -}}
- name: KFAAS_RUNTIME_TOKEN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-runtime-token-key" (include "kfaas.fullname" .) }}
      key: key
{{- end -}}

{{- define "kfaas.functionPodEnv" -}}
{{- $egress := .Values.functions.egress -}}
- name: KFAAS_ALLOW_SERVICE_ACCOUNT_TOKEN
  value: {{ .Values.functions.allowServiceAccountToken | quote }}
- name: KFAAS_EGRESS_POLICY
  value: {{ $egress.enabled | quote }}
- name: KFAAS_EGRESS_ALLOW_PLATFORM
  value: {{ $egress.allowPlatformNamespace | quote }}
- name: KFAAS_EGRESS_ALLOW_API_SERVER
  value: {{ $egress.allowAPIServer | quote }}
- name: KFAAS_EGRESS_ALLOW_METADATA
  value: {{ $egress.allowMetadata | quote }}
- name: KFAAS_EGRESS_DENIED_CIDRS
  value: {{ join "," $egress.deniedCIDRs | quote }}
- name: KFAAS_EGRESS_API_SERVER_CIDRS
  value: {{ join "," (include "kfaas.apiServerCIDRs" . | fromYamlArray) | quote }}
- name: KFAAS_EGRESS_ALLOWED_CIDRS
  value: {{ join "," $egress.allowedCIDRs | quote }}
{{- /* The gateway container's port: policies see pod ports, after a Service's translation. */}}
- name: KFAAS_EGRESS_GATEWAY_PORTS
  value: "8080"
- name: KFAAS_EGRESS_DNS_NAMESPACE
  value: {{ $egress.dns.namespace | quote }}
- name: KFAAS_EGRESS_DNS_POD_LABELS
  value: {{ include "kfaas.pairs" $egress.dns.podLabels | quote }}
{{- end -}}

{{- /* The API server's addresses: the value, or those of the `kubernetes` Service at install. */ -}}
{{- define "kfaas.apiServerCIDRs" -}}
{{- $cidrs := list -}}
{{- if .Values.functions.egress.apiServerCIDRs -}}
{{- $cidrs = .Values.functions.egress.apiServerCIDRs -}}
{{- else -}}
{{- $slices := lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "" -}}
{{- range (($slices).items | default list) -}}
{{- if eq (index (.metadata.labels | default dict) "kubernetes.io/service-name" | default "") "kubernetes" -}}
{{- range .endpoints -}}
{{- range .addresses -}}
{{- $cidrs = append $cidrs (ternary (printf "%s/128" .) (printf "%s/32" .) (contains ":" .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $cidrs -}}
{{- end -}}

{{- define "kfaas.pairs" -}}
{{- $pairs := list -}}
{{- range $key, $value := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
