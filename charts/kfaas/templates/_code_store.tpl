{{- /* The code store's address and key, for the gateway (uploads) and the operator (pods). */ -}}
{{- define "kfaas.codeStoreKeyEnv" -}}
- name: KFAAS_CODE_STORE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-code-store-key" (include "kfaas.fullname" .) }}
      key: key
{{- end -}}

{{- define "kfaas.codeStoreUrl" -}}
http://{{ include "kfaas.fullname" . }}-code-store.{{ .Release.Namespace }}.svc:8090
{{- end -}}

{{- define "kfaas.codeStoreEnv" -}}
{{- if .Values.codeStore.enabled -}}
- name: KFAAS_CODE_STORE_URL
  value: {{ include "kfaas.codeStoreUrl" . | quote }}
{{ include "kfaas.codeStoreKeyEnv" . }}
- name: KFAAS_CODE_STORE_POD_LABELS
  value: "app.kubernetes.io/name=kfaas,app.kubernetes.io/instance={{ .Release.Name }},app.kubernetes.io/component=code-store"
{{- end -}}
{{- end -}}
