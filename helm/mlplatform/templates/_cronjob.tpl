{{/* One CronJob of the mlplatform CLI for one model. Args: (dict "ctx" $ "model" "house-price"
     "component" "monitor" "job" .Values.monitor "command" (list ...) "env" "<yaml>"), and
     optionally "volumeMounts" / "volumes" ("<yaml>" lists added to the config and /tmp ones). */}}
{{- define "mlplatform.cronJob" -}}
{{- $ctx := .ctx -}}
{{- $fullname := include "mlplatform.fullname" $ctx -}}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ printf "%s-%s-%s" $fullname .component .model | trunc 52 | trimSuffix "-" }}
  labels:
    {{- include "mlplatform.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
    mlplatform.io/model: {{ .model }}
spec:
  schedule: {{ .job.schedule | quote }}
  suspend: {{ .job.suspend }}
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 300
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    metadata:
      labels:
        {{- include "mlplatform.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 8 }}
        mlplatform.io/model: {{ .model }}
    spec:
      backoffLimit: 2
      activeDeadlineSeconds: {{ .job.activeDeadlineSeconds }}
      template:
        metadata:
          labels:
            {{- include "mlplatform.componentLabels" (dict "ctx" $ctx "component" .component) | nindent 12 }}
            mlplatform.io/model: {{ .model }}
        spec:
          restartPolicy: Never
          serviceAccountName: {{ $fullname }}
          automountServiceAccountToken: false
          {{- with $ctx.Values.imagePullSecrets }}
          imagePullSecrets:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- include "mlplatform.podSecurityContext" (dict "ctx" $ctx) | nindent 12 }}
          containers:
            - name: {{ .component }}
              image: {{ include "mlplatform.image" $ctx }}
              imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
              command: {{ toJson .command }}
              env:
                {{- include "mlplatform.env" $ctx | nindent 16 }}
                {{- with .env }}
                {{- . | nindent 16 }}
                {{- end }}
              resources:
                {{- toYaml .job.resources | nindent 16 }}
              securityContext:
                {{- include "mlplatform.containerSecurityContext" $ctx | nindent 16 }}
              volumeMounts:
                {{- include "mlplatform.baseVolumeMounts" $ctx | nindent 16 }}
                {{- with .volumeMounts }}
                {{- . | nindent 16 }}
                {{- end }}
          volumes:
            {{- include "mlplatform.baseVolumes" $ctx | nindent 12 }}
            {{- with .volumes }}
            {{- . | nindent 12 }}
            {{- end }}
{{- end -}}
