# shellcheck shell=bash
# Helpers shared by the dev/ scripts: messages, pid files and the real health probes of each
# server. Source it after dev/env.sh; do not execute it. Every script starts:
#   set -euo pipefail
#   . "$(dirname "${BASH_SOURCE[0]}")/env.sh"
#   . "$ECOM_ROOT/dev/lib.sh"

# The services dev/up manages, in start order, with their ports and log files.
# shellcheck disable=SC2034 # used by the scripts that source this file
ECOM_SERVICES=(kafka redis elasticsearch ferretdb flink)
# shellcheck disable=SC2034
declare -A ECOM_PORT=([kafka]=9092 [redis]=6379 [elasticsearch]=9200 [ferretdb]=27017 [flink]=8081)
declare -A ECOM_LOG=(
  [kafka]="$ECOM_HOME/kafka/kafka.log"
  [redis]="$ECOM_HOME/redis/redis.log"
  [elasticsearch]="$ECOM_HOME/elasticsearch/logs/ecom-dev.log"
  [ferretdb]="$ECOM_HOME/ferretdb/ferretdb.log"
  [flink]="$ECOM_HOME/flink/log"
)
# A pid only counts as ours when its command line matches (pids get reused).
declare -A ECOM_CMD_MATCH=(
  [kafka]="kafka.Kafka"
  [redis]="redis-server"
  [elasticsearch]="org.elasticsearch"
  [ferretdb]="ecom-ferretdb"
  [flink]="StandaloneSessionClusterEntrypoint"
  [flink-taskmanager]="TaskManagerRunner"
  [dashboard]="ecom dashboard"
)

# step: a section of a long run (dev/build, dev/test); say: progress; warn and die: to stderr.
step() { printf '==> %s\n' "$*"; }
say() { printf '[ecom] %s\n' "$*"; }
warn() { printf '[ecom] %s\n' "$*" >&2; }
die() { warn "error: $*"; exit 1; }

# pid_of SVC: prints the pid from $ECOM_RUN/SVC.pid when that process is alive and is ours.
pid_of() {
  local svc=$1 file="$ECOM_RUN/$1.pid" pid
  [[ -r "$file" ]] || return 1
  pid=$(head -n1 "$file" 2>/dev/null | tr -dc '0-9')
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "${ECOM_CMD_MATCH[$svc]}" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Kafka command-line tools on the broker's own classpath, quiet logging.
kafka_tool() {
  timeout "${KAFKA_TOOL_TIMEOUT:-60}" "$ECOM_JAVA_HOME/bin/java" -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.level=WARN \
    -cp "$KAFKA_LIBS/*" "$@"
}

# Probes: exit 0 only when the server answers a real request.
probe_kafka() {
  port_open "${ECOM_PORT[kafka]}" || return 1
  KAFKA_TOOL_TIMEOUT=30 kafka_tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$KAFKA_BOOTSTRAP" --list >/dev/null 2>&1
}
probe_redis() { [[ "$(timeout 5 redis-cli -h 127.0.0.1 -p "${ECOM_PORT[redis]}" PING 2>/dev/null)" == PONG ]]; }
probe_elasticsearch() {
  curl -fsS -m 5 "$ES_URL/_cluster/health?wait_for_status=yellow&timeout=2s" >/dev/null 2>&1
}
probe_ferretdb() {
  port_open "${ECOM_PORT[ferretdb]}" || return 1
  "$FERRETDB_BIN" -ping "$MONGODB_URL" -ping-timeout 3s >/dev/null 2>&1
}
probe_flink() {
  local n
  n=$(curl -fsS -m 5 "$FLINK_REST/overview" 2>/dev/null | jq -r '.taskmanagers // 0' 2>/dev/null) || return 1
  [[ "${n:-0}" -ge 1 ]]
}

# start_flink_daemon jobmanager|taskmanager: starts one Flink daemon with the stack's conf and
# records its pid as flink.pid / flink-taskmanager.pid (dev/up, dev/crash-taskmanager).
start_flink_daemon() {
  local dir="$ECOM_HOME/flink" kind pidfile
  case $1 in
    jobmanager) kind=standalonesession pidfile=flink ;;
    taskmanager) kind=taskexecutor pidfile=flink-taskmanager ;;
    *) die "start_flink_daemon: jobmanager or taskmanager, not '$1'" ;;
  esac
  # flink-daemon.sh appends to its pid file; after a kill (not stop-cluster) it holds dead pids
  # that would be read as ours. Nothing of ours of this kind runs here: start from an empty file.
  rm -f "$dir"/pid/flink-*-"$kind".pid
  env FLINK_CONF_DIR="$FLINK_CONF_DIR" JAVA_HOME="$ECOM_JAVA_HOME" \
    "$FLINK_HOME/bin/$1.sh" start >>"$dir/log/start.out" 2>&1
  # flink-daemon.sh names its pid files after $USER, which may be unset: glob.
  cat "$dir"/pid/flink-*-"$kind".pid | tail -n1 >"$ECOM_RUN/$pidfile.pid"
  # The recorded pid is the forked shell's until it execs the JVM: give it up to 10 s to become
  # the daemon, so that pid_of right after this does not take a starting daemon for a dead one.
  for _ in $(seq 50); do
    pid_of "$pidfile" >/dev/null && return 0
    sleep 0.2
  done
}

