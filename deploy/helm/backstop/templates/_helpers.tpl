{{- define "backstop.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "backstop.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "backstop.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "backstop.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The configuration as written into the ConfigMap: configFile verbatim when given (--set-file), else config as YAML. */}}
{{- define "backstop.configYaml" -}}
{{- if .Values.configFile -}}{{ .Values.configFile }}{{- else -}}{{ toYaml .Values.config }}{{- end -}}
{{- end -}}

{{/* The port serve listens on, read from the configuration's serve.listen (8080 when unset). */}}
{{- define "backstop.port" -}}
{{- $config := include "backstop.configYaml" . | fromYaml -}}
{{- $listen := "" -}}
{{- if $config.serve -}}{{- $listen = $config.serve.listen | default "" | toString -}}{{- end -}}
{{- if $listen -}}{{- last (splitList ":" $listen) -}}{{- else -}}8080{{- end -}}
{{- end -}}

{{- define "backstop.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-secrets" (include "backstop.fullname" .)) -}}
{{- end -}}

{{- define "backstop.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-state" (include "backstop.fullname" .)) -}}
{{- end -}}

{{/* The pod spec shared by the Deployment (serve) and the CronJob (run). */}}
{{- define "backstop.podSpec" -}}
{{- $verb := index . 1 -}}
{{- with index . 0 -}}
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: backstop
    image: {{ include "backstop.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args: [--config, /etc/backstop/backstop.yaml, {{ $verb }}]
    {{- if .Values.agents.enabled }}
    env:
      - { name: BACKSTOP_MACHINE, value: {{ .Values.agents.clusterMachine | quote }} }
    {{- end }}
    {{- if or .Values.secrets .Values.existingSecret }}
    envFrom:
      - secretRef: { name: {{ include "backstop.secretName" . }} }
    {{- end }}
    {{- if eq $verb "serve" }}
    ports:
      - { name: http, containerPort: {{ include "backstop.port" . }} }
    readinessProbe:
      httpGet: { path: /healthz, port: http }
    livenessProbe:
      httpGet: { path: /healthz, port: http }
      periodSeconds: 30
    {{- end }}
    resources: {{- toYaml .Values.resources | nindent 6 }}
    securityContext: {{- toYaml .Values.securityContext | nindent 6 }}
    volumeMounts:
      - { name: config, mountPath: /etc/backstop, readOnly: true }
      - { name: state, mountPath: /var/lib/backstop }
      - { name: tmp, mountPath: /tmp }
volumes:
  - name: config
    configMap: { name: {{ include "backstop.fullname" . }}-config }
  - name: state
    persistentVolumeClaim: { claimName: {{ include "backstop.claimName" . }} }
  - name: tmp
    emptyDir: {}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
{{- end -}}
