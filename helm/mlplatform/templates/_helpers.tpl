{{/* ---------------------------------------------------------------- names and labels */}}

{{- define "mlplatform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name prefix: the release name (the serving contract says <release>-mlflow). */}}
{{- define "mlplatform.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 30 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlplatform.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "mlplatform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlplatform
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "mlflow"). */}}
{{- define "mlplatform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlplatform.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mlplatform.componentLabels" -}}
{{ include "mlplatform.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* ---------------------------------------------------------------- images */}}

{{/* The one image: repository:tag[@digest]. */}}
{{- define "mlplatform.image" -}}
{{- include "mlplatform.imageRef" .Values.image -}}
{{- end -}}

{{/* Any image map {repository, tag, digest}. */}}
{{- define "mlplatform.imageRef" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- if .digest }}@{{ .digest }}{{ end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- security */}}

{{/* Pod securityContext; (dict "ctx" $ "uid" 70) overrides the user for third-party images. */}}
{{- define "mlplatform.podSecurityContext" -}}
{{- $psc := deepCopy .ctx.Values.podSecurityContext -}}
{{- if .uid -}}
{{- $_ := set $psc "runAsUser" .uid -}}
{{- $_ := set $psc "runAsGroup" .uid -}}
{{- $_ := set $psc "fsGroup" .uid -}}
{{- end -}}
{{- toYaml $psc -}}
{{- end -}}

{{- define "mlplatform.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* ---------------------------------------------------------------- endpoints */}}

{{/* Fully qualified: KFP pipeline pods (another namespace) get it through the run's config. */}}
{{- define "mlplatform.trackingUri" -}}
{{- if .Values.mlflow.enabled -}}
{{- printf "http://%s-mlflow.%s.svc.cluster.local:%d" (include "mlplatform.fullname" .) .Release.Namespace (int .Values.mlflow.port) -}}
{{- else -}}
{{- required "mlflow.externalTrackingUri is required when mlflow.enabled=false" .Values.mlflow.externalTrackingUri -}}
{{- end -}}
{{- end -}}

{{- define "mlplatform.s3Endpoint" -}}
{{- if .Values.artifactStore.endpoint -}}
{{- .Values.artifactStore.endpoint -}}
{{- else if .Values.minio.enabled -}}
{{- printf "http://%s-minio:9000" (include "mlplatform.fullname" .) -}}
{{- else -}}
{{- fail "artifactStore.endpoint is required when minio.enabled=false" -}}
{{- end -}}
{{- end -}}

{{- define "mlplatform.postgresHost" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-postgresql" (include "mlplatform.fullname" .) -}}
{{- else -}}
{{- required "postgresql.external.host is required when postgresql.enabled=false" .Values.postgresql.external.host -}}
{{- end -}}
{{- end -}}

{{- define "mlplatform.postgresPort" -}}
{{- if .Values.postgresql.enabled }}5432{{ else }}{{ .Values.postgresql.external.port }}{{ end -}}
{{- end -}}

{{- define "mlplatform.redisHostPort" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s-redis:6379" (include "mlplatform.fullname" .) -}}
{{- else -}}
{{- printf "%s:%d" (required "redis.external.host is required when redis.enabled=false" .Values.redis.external.host) (int .Values.redis.external.port) -}}
{{- end -}}
{{- end -}}

{{/* KServe logger target: the payload sink Service, fully qualified (the logger runs in the
     InferenceService pods, which resolve it from the same namespace). */}}
{{- define "mlplatform.sinkUrl" -}}
{{- printf "http://%s-payload-sink.%s.svc.cluster.local/" (include "mlplatform.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* ---------------------------------------------------------------- secrets */}}

{{/* Name of the Secret of one credential set: existingSecret, else the chart-created one (only
     when the user supplied the value), else a render error. Args: (dict "ctx" $ "auth" .auth
     "suffix" "postgresql" "given" <bool> "what" "postgresql.auth"). */}}
{{- define "mlplatform.secretName" -}}
{{- if .auth.existingSecret -}}
{{- .auth.existingSecret -}}
{{- else if .given -}}
{{- printf "%s-%s" (include "mlplatform.fullname" .ctx) .suffix -}}
{{- else -}}
{{- fail (printf "%s: set existingSecret (a Secret you created) or the credential values" .what) -}}
{{- end -}}
{{- end -}}

{{- define "mlplatform.postgresSecret" -}}
{{- include "mlplatform.secretName" (dict "ctx" . "auth" .Values.postgresql.auth "suffix" "postgresql" "given" (ne .Values.postgresql.auth.password "") "what" "postgresql.auth") -}}
{{- end -}}

{{- define "mlplatform.storesSecret" -}}
{{- include "mlplatform.secretName" (dict "ctx" . "auth" .Values.stores.auth "suffix" "stores" "given" (ne .Values.stores.auth.password "") "what" "stores.auth") -}}
{{- end -}}

{{- define "mlplatform.s3Secret" -}}
{{- $a := .Values.artifactStore.auth -}}
{{- include "mlplatform.secretName" (dict "ctx" . "auth" $a "suffix" "s3" "given" (and (ne $a.accessKeyId "") (ne $a.secretAccessKey "")) "what" "artifactStore.auth") -}}
{{- end -}}

{{/* Redis AUTH is optional: empty when neither existingSecret nor password is set. */}}
{{- define "mlplatform.redisSecret" -}}
{{- if .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.existingSecret -}}
{{- else if .Values.redis.auth.password -}}
{{- printf "%s-redis" (include "mlplatform.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- env and volumes */}}

{{/* Environment of every mlplatform container: cluster overrides of the config
     (MLPLATFORM__<SECTION>__<FIELD>) and writable locations under /tmp. */}}
{{- define "mlplatform.env" -}}
- name: MLPLATFORM__REGISTRY__TRACKING_URI
  value: {{ include "mlplatform.trackingUri" . | quote }}
- name: MLPLATFORM__REGISTRY__ARTIFACT_ROOT
  value: {{ .Values.mlflow.clientArtifactRoot | quote }}
- name: MLPLATFORM__ARTIFACTS_DIR
  value: /tmp/artifacts
- name: MLPLATFORM__DATA__DATA_DIR
  value: /tmp/data
- name: HOME
  value: /tmp
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
{{- /* library logs to stdout, for kubectl logs (the CLI's quiet default writes them to a file) */}}
- name: MLPLATFORM_VERBOSE
  value: "1"
{{- end -}}

{{/* Feast client environment (feature_repo/feature_store.cluster.yaml expands these). */}}
{{/* Config overrides a KFP pipeline pod needs besides mlplatform.env's (it runs in the KFP
     namespace and sees no MLPLATFORM__* variables: they travel in the run's config_json): the
     DVC remote of the data versions, and a run-private Feast repo under /tmp (the data step's
     point-in-time join reads only the offline store, the fetched Parquet file; the registry
     it applies the definitions to is its own). A YAML map. */}}
{{- define "mlplatform.pipelineOverrides" -}}
MLPLATFORM__DATA__REMOTE: {{ include "mlplatform.dataRemote" . | quote }}
MLPLATFORM__FEATURE_STORE__REPO_DIR: /tmp/feature_repo
MLPLATFORM__FEATURE_STORE__STORE_YAML: /app/feature_repo/feature_store.yaml
{{- end -}}

{{- define "mlplatform.dataRemote" -}}
{{- printf "s3://%s/%s" .Values.artifactStore.bucket .Values.data.remotePrefix -}}
{{- end -}}

{{- define "mlplatform.feastEnv" -}}
- name: MLPLATFORM__FEATURE_STORE__STORE_YAML
  value: /app/feature_repo/feature_store.cluster.yaml
- name: FEAST_REGISTRY_PATH
  value: {{ .Values.feast.registryPath | quote }}
{{- $secret := include "mlplatform.redisSecret" . }}
{{- if $secret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.redis.auth.passwordKey }}
- name: REDIS_CONNECTION_STRING
  value: {{ printf "%s,password=$(REDIS_PASSWORD)" (include "mlplatform.redisHostPort" .) | quote }}
{{- else }}
- name: REDIS_CONNECTION_STRING
  value: {{ include "mlplatform.redisHostPort" . | quote }}
{{- end }}
{{- end -}}

{{/* The loop's shared state (serve.payload_store: the payload log; monitor.alert_store: the
     alerts and retrain claims) in one PostgreSQL database of its own (stores.database), the
     user and password from the stores Secret, declared before the URLs that expand them. */}}
{{- define "mlplatform.storesEnv" -}}
{{- $secret := include "mlplatform.storesSecret" . -}}
{{- $url := printf "postgresql+psycopg://$(STORES_USER):$(STORES_PASSWORD)@%s:%s/%s" (include "mlplatform.postgresHost" .) (include "mlplatform.postgresPort" .) .Values.stores.database -}}
- name: STORES_USER
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.stores.auth.usernameKey }}
- name: STORES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.stores.auth.passwordKey }}
- name: MLPLATFORM__SERVE__PAYLOAD_STORE
  value: {{ $url | quote }}
- name: MLPLATFORM__MONITOR__ALERT_STORE
  value: {{ $url | quote }}
{{- end -}}

{{/* The monitor's reports in the artifact bucket (monitor.reports_dir, written with s3fs): the
     endpoint as MLflow reads it and the S3 key pair from the artifact store's Secret. */}}
{{- define "mlplatform.reportsEnv" -}}
- name: MLPLATFORM__MONITOR__REPORTS_DIR
  value: {{ printf "s3://%s/monitoring" .Values.artifactStore.bucket | quote }}
{{ include "mlplatform.s3Env" . }}
{{- end -}}

{{/* An S3 client of the artifact store (s3fs, DVC, MLflow): the endpoint (MLFLOW_S3_ENDPOINT_URL,
     which mlplatform.versioning also reads) and the key pair from the artifact store's Secret. */}}
{{- define "mlplatform.s3Env" -}}
{{- $s3 := .Values.artifactStore -}}
{{- $secret := include "mlplatform.s3Secret" . -}}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ include "mlplatform.s3Endpoint" . | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $s3.auth.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $s3.auth.secretAccessKeyKey }}
{{- end -}}

{{/* psql script creating the stores' user and database, idempotently: the user (STORES_USER)
     if absent, its password (STORES_PASSWORD) set every time, the database (STORES_DATABASE)
     owned by it if absent, and no access to it for other users. Values come from the
     environment (\getenv), quoted by format() (%I identifiers, %L literals). Run by the
     bundled PostgreSQL's initdb and by the stores hook Job. */}}
{{- define "mlplatform.storesSql" -}}
\getenv stores_user STORES_USER
\getenv stores_password STORES_PASSWORD
\getenv stores_db STORES_DATABASE
SELECT format('CREATE ROLE %I LOGIN', :'stores_user')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'stores_user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'stores_user', :'stores_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'stores_db', :'stores_user')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'stores_db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'stores_db') \gexec
{{- end -}}

{{- define "mlplatform.configPath" -}}
/etc/mlplatform/{{ . }}.yaml
{{- end -}}

{{- define "mlplatform.baseVolumeMounts" -}}
- name: config
  mountPath: /etc/mlplatform
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "mlplatform.baseVolumes" -}}
- name: config
  configMap:
    name: {{ include "mlplatform.fullname" . }}-config
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "mlplatform.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "mlplatform.feastRegistryVolume" -}}
- name: feast-registry
  persistentVolumeClaim:
    claimName: {{ include "mlplatform.fullname" . }}-feast-registry
    readOnly: true
{{- end -}}

{{- define "mlplatform.feastRegistryMount" -}}
- name: feast-registry
  mountPath: {{ dir .Values.feast.registryPath }}
  readOnly: true
{{- end -}}

{{/* HTTP probe pair of an mlplatform server on the serving port. */}}
{{- define "mlplatform.servingProbes" -}}
{{- $p := .Values.serving.probes -}}
readinessProbe:
  httpGet:
    path: {{ $p.readiness.path }}
    port: {{ .Values.serving.port }}
  initialDelaySeconds: {{ $p.readiness.initialDelaySeconds }}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
livenessProbe:
  httpGet:
    path: {{ $p.liveness.path }}
    port: {{ .Values.serving.port }}
  initialDelaySeconds: {{ $p.liveness.initialDelaySeconds }}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
{{- end -}}

{{/* The models whose online features the materialize CronJobs fill: those with a dataVersion
     (nothing else on the cluster says which bytes to serve), when materialize and Feast are on.
     Independent of serving.enabled: features can be filled before the servers start. */}}
{{- define "mlplatform.materializedModels" -}}
{{- $names := list -}}
{{- if and .Values.materialize.enabled .Values.feast.enabled -}}
{{- range $name := include "mlplatform.configuredModels" . | fromJsonArray -}}
{{- if (index $.Values.models $name).dataVersion -}}{{- $names = append $names $name -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* Names of the models with enabled: true, in a stable order (their configs). */}}
{{- define "mlplatform.configuredModels" -}}
{{- $names := list -}}
{{- range $name, $m := .Values.models -}}
{{- if $m.enabled -}}{{- $names = append $names $name -}}{{- end -}}
{{- end -}}
{{- toJson (sortAlpha $names) -}}
{{- end -}}

{{/* The models whose workloads are deployed: [] when serving.enabled is false. */}}
{{- define "mlplatform.enabledModels" -}}
{{- if .Values.serving.enabled -}}
{{- include "mlplatform.configuredModels" . -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}