# Versions as reported by the running servers (pinned version when it cannot be asked).
version_of() {
  local v=""
  case $1 in
    kafka) v=$(grep -ho 'Kafka version: [^ ]*' "${ECOM_LOG[kafka]}" 2>/dev/null | tail -n1 | cut -d' ' -f3) ;;
    redis) v=$(timeout 5 redis-cli -p "${ECOM_PORT[redis]}" INFO server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p')
      [[ -n "$v" ]] || v=$(redis-server --version 2>/dev/null | grep -o 'v=[^ ]*' | cut -d= -f2) ;;
    # The integ-test-zip has no "GET /" handler; ask the node itself.
    elasticsearch) v=$(curl -fsS -m 5 "$ES_URL/_cat/nodes?h=version" 2>/dev/null | tr -d '[:space:]') ;;
    ferretdb) v=$("$FERRETDB_BIN" -ping "$MONGODB_URL" -ping-timeout 3s 2>/dev/null) ;;
    flink) v=$(curl -fsS -m 5 "$FLINK_REST/overview" 2>/dev/null | jq -r '."flink-version" // empty' 2>/dev/null) ;;
  esac
  local pinned=${1^^}_VERSION
  [[ -n "$v" || -z "${!pinned:-}" ]] || v="${!pinned} (pinned)"
  echo "${v:--}"
}

# What to try when a service does not come up.
hint_of() {
  case $1 in
    kafka) echo "check ports ${ECOM_PORT[kafka]}/9093 are free (ss -ltnp); if the log shows a cluster-id or metadata error, dev/down --purge wipes the KRaft data" ;;
    redis) echo "check port ${ECOM_PORT[redis]} is free (ss -ltnp 'sport = :${ECOM_PORT[redis]}'); another redis-server may be running" ;;
    elasticsearch) echo "check port ${ECOM_PORT[elasticsearch]}/9300 are free, that user '$ES_USER' can read $ES_HOME and write $ECOM_HOME/elasticsearch, and the JVM log in $ECOM_HOME/elasticsearch/logs" ;;
    ferretdb) echo "check port ${ECOM_PORT[ferretdb]} is free; delete $ECOM_HOME/ferretdb/data if the SQLite files are corrupt; rebuild with rm $FERRETDB_BIN && dev/install" ;;
    flink) echo "check ports ${ECOM_PORT[flink]}/6123 are free and the *.log/*.out files in $ECOM_HOME/flink/log; a TaskManager that dies at start usually means too little memory" ;;
  esac
}

# Last lines of a service's log(s), for failure reports.
tail_log() {
  local f
  for f in "${ECOM_LOG[$1]}" "${ECOM_LOG[$1]}"/* "$ECOM_HOME/$1/stdout.log"; do
    [[ -f "$f" ]] || continue
    echo "----- $f (last 30 lines)"
    tail -n 30 "$f"
  done
}

# A first model in $ECOM_MODELS_DIR when there is none: EVENTS generated events (seed SEED)
# into a scratch directory, then `ecom train` (a minute or two for 300k events). Retrain any
# time with `ecom train --from DIR`.
ensure_model() {
  [[ ! -s "$ECOM_MODELS_DIR/CURRENT" ]] || return 0
  local data="$ECOM_HOME/first-model-$2.data"
  say "no model in $ECOM_MODELS_DIR: training a first one from $1 generated events ($data)"
  rm -rf "$data"
  "$ECOM_BIN" generate --events "$1" --seed "$2" --out "$data" --quiet
  "$ECOM_BIN" train --from "$data" --models-dir "$ECOM_MODELS_DIR" --quiet
}
