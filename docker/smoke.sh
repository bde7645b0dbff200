#!/usr/bin/env bash
# The lab stack end to end on this host's Docker engine, with the images .env configures (base
# images, torch index, mirror: `docker compose build` first, or let `up` build them): brings the
# stack up under its own project name, fresh volumes and random passwords; creates an API token;
# runs the demo experiment (configs/synthetic_igm.yaml) on the cpu worker through the API; kills the
# worker mid-run (SIGKILL, a crash), starts it again and checks that the experiment resumed from its
# checkpoint and succeeded; checks that MLflow answers nobody without its credentials from outside
# the compose network (and is published on loopback only); tears everything down. Each step prints
# its time. Not part of CI (it needs a Docker engine and minutes): README "docker compose".
#
#   docker/smoke.sh [-f EXTRA_COMPOSE_FILE]...
# Environment: COMPOSE (default `docker compose`, else `docker-compose`), SMOKE_PROJECT
# (igm-smoke), SMOKE_API_PORT (18000), SMOKE_MLFLOW_PORT (15000), SMOKE_KEEP=1 (leave the stack up).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${COMPOSE:-}" ]; then
  if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE=docker-compose; fi
fi
# docker-compose v1 gives up on an engine call after 60 s: creating a container on a loaded host
# with the vfs storage driver (a full copy of the image) can take longer
export COMPOSE_HTTP_TIMEOUT=${COMPOSE_HTTP_TIMEOUT:-600}
PROJECT=${SMOKE_PROJECT:-igm-smoke}
API_PORT=${SMOKE_API_PORT:-18000}
ML_PORT=${SMOKE_MLFLOW_PORT:-15000}
FILES=(-f docker-compose.yml -f docker/smoke.override.yml)
while [ $# -gt 0 ]; do
  case "$1" in
    -f) FILES+=(-f "$2"); shift 2 ;;
    *) echo "usage: docker/smoke.sh [-f EXTRA_COMPOSE_FILE]..." >&2; exit 2 ;;
  esac
done
# throwaway secrets and a scratch datasets folder: nothing of a running lab is touched
rand() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
POSTGRES_PASSWORD=$(rand) REDIS_PASSWORD=$(rand) MLFLOW_PASSWORD=$(rand)
export POSTGRES_PASSWORD REDIS_PASSWORD MLFLOW_PASSWORD
export MLFLOW_USERNAME=${MLFLOW_USERNAME:-igm}
export API_PUBLISH="127.0.0.1:$API_PORT" MLFLOW_PUBLISH="127.0.0.1:$ML_PORT"
# MLflow answers the Host its clients send: the workers' name, and this host's published port
export IGM_MLFLOW_ALLOWED_HOSTS="[\"mlflow:5000\",\"127.0.0.1:$ML_PORT\"]"
IGM_DATASETS=$(mktemp -d) && export IGM_DATASETS
dc() { $COMPOSE -p "$PROJECT" "${FILES[@]}" "$@"; }
API="http://127.0.0.1:$API_PORT"
MLFLOW="http://127.0.0.1:$ML_PORT"

T0=$(date +%s)
STEP_T=$T0
step() {  # step NAME: closes the previous step with its time
  local now; now=$(date +%s)
  [ -n "${STEP_NAME:-}" ] && printf '[smoke] %-58s %4ss\n' "$STEP_NAME" "$((now - STEP_T))"
  STEP_NAME=$1 STEP_T=$now
}
fail() { echo "[smoke] FAILED: $*" >&2; dc ps >&2 || true; dc logs --tail 40 >&2 || true; exit 1; }
cleanup() {
  local rc=$?
  if [ "${SMOKE_KEEP:-0}" = 1 ]; then
    echo "[smoke] kept: $COMPOSE -p $PROJECT ${FILES[*]} down -v   removes it"
  else
    step "tear down (down -v)"
    dc down -v --remove-orphans >/dev/null 2>&1 || true
    step ""
  fi
  rm -rf "$IGM_DATASETS"
  echo "[smoke] total $(( $(date +%s) - T0 ))s, exit $rc"
}
trap cleanup EXIT
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "$what: not within ${limit}s"
    sleep 2
  done
}

echo "[smoke] $($COMPOSE version 2>/dev/null | head -1); $(docker version --format 'engine {{.Server.Version}}' 2>/dev/null); project $PROJECT"
step "up -d (postgres, redis, mlflow, api, worker-cpu)"
dc up -d >/dev/null
api_up() { [ "$(code "$API/health")" = 200 ]; }
wait_for 600 "the API's /health" api_up

