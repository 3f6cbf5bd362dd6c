{{/* Names: <release>-lmarena-bridge unless the release name already says it. */}}
{{- define "lmb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lmb.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lmb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "lmb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lmarena-bridge
{{- end -}}

{{/* Every pod of this release: who may reach Redis. */}}
{{- define "lmb.selector" -}}
app.kubernetes.io/name: {{ include "lmb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lmb.gatewaySelector" -}}
{{ include "lmb.selector" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "lmb.workerSelector" -}}
{{ include "lmb.selector" . }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "lmb.image" -}}
{{- printf "%s:%s" .image.repository (default .chart.AppVersion .image.tag) -}}
{{- end -}}

{{/*
Redis and the admin key, the same for gateways and workers. The password is read from its Secret
(LMB_REDIS_PASSWORD, any characters), never rendered into the manifest.
*/}}
{{- define "lmb.commonEnv" -}}
- name: LMB_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "adminKey.secretName: the Secret holding LMB_ADMIN_KEY" .Values.adminKey.secretName }}
      key: {{ .Values.adminKey.secretKey }}
- name: LMB_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "redis.password.secretName: the Secret holding Redis's password" .Values.redis.password.secretName }}
      key: {{ .Values.redis.password.secretKey }}
{{- if eq .Values.redis.mode "url" }}
{{- $url := .Values.redis.url }}
- name: LMB_REDIS_URL
  value: {{ printf "%s://%s:%v/%v" $url.scheme (required "redis.url.host: where Redis is (redis.mode=url)" $url.host) $url.port $url.db | quote }}
{{- else if eq .Values.redis.mode "sentinel" }}
{{- if not .Values.redis.sentinel.hosts }}
{{- fail "redis.sentinel.hosts: the Sentinels, host:port (redis.mode=sentinel)" }}
{{- end }}
- name: LMB_REDIS_SENTINELS
  value: {{ .Values.redis.sentinel.hosts | join "," | quote }}
- name: LMB_REDIS_SENTINEL_MASTER
  value: {{ .Values.redis.sentinel.master | quote }}
- name: LMB_REDIS_TLS
  value: {{ .Values.redis.sentinel.tls | quote }}
{{- else }}
{{- fail (printf "redis.mode must be url or sentinel, not %q" .Values.redis.mode) }}
{{- end }}
{{- if .Values.redis.caCertificate.secretName }}
- name: LMB_REDIS_CA_CERTS
  value: /etc/lmarena-bridge/redis-ca/{{ .Values.redis.caCertificate.secretKey }}
{{- end }}
{{- end -}}

{{/* The CA that signs Redis's certificate, when one is given: a volume and its mount. */}}
{{- define "lmb.redisCaVolume" -}}
{{- if .Values.redis.caCertificate.secretName }}
- name: redis-ca
  secret:
    secretName: {{ .Values.redis.caCertificate.secretName }}
{{- end }}
{{- end -}}

{{- define "lmb.redisCaMount" -}}
{{- if .Values.redis.caCertificate.secretName }}
- name: redis-ca
  mountPath: /etc/lmarena-bridge/redis-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/*
The LMB_ settings of one component (its own over the common ones), as env entries. Those the
chart sets itself cannot be given here: Kubernetes would keep both.
Call with (dict "root" $ "own" .Values.gateway.settings "managed" (list "LMB_HOST" ...)).
*/}}
{{- define "lmb.settingsEnv" -}}
{{- $managed := concat (list "LMB_ADMIN_KEY" "LMB_REDIS_URL" "LMB_REDIS_PASSWORD" "LMB_REDIS_SENTINELS" "LMB_REDIS_SENTINEL_MASTER" "LMB_REDIS_TLS" "LMB_REDIS_CA_CERTS") .managed -}}
{{- range $name, $value := merge (deepCopy .own) (deepCopy .root.Values.settings) }}
{{- if has $name $managed }}
{{- fail (printf "settings: %s is set by the chart itself" $name) }}
{{- end }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}
