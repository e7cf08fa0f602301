{{/* Labels Helm adds to every object's metadata (never to selectors, which are immutable). */}}
{{- define "ferrolb.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "ferrolb.image" -}}
{{ printf "%s:%s" .Values.image.repository (toString .Values.image.tag) }}
{{- end -}}

{{/* --log-format only when it differs from the default, so the default args match deploy/. */}}
{{- define "ferrolb.logArgs" -}}
{{- if ne .Values.logFormat "human" }}
- --log-format
- {{ .Values.logFormat | quote }}
{{- end }}
{{- end -}}
