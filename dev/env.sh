# Shared environment for every dev/ script and .ci/run. Source it; do not execute it.
# State (data, logs, pids) lives under ECOM_HOME; downloads and builds under ECOM_CACHE,
# outside the clone, so a second run on the same machine skips every download.
ECOM_ROOT="${ECOM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export ECOM_ROOT
export ECOM_HOME="${ECOM_HOME:-$HOME/.local/state/ecom}"
export ECOM_CACHE="${ECOM_CACHE:-$HOME/.cache/ecom}"
# shellcheck source=versions.env
set -a; . "$ECOM_ROOT/dev/versions.env"; set +a

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ECOM_CACHE/target}"
export GOMODCACHE="${GOMODCACHE:-$ECOM_CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$ECOM_CACHE/go/build}"
export GOFLAGS="${GOFLAGS:--modcacherw}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$ECOM_CACHE/pip-cache}"
# The one Rust profile shared by tests, benchmarks and the demo.
export ECOM_PROFILE=release
export ECOM_BIN="$CARGO_TARGET_DIR/$ECOM_PROFILE/ecom"
export ECOM_JNI_DIR="$CARGO_TARGET_DIR/$ECOM_PROFILE"
export ECOM_JOB_JAR="${ECOM_JOB_JAR:-$ECOM_ROOT/flink-job/target/ecom-flink-job.jar}"
# The commit the job jar is stamped with (the ecom binary's build script reads git itself).
ECOM_COMMIT="$(git -C "$ECOM_ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
export ECOM_COMMIT
# Python XGBoost + shap + grpcio, for the tests that cross-check our TreeSHAP and call ecom
# serve from Python's official gRPC stack (dev/install makes it).
export ECOM_CHECK_VENV="$ECOM_CACHE/venv-check-xgboost-$XGBOOST_VERSION-shap-$SHAP_VERSION-grpcio-$GRPCIO_VERSION"
export ECOM_CHECK_PYTHON="${ECOM_CHECK_PYTHON:-$ECOM_CHECK_VENV/bin/python}"

export FLINK_HOME="$ECOM_CACHE/flink-$FLINK_VERSION/pyflink"
export FLINK_CONF_DIR="$ECOM_HOME/flink/conf"
export KAFKA_LIBS="$ECOM_CACHE/kafka-$KAFKA_VERSION/libs"
export ES_HOME="$ECOM_CACHE/elasticsearch-$ELASTICSEARCH_VERSION"
export FERRETDB_BIN="$ECOM_CACHE/bin/ecom-ferretdb-$FERRETDB_VERSION"

export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export ES_URL="${ES_URL:-http://127.0.0.1:9200}"
export MONGODB_URL="${MONGODB_URL:-mongodb://127.0.0.1:27017}"
export FLINK_REST="${FLINK_REST:-http://127.0.0.1:8081}"
export ECOM_PARTITIONS="${ECOM_PARTITIONS:-2}"

# Java 17 runs Kafka, Flink and Elasticsearch (the machine may also carry newer JDKs).
if [[ -z "${ECOM_JAVA_HOME:-}" ]]; then
  for _jdk in /usr/lib/jvm/java-17-openjdk-*; do
    [[ -x "$_jdk/bin/java" ]] && ECOM_JAVA_HOME="$_jdk" && break
  done
  unset _jdk
fi
export ECOM_JAVA_HOME="${ECOM_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
# Pid files of every server dev/up starts (<svc>.pid); logs live in $ECOM_HOME/<svc>/.
export ECOM_RUN="$ECOM_HOME/run"
# Elasticsearch refuses to run as root; dev/install creates this system user for it.
export ES_USER="${ES_USER:-ecom}"
export ES_PATH_CONF="$ECOM_HOME/elasticsearch/config"
export FLINK_PROM_PORTS="${FLINK_PROM_PORTS:-9249-9250}"