step "API token (igm token create), 401 without it"
TOKEN=$(dc exec -T api igm token create --name smoke | tail -1 | tr -d '\r')
[ "$(code "$API/experiments")" = 401 ] || fail "the API answered without a token"
AUTH=(-H "Authorization: Bearer $TOKEN")

step "MLflow: loopback only, 401 without credentials, 200 with"
ML_CID=$(dc ps -q mlflow)
BOUND=$(docker port "$ML_CID" 5000/tcp)
echo "[smoke]   mlflow published on: $(echo "$BOUND" | tr '\n' ' ')"
echo "$BOUND" | grep -qv '^127\.0\.0\.1:' && fail "MLflow is published beyond loopback: $BOUND"
SEARCH="api/2.0/mlflow/experiments/search?max_results=1"
got=$(code "$MLFLOW/$SEARCH"); echo "[smoke]   without credentials: $got"
[ "$got" = 401 ] || fail "MLflow answered $got without credentials"
got=$(code -u "$MLFLOW_USERNAME:wrong" "$MLFLOW/$SEARCH"); echo "[smoke]   a wrong password: $got"
[ "$got" = 401 ] || fail "MLflow answered $got to a wrong password"
got=$(code -u "$MLFLOW_USERNAME:$MLFLOW_PASSWORD" "$MLFLOW/$SEARCH"); echo "[smoke]   its credentials: $got"
[ "$got" = 200 ] || fail "MLflow answered $got to its credentials"
got=$(code -u "$MLFLOW_USERNAME:$MLFLOW_PASSWORD" -H "Host: evil.example" "$MLFLOW/$SEARCH")
echo "[smoke]   its credentials, another Host: $got"
[ "$got" = 403 ] || fail "MLflow answered $got to a Host outside IGM_MLFLOW_ALLOWED_HOSTS"
for ip in $(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$ML_CID"); do
  got=$(code --max-time 5 -H "Host: mlflow:5000" "http://$ip:5000/$SEARCH" || true)
  echo "[smoke]   from this host to the compose network's $ip:5000 without credentials: $got"
  [ "$got" = 401 ] || [ "$got" = 000 ] || fail "MLflow at $ip answered $got without credentials"
done

step "submit the demo experiment (queue cpu) through the API"
EXP=$(curl -sf "${AUTH[@]}" -H 'Content-Type: application/yaml' --data-binary @configs/synthetic_igm.yaml \
  "$API/experiments?queue=cpu" | json 'd["id"]') || fail "submit"
echo "[smoke]   experiment $EXP"
exp() { curl -sf "${AUTH[@]}" "$API/experiments/$EXP"; }
past_epoch() {  # running, past its first checkpoint (one per epoch)
  exp | json '1 if d["status"] == "running" and (d.get("progress") or {}).get("epoch", 0) >= 2 else 0' | grep -q 1
}
wait_for 900 "the demo experiment running past epoch 2" past_epoch
echo "[smoke]   progress before the kill: $(exp | json 'd["progress"]')"

step "kill worker-cpu mid-run (SIGKILL), start it again"
dc kill -s SIGKILL worker-cpu >/dev/null
dc start worker-cpu >/dev/null

step "the experiment resumes from its checkpoint and succeeds"
finished() { exp | json 'd["status"] in ("succeeded", "failed", "cancelled")' | grep -q True; }
wait_for 900 "the demo experiment finishing" finished
exp | json '"[smoke]   status %s, attempts %s, test acc %.4f" % (d["status"], d["attempts"], d["summary"]["test"]["acc"])'
exp | json 'd["status"] == "succeeded" and d["attempts"] >= 2' | grep -q True || fail "not succeeded on a second attempt"
RUNS=$(dc exec -T postgres psql -U igm -d igm -tAc "select attempt_runs from experiments where id = '$EXP'" | tr -d '\r')
echo "[smoke]   attempt_runs: $RUNS"
echo "$RUNS" | python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if len(r) >= 2 and (r[-1]["from_step"] or 0) > 0 else 1)' \
  || fail "the second attempt did not resume from a checkpoint"
[ "$(code "${AUTH[@]}" "$API/experiments/$EXP/metrics")" = 200 ] || fail "the API could not read the run's metrics from MLflow"
step ""
echo "[smoke] OK"
