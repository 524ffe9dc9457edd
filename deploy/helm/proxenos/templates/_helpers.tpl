{{/*
Named templates. The chart sticks to a small subset of Helm's template language, so that
tests/e2e/helm_render.py (a stand-in for `helm template`) can render it: .Values/.Release/.Chart
references, if/else/end, range over lists, define/include, and the functions toYaml, nindent,
quote and default.
*/}}

{{- define "proxenos.selectorLabels" -}}
app.kubernetes.io/name: proxenos
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "proxenos.labels" -}}
{{ include "proxenos.selectorLabels" . }}
app.kubernetes.io/part-of: proxenos
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
