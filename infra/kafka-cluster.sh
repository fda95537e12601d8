#!/usr/bin/env bash
# A 3-node Apache Kafka cluster (KRaft, each node broker and controller) on loopback, from
# the Apache jars on Maven Central. For tests and local trials of the production engine.
#
#   infra/kafka-cluster.sh up          fetch the jars if needed, format, start, wait
#   infra/kafka-cluster.sh down        stop every node (SIGTERM, then SIGKILL)
#   infra/kafka-cluster.sh status      which nodes run
#   infra/kafka-cluster.sh start N     start node N (1-3) again, on its formatted storage
#   infra/kafka-cluster.sh fetch       only fetch the jars
#   infra/kafka-cluster.sh bootstrap   print the bootstrap servers
#
# Settings (environment):
#   DSR_KAFKA_VERSION  Apache Kafka release (default 4.4.0)
#   DSR_KAFKA_CACHE    where the jars are kept (default ~/.cache/dsr-pipeline/kafka)
#   DSR_KAFKA_DIR      the cluster's configuration, data, logs and pids (default /var/tmp/dsr-kafka)
#   DSR_KAFKA_PORT     first client port; nodes use PORT, PORT+1, PORT+2 (default 39192) and
#                      their controllers PORT+100.. (default 39292)
#   DSR_KAFKA_HEAP     each node's heap (default 384m)
set -euo pipefail

VERSION=${DSR_KAFKA_VERSION:-4.4.0}
CACHE=${DSR_KAFKA_CACHE:-$HOME/.cache/dsr-pipeline/kafka}/$VERSION
DIR=${DSR_KAFKA_DIR:-/var/tmp/dsr-kafka}
PORT=${DSR_KAFKA_PORT:-39192}
HEAP=${DSR_KAFKA_HEAP:-384m}
NODES=(1 2 3)

client_port() { echo $((PORT + $1 - 1)); }
controller_port() { echo $((PORT + 100 + $1 - 1)); }
bootstrap() {
  local out=() n
  for n in "${NODES[@]}"; do out+=("127.0.0.1:$(client_port "$n")"); done
  (IFS=,; echo "${out[*]}")
}

fetch() {
  [[ -f $CACHE/.complete ]] && return
  command -v java >/dev/null || { echo "java is not installed" >&2; exit 3; }
  command -v mvn >/dev/null || { echo "mvn is not installed" >&2; exit 3; }
  mkdir -p "$CACHE"
  local pom
  pom=$(mktemp -d)
  cat >"$pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dsr-pipeline</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  echo "fetching Apache Kafka $VERSION into $CACHE" >&2
  mvn -q -B -f "$pom/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$CACHE" -DincludeScope=runtime >&2
  rm -rf "$pom"
  touch "$CACHE/.complete"
}

# Replaces the calling shell: run it in a subshell (or in the background), so that a
# node's pid file names the Java process itself and a signal reaches the broker.
java_cmd() {
  local n=$1
  shift
  exec java -Xms128m "-Xmx$HEAP" -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Djava.awt.headless=true "-Dkafka.logs.dir=$DIR/node$n/logs" \
    -cp "$CACHE/*" "$@"
}

configure() {
  local n=$1 voters=() m
  for m in "${NODES[@]}"; do voters+=("$m@127.0.0.1:$(controller_port "$m")"); done
  mkdir -p "$DIR/node$n/data" "$DIR/node$n/logs"
  cat >"$DIR/node$n/server.properties" <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(IFS=,; echo "${voters[*]}")
listeners=PLAINTEXT://127.0.0.1:$(client_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(client_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/node$n/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.cleaner.threads=1
EOF
}

running() { [[ -f $DIR/node$1/pid ]] && kill -0 "$(cat "$DIR/node$1/pid")" 2>/dev/null; }

start_node() {
  local n=$1
  running "$n" && return
  java_cmd "$n" kafka.Kafka "$DIR/node$n/server.properties" \
    >>"$DIR/node$n/logs/server.out" 2>&1 &
  echo $! >"$DIR/node$n/pid"
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() {
  local n deadline=$((SECONDS + ${DSR_KAFKA_START_TIMEOUT:-180}))
  for n in "${NODES[@]}"; do
    until answers "$(client_port "$n")"; do
      if ! running "$n"; then
        echo "node $n died; its log: $DIR/node$n/logs/server.out" >&2
        tail -20 "$DIR/node$n/logs/server.out" >&2
        exit 1
      fi
      ((SECONDS < deadline)) || { echo "node $n did not answer in time" >&2; exit 1; }
      sleep 0.5
    done
  done
}

up() {
  fetch
  if [[ ! -f $DIR/cluster.id ]]; then
    rm -rf "$DIR"
    mkdir -p "$DIR"
    (java_cmd 1 kafka.tools.StorageTool random-uuid 2>/dev/null >"$DIR/cluster.id")
    for n in "${NODES[@]}"; do
      configure "$n"
      (java_cmd "$n" kafka.tools.StorageTool format --ignore-formatted \
        -t "$(cat "$DIR/cluster.id")" -c "$DIR/node$n/server.properties" >/dev/null 2>&1)
    done
  fi
  for n in "${NODES[@]}"; do start_node "$n"; done
  wait_up
  echo "Apache Kafka $VERSION: $(bootstrap)" >&2
  bootstrap
}

down() {
  local n pid deadline
  for n in "${NODES[@]}"; do
    running "$n" && kill -TERM "$(cat "$DIR/node$n/pid")"
  done
  deadline=$((SECONDS + 30))
  for n in "${NODES[@]}"; do
    while running "$n" && ((SECONDS < deadline)); do sleep 0.2; done
    if running "$n"; then
      pid=$(cat "$DIR/node$n/pid")
      echo "node $n did not stop; killing $pid" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/node$n/pid"
  done
  [[ ${1:-} == --purge ]] && rm -rf "$DIR"
  return 0
}

status() {
  local n
  for n in "${NODES[@]}"; do
    if running "$n"; then echo "node $n: running (pid $(cat "$DIR/node$n/pid"), port $(client_port "$n"))"
    else echo "node $n: stopped"; fi
  done
}

case ${1:-} in
  fetch) fetch ;;
  up) up ;;
  down) shift; down "$@" ;;
  status) status ;;
  start) start_node "$2"; wait_up ;;
  bootstrap) bootstrap ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
