{{/* <fullname>: the release name when it holds the chart's, else <release>-<chart>. */}}
{{- define "kneo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kneo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one role: (list $ "api") */}}
{{- define "kneo.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "kneo.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- if gt (len .) 1 }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}
{{- end -}}

{{/* Every object's labels: (list $ "api"), or (list $) for a shared object. */}}
{{- define "kneo.labels" -}}
{{ include "kneo.selector" . }}
{{- $root := index . 0 }}
app.kubernetes.io/part-of: kneo
app.kubernetes.io/version: {{ default $root.Chart.AppVersion $root.Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kneo.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "kneo.secretName" -}}
{{ default (printf "%s-secrets" (include "kneo.fullname" .)) .Values.secrets.name }}
{{- end -}}

{{/* The Secret's keys one role reads, one variable each: (list $ "worker") */}}
{{- define "kneo.secretEnv" -}}
{{- $root := index . 0 -}}
{{- $role := index . 1 -}}
{{- $names := concat (index $root.Values.secrets $role) (get $root.Values.secrets.extra $role | default list) -}}
{{- if has $role (list "api" "worker") -}}
{{- $names = concat $names $root.Values.secrets.models -}}
{{- end -}}
{{- range $name := $names }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "kneo.secretName" $root }}
      key: {{ $name }}
      {{- if ne $name "KNEO_SERV_DATABASE_URL" }}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{/* The pod-level settings every role shares: (list $ "api") */}}
{{- define "kneo.podCommon" -}}
{{- $root := index . 0 -}}
{{- $role := index . 1 -}}
{{- $values := index $root.Values $role -}}
automountServiceAccountToken: false
serviceAccountName: {{ include "kneo.fullname" $root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "kneo.selector" (list $root $role) | nindent 8 }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A probe on a named port: (list "/livez" "http" periodSeconds failureThreshold timeoutSeconds) */}}
{{- define "kneo.probe" -}}
httpGet:
  path: {{ index . 0 }}
  port: {{ index . 1 }}
periodSeconds: {{ index . 2 }}
{{- if gt (len .) 4 }}
timeoutSeconds: {{ index . 4 }}
{{- end }}
failureThreshold: {{ index . 3 }}
{{- end -}}
