#!/usr/bin/env bash
# A real 3-node Apache Kafka cluster (KRaft, combined broker+controller nodes) run natively
# from the Maven Central jars fetched by infra/kafka/pom.xml. No Docker, no tarball. Each node
# JVM carries the Prometheus JMX exporter agent (infra/kafka/jmx-exporter.yml): its broker
# metrics, all named kafka_*, at http://127.0.0.1:METRICS_PORT/metrics.
#
#   kafka.sh fetch                 download the jars into $STATE_DIR/kafka-dist/libs (pre-warm)
#   kafka.sh start                 reuse a cluster already answering, else start ours and wait
#                                  until 3 brokers are registered and an RF-3 topic has ISR 3/3
#   kafka.sh stop                  stop what this script started (and only that)
#   kafka.sh status                per node: pid alive? ports open? (exit 0 only if all 3 are up)
#   kafka.sh logs [N]              tail the node logs
#   kafka.sh stop-node N | start-node N | kill-node N | freeze-node N | thaw-node N
#                                  failure drills: SIGTERM / start / SIGKILL / SIGSTOP / SIGCONT
#   kafka.sh wipe                  stop, then delete this cluster's state dir
#   kafka.sh bootstrap             print the bootstrap string
#   kafka.sh metrics-targets       print the exporters' host:port list (what Prometheus scrapes)
#   kafka.sh print-config [N]      print node N's properties rendered from infra/kafka/node.properties.template
#                                  (default 1), start nothing
#
# Environment:
#   KAFKA_CLUSTER     cluster name (default main); state in $STATE_DIR/kafka-$KAFKA_CLUSTER,
#                     jars shared in $STATE_DIR/kafka-dist
#   KAFKA_PORT_BASE   default 9092: node N listens for clients on 127.0.0.1:BASE+N-1 and for
#                     the controller quorum on 127.0.0.1:BASE+100+N-1. Remembered per cluster.
#   KAFKA_METRICS_PORT_BASE  default BASE+200: node N's JMX exporter on 127.0.0.1:METRICS_BASE+N-1
#                     (9292-9294 for the default cluster). Read at each start.
#   KAFKA_TOPOLOGY    combined (default): 3 nodes, each broker and controller.
#                     split: 3 broker-only nodes (1-3) and one controller-only node 4 (quorum on
#                     BASE+100, exporter on METRICS_BASE+3). For drills that stop two brokers: in
#                     combined mode that also loses the controller quorum, so no ISR can shrink
#                     and no leader be elected. Remembered per cluster (fixed at format time).
#   KAFKA_READY_TIMEOUT  seconds to wait for readiness on start (default 180)
#   KAFKA_HEAP_OPTS, KAFKA_JVM_OPTS, KAFKA_TOOLS_JVM_OPTS  override the JVM settings below.
COMPONENT=kafka
# shellcheck source=infra/native/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

POM="$ROOT/infra/kafka/pom.xml"
LOG4J_CONFIG="$ROOT/infra/kafka/log4j2.yaml"
DIST="$STATE_DIR/kafka-dist"
LIBS="$DIST/libs"
# The exporter agent lives beside the classpath folder, not in it: `-cp libs/*` must not
# load its (shaded) classes a second time.
AGENT_DIR="$LIBS/agent"
JMX_EXPORTER_CONFIG="$ROOT/infra/kafka/jmx-exporter.yml"

KAFKA_CLUSTER="${KAFKA_CLUSTER:-main}"
[[ $KAFKA_CLUSTER =~ ^[A-Za-z0-9_-]+$ ]] || die "KAFKA_CLUSTER must match [A-Za-z0-9_-]+ (got '$KAFKA_CLUSTER')"
CDIR="$STATE_DIR/kafka-$KAFKA_CLUSTER"
MARKER="$CDIR/started-by-us"
READY_TOPIC="__readiness_check"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-180}"
STOP_TIMEOUT=60

# Broker JVMs. Three of them share 2 cores and 24 GiB with a Rust build, so a fixed 512m-1g heap
# each (Kafka serves data from the page cache, not the heap; 1g is plenty for test loads).
# GC: Kafka's own defaults (G1, 20ms pause goal). Measured on this 2-core box: SerialGC and
# ParallelGC start the cluster no faster (broker CPU to ready ~22-26s for all three, within
# noise), so nothing is traded for them. C1-only JIT (-XX:TieredStopAtLevel=1) did cut startup
# CPU ~45% (13-15s) but leaves the brokers on slower code for the load tests, so it is only
# used for the short-lived CLI tools; put it in KAFKA_JVM_OPTS if a run only needs speed.
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
# CLI tools (TopicCommand, StorageTool, ...) live for ~2s: C1-only JIT, SerialGC and a small heap
# take a tool run from ~2.5s to ~1.5s here. Their logging is log4j2's built-in default (errors
# only, to the console).
KAFKA_TOOLS_JVM_OPTS="${KAFKA_TOOLS_JVM_OPTS:--Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}"

# ---------------------------------------------------------------------------------------------
# Ports. The base is remembered in the cluster dir: the controller endpoints are written into
# the KRaft metadata log at format time, so a formatted cluster cannot move ports.
resolve_port_base() {
  local saved=""
  [ -f "$CDIR/port-base" ] && saved="$(cat "$CDIR/port-base")"
  if [ -n "${KAFKA_PORT_BASE:-}" ]; then
    if ! [[ $KAFKA_PORT_BASE =~ ^[0-9]+$ ]] || [ "$KAFKA_PORT_BASE" -lt 1024 ] || [ "$KAFKA_PORT_BASE" -gt 65300 ]; then
      die "KAFKA_PORT_BASE must be a port number between 1024 and 65300 (got '$KAFKA_PORT_BASE')"
    fi
    if [ -n "$saved" ] && [ "$saved" != "$KAFKA_PORT_BASE" ]; then
      die "cluster '$KAFKA_CLUSTER' was created with KAFKA_PORT_BASE=$saved; use that, or wipe it first"
    fi
    PORT_BASE="$KAFKA_PORT_BASE"
  else
    PORT_BASE="${saved:-9092}"
  fi
}
resolve_port_base

# Topology, remembered like the port base: the voter set is written at format time.
resolve_topology() {
  local saved=""
  [ -f "$CDIR/topology" ] && saved="$(cat "$CDIR/topology")"
  TOPOLOGY="${KAFKA_TOPOLOGY:-${saved:-combined}}"
  [[ $TOPOLOGY == combined || $TOPOLOGY == split ]] || die "KAFKA_TOPOLOGY must be combined or split (got '$TOPOLOGY')"
  if [ -n "$saved" ] && [ "$saved" != "$TOPOLOGY" ]; then
    die "cluster '$KAFKA_CLUSTER' was created with KAFKA_TOPOLOGY=$saved; use that, or wipe it first"
  fi
}
resolve_topology
BROKERS=(1 2 3)
if [ "$TOPOLOGY" = combined ]; then
  CONTROLLERS=(1 2 3)
  NODES=(1 2 3)
else
  CONTROLLERS=(4)
  NODES=(1 2 3 4)
fi
is_broker() { [ "$1" -le 3 ]; }
is_controller() { [ "$TOPOLOGY" = combined ] || [ "$1" -eq 4 ]; }
node_roles() {
  if [ "$TOPOLOGY" = combined ]; then echo broker,controller
  elif is_controller "$1"; then echo controller
  else echo broker; fi
}

METRICS_PORT_BASE="${KAFKA_METRICS_PORT_BASE:-$((PORT_BASE + 200))}"
[[ $METRICS_PORT_BASE =~ ^[0-9]+$ ]] || die "KAFKA_METRICS_PORT_BASE must be a port number (got '$METRICS_PORT_BASE')"

broker_port() { echo $((PORT_BASE + $1 - 1)); }
controller_port() { # combined: BASE+100+N-1; split: the one controller (node 4) on BASE+100
  if [ "$TOPOLOGY" = combined ]; then echo $((PORT_BASE + 100 + $1 - 1)); else echo $((PORT_BASE + 100)); fi
}
metrics_port() { echo $((METRICS_PORT_BASE + $1 - 1)); }
node_ports() { # every port node N listens on
  is_broker "$1" && broker_port "$1"
  is_controller "$1" && controller_port "$1"
  metrics_port "$1"
}
join_ports() { # join_ports <port-fn> <node...>: "127.0.0.1:p1,127.0.0.1:p2,..."
  local fn=$1 n out=""
  shift
  for n in "$@"; do out+="${out:+,}127.0.0.1:$("$fn" "$n")"; done
  echo "$out"
}
BOOTSTRAP="$(join_ports broker_port "${BROKERS[@]}")"
CONTROLLER_BOOTSTRAP="$(join_ports controller_port "${CONTROLLERS[@]}")"
METRICS_TARGETS="$(join_ports metrics_port "${NODES[@]}")"

node_dir() { echo "$CDIR/node-$1"; }
node_props() { echo "$CDIR/node-$1/node-$1.properties"; }
node_pidfile() { echo "$CDIR/node-$1/kafka.pid"; }
node_out() { echo "$CDIR/node-$1/node-$1.out"; }
node_logs_dir() { echo "$CDIR/node-$1/logs"; }

check_node_arg() {
  if [ "$TOPOLOGY" = split ]; then
    [[ ${1:-} =~ ^[1234]$ ]] || die "expected a node number 1-3 (brokers) or 4 (controller) (got '${1:-}')"
  else
    [[ ${1:-} =~ ^[123]$ ]] || die "expected a node number 1, 2 or 3 (got '${1:-}')"
  fi
}

# is_node_jvm <pid> <N>: the process is the JVM of *this* cluster's node N (its command line
# names kafka.Kafka and this node's properties file, an absolute path unique to cluster+node).
is_node_jvm() {
  local cmd
  cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline")" || return 1
  [[ $cmd == *" kafka.Kafka $(node_props "$2")"* ]]
}

# node_pid <N>: the pid of our node N when it is running. Stricter than pid_alive (a stale pid
# file after a reboot or pid reuse is never signalled), and if the pid file was lost the JVM
# is found by its command line, so `stop` never leaves an orphan broker behind.
node_pid() {
  local pidf pid
  pidf="$(node_pidfile "$1")"
  if pid_alive "$pidf"; then
    pid="$(cat "$pidf")"
    if is_node_jvm "$pid" "$1"; then echo "$pid"; return 0; fi
  fi
  local f
  while IFS= read -r f; do
    pid="${f#/proc/}"; pid="${pid%/cmdline}"
    if is_node_jvm "$pid" "$1"; then
      [ -d "$(node_dir "$1")" ] && echo "$pid" >"$pidf"
      echo "$pid"
      return 0
    fi
  done < <(grep -lsaF -- "$(node_props "$1")" /proc/[0-9]*/cmdline)
  return 1
}

# ---------------------------------------------------------------------------------------------
# fetch: Maven resolves kafka_2.13 + kafka-tools + log4j2 binding + the JMX exporter agent into
# $LIBS. Stamped with the pom's checksum so an edited pom re-fetches; written to a temp dir
# first so a failed or interrupted download never leaves a half-filled libs folder; flock'd so
# two clusters starting at once don't both download.
pom_stamp() { sha256sum "$POM" | cut -d' ' -f1; }
libs_ready() { [ -f "$LIBS/.fetched" ] && [ "$(cat "$LIBS/.fetched")" = "$(pom_stamp)" ]; }

ensure_tools() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

fetch() {
  libs_ready && return 0
  ensure_tools
  mkdir -p "$DIST"
  exec 9>"$DIST/.fetch.lock"
  flock -w 600 9 || die "another fetch holds $DIST/.fetch.lock"
  if libs_ready; then exec 9>&-; return 0; fi
  local tmp="$DIST/libs.tmp.$$" t0=$SECONDS
  rm -rf "$tmp"
  log "fetching Kafka jars from Maven Central (infra/kafka/pom.xml) ..."
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" >"$DIST/fetch.log" 2>&1; then
    tail -n 40 "$DIST/fetch.log" >&2
    rm -rf "$tmp"
    die "maven fetch failed (full output: $DIST/fetch.log)"
  fi
  ls "$tmp"/kafka_2.13-*.jar "$tmp"/kafka-tools-*.jar "$tmp"/log4j-slf4j-impl-*.jar \
    "$tmp"/jmx_prometheus_javaagent-*.jar >/dev/null 2>&1 \
    || die "maven fetch finished but the broker/tools/logging/exporter jars are missing from $tmp"
  mkdir -p "$tmp/agent"
  mv "$tmp"/jmx_prometheus_javaagent-*.jar "$tmp/agent/"
  pom_stamp >"$tmp/.fetched"
  install_libs "$tmp"
  exec 9>&-
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $((SECONDS - t0))s into $LIBS"
}

# install_libs <dir>: make <dir> the libs folder without pulling jars from under a running JVM.
# A broker opens its classpath jars lazily, so deleting one it has not opened yet can break it
# hours later. When the new set only adds files (e.g. the exporter agent), they are copied in
# beside the old ones; when it drops or replaces jars, a JVM still running from $LIBS must be
# stopped first.
libs_in_use() { grep -lsaF -- "$LIBS/*" /proc/[0-9]*/cmdline >/dev/null 2>&1; }
install_libs() {
  local new=$1 f dropped=()
  if [ -d "$LIBS" ]; then
    while IFS= read -r f; do
      [ -e "$new/$f" ] || dropped+=("$f")
    done < <(cd "$LIBS" && find . -name '*.jar' | sed 's|^\./||')
    if [ ${#dropped[@]} -eq 0 ]; then
      (cd "$new" && find . -name '*.jar' | while IFS= read -r f; do
        [ -e "$LIBS/$f" ] || { mkdir -p "$LIBS/$(dirname "$f")"; cp "$f" "$LIBS/$f"; }
      done)
      cp "$new/.fetched" "$LIBS/.fetched"
      rm -rf "$new"
      return 0
    fi
    libs_in_use && die "the new pom drops ${#dropped[@]} jar(s) (${dropped[0]}, ...) that Kafka JVMs running from $LIBS may still load; stop those clusters first ('kafka.sh stop'), then fetch again"
  fi
  rm -rf "$LIBS"
  mv "$new" "$LIBS"
}

agent_jar() { find "$AGENT_DIR" -name 'jmx_prometheus_javaagent-*.jar' 2>/dev/null | sort -V | tail -n 1; }

# Run one of Kafka's own CLI classes from the same jars as the broker.
kafka_tool() {
  local cls=$1; shift
  # shellcheck disable=SC2086 # word-splitting of the JVM options is intended
  java $KAFKA_TOOLS_JVM_OPTS -cp "$LIBS/*" "$cls" "$@"
}

# ---------------------------------------------------------------------------------------------
# State: ids (generated once per cluster), per-node properties (rendered on every start so
# edits to the template take effect), and a client config for the readiness tools.

# A Kafka Uuid string: 16 random bytes, URL-safe base64 without padding (22 chars), never
# starting with '-' (Kafka's own Uuid.randomUuid() rule, so it can't be taken for a CLI flag).
kafka_uuid() {
  local u
  while :; do
    u="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ $u == -* ]] || break
  done
  echo "$u"
}

ensure_state() {
  local n
  mkdir -p "$CDIR"
  echo "$PORT_BASE" >"$CDIR/port-base"
  echo "$TOPOLOGY" >"$CDIR/topology"
  [ -s "$CDIR/cluster.id" ] || kafka_uuid >"$CDIR/cluster.id"
  for n in "${NODES[@]}"; do
    mkdir -p "$(node_dir "$n")/data" "$(node_logs_dir "$n")"
    # The metadata log dir id of node N; part of the initial voter set (KIP-853).
    [ -s "$(node_dir "$n")/dir.id" ] || kafka_uuid >"$(node_dir "$n")/dir.id"
    # .state/kafka-<cluster>/node-N.log: the broker's server.log, at a short fixed path for
    # `make logs` (tail -F follows the link across rollovers).
    ln -sfn "node-$n/logs/server.log" "$CDIR/node-$n.log"
    write_node_props "$n"
  done
  cat >"$CDIR/tools.properties" <<'EOF'
# Admin client settings for kafka.sh's readiness checks: fail fast and let the loop retry.
request.timeout.ms=3000
default.api.timeout.ms=6000
EOF
}

write_node_props() { node_props_text "$1" >"$(node_props "$1")"; }

node_listeners() { # the listeners of node N: PLAINTEXT (broker) and/or CONTROLLER
  local l=""
  is_broker "$1" && l="PLAINTEXT://127.0.0.1:$(broker_port "$1")"
  is_controller "$1" && l+="${l:+,}CONTROLLER://127.0.0.1:$(controller_port "$1")"
  echo "$l"
}

# The node properties are a file of their own, infra/kafka/node.properties.template: the
# settings that decide what survives a broker failure, each with its reason. Rendering
# replaces each ${NAME} below by its value (plain bash substitution: no envsubst, and a value
# may hold any character), and refuses a template that names a variable it does not fill.
NODE_PROPS_TEMPLATE="$ROOT/infra/kafka/node.properties.template"
node_props_text() {
  local n=$1 text inter_broker=""
  [ -f "$NODE_PROPS_TEMPLATE" ] || die "missing $NODE_PROPS_TEMPLATE"
  text="$(<"$NODE_PROPS_TEMPLATE")"
  # A controller-only node has no broker listener to name for inter-broker traffic.
  is_broker "$n" && inter_broker="# Replication between brokers uses the client listener.
inter.broker.listener.name=PLAINTEXT"
  local -A values=(
    [KAFKA_CLUSTER]="$KAFKA_CLUSTER"
    [NODE_ID]="$n"
    [TOPOLOGY]="$TOPOLOGY"
    [PROCESS_ROLES]="$(node_roles "$n")"
    [CONTROLLER_BOOTSTRAP]="$CONTROLLER_BOOTSTRAP"
    [LISTENERS]="$(node_listeners "$n")"
    [INTER_BROKER_LISTENER]="$inter_broker"
    [LOG_DIRS]="$(node_dir "$n")/data"
  )
  local name
  for name in "${!values[@]}"; do
    text="${text//"\${$name}"/"${values[$name]}"}"
  done
  # shellcheck disable=SC2016 # '${' is the literal placeholder syntax, not an expansion
  [[ $text != *'${'* ]] || die "$NODE_PROPS_TEMPLATE names a variable kafka.sh does not fill: $(grep -o '\${[A-Z_]*}' <<<"$text" | head -n 1)"
  printf '%s\n' "$text"
}

is_formatted() { [ -f "$(node_dir "$1")/data/meta.properties" ]; }

# Format the storage of the nodes given (in parallel: each is a ~2s JVM). All nodes get the same
# cluster id and the same initial voter set "id@host:port:directory-id".
format_nodes() {
  local n initial="" pids=() failed=0 voters
  for n in "${CONTROLLERS[@]}"; do
    initial+="${initial:+,}$n@127.0.0.1:$(controller_port "$n"):$(cat "$(node_dir "$n")/dir.id")"
  done
  for n in "$@"; do
    log "formatting node $n storage (cluster id $(cat "$CDIR/cluster.id"))"
    # Controllers are seeded with the voter set; a broker-only node just learns it.
    if is_controller "$n"; then voters=(--initial-controllers "$initial"); else voters=(--no-initial-controllers); fi
    kafka_tool kafka.tools.StorageTool format \
      --config "$(node_props "$n")" \
      --cluster-id "$(cat "$CDIR/cluster.id")" \
      "${voters[@]}" >"$(node_dir "$n")/format.log" 2>&1 &
    pids+=($!)
  done
  for n in "${!pids[@]}"; do
    wait "${pids[$n]}" || failed=1
  done
  for n in "$@"; do
    if ! is_formatted "$n"; then
      cat "$(node_dir "$n")/format.log" >&2
      failed=1
    fi
  done
  [ "$failed" -eq 0 ] || die "formatting storage failed (see $CDIR/node-*/format.log)"
}

# Start node N's JVM in the background (no waiting).
launch_node() {
  local n=$1 pid
  if pid="$(node_pid "$n")"; then
    log "node $n already running (pid $pid)"
    return 0
  fi
  ports_free "$n" || die "node $n: one of ports $(node_ports "$n" | tr '\n' ' ')is taken by a process this script did not start"
  local agent
  agent="$(agent_jar)"
  [ -n "$agent" ] || die "the JMX exporter agent is missing from $AGENT_DIR; run 'kafka.sh fetch'"
  {
    echo
    echo "===== $(date -Is) starting node $n ====="
  } >>"$(node_out "$n")"
  (
    # The JVM must not inherit any descriptor beyond 0-2 (our lock and fd-4 copies, or a
    # caller's pipe, e.g. `x=$(kafka.sh start)` or `kafka.sh start | tee`): it would hold the
    # caller's pipe open for the broker's lifetime and make the caller hang.
    # (No redirection on this loop: bash would park a copy of fd 2 above 2, and closing it
    # would leave the JVM's stderr pointing at /dev/null.)
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if [ "$fd" -gt 2 ]; then exec {fd}>&-; fi
    done
    # The JMX exporter agent serves this node's metrics on its own port (host:port:config).
    # shellcheck disable=SC2086 # word-splitting of the JVM options is intended
    exec nohup java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS \
      -javaagent:"$agent=127.0.0.1:$(metrics_port "$n"):$JMX_EXPORTER_CONFIG" \
      -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
      -Dkafka.logs.dir="$(node_logs_dir "$n")" \
      -cp "$LIBS/*" kafka.Kafka "$(node_props "$n")"
  ) >>"$(node_out "$n")" 2>&1 </dev/null &
  echo $! >"$(node_pidfile "$n")"
  log "node $n started (pid $!, $(node_roles "$n"), $(node_listeners "$n"), metrics http://127.0.0.1:$(metrics_port "$n")/metrics)"
}

ports_free() { # ports_free <N>: none of node N's ports is taken
  local p
  for p in $(node_ports "$1"); do tcp_open 127.0.0.1 "$p" && return 1; done
  return 0
}

prepare_and_launch() { # prepare_and_launch <node...>
  local n unformatted=()
  for n in "$@"; do # fail before touching anything if a port is taken by someone else
    node_pid "$n" >/dev/null && continue
    if ! ports_free "$n"; then
      die "node $n: one of ports $(node_ports "$n" | tr '\n' ' ')is taken by a process this script did not start (another KAFKA_CLUSTER/KAFKA_PORT_BASE overlapping? a cluster uses BASE..BASE+2, BASE+100..BASE+102 and its metrics ports BASE+200..BASE+203)"
    fi
  done
  fetch
  ensure_state
  for n in "$@"; do is_formatted "$n" || unformatted+=("$n"); done
  [ ${#unformatted[@]} -eq 0 ] || format_nodes "${unformatted[@]}"
  for n in "$@"; do launch_node "$n"; done
}

# ---------------------------------------------------------------------------------------------
# Readiness. wait_for bounds attempts; the deadline guard bounds wall-clock time too, since a
# single JVM tool attempt takes a few seconds.
# wait_for silences its command, so these report on fd 4, a copy of the script's stderr.
exec 4>&2
DEADLINE=0
before_deadline() {
  [ "$SECONDS" -lt "$DEADLINE" ] || die "timed out after ${READY_TIMEOUT}s waiting for: $1" 2>&4
  shift
  "$@"
}
all_ports_open() {
  local n p
  for n in "${NODES[@]}"; do
    for p in $(node_ports "$n"); do tcp_open 127.0.0.1 "$p" || return 1; done
  done
}
all_broker_ports_open() {
  local n
  for n in "${BROKERS[@]}"; do tcp_open 127.0.0.1 "$(broker_port "$n")" || return 1; done
}
nodes_alive() {
  local n
  for n in "${NODES[@]}"; do node_pid "$n" >/dev/null || die "node $n exited during startup" 2>&4; done
}
three_brokers_registered() { # the controller's metadata lists 3 unfenced brokers
  nodes_alive
  [ "$(kafka_tool org.apache.kafka.tools.ClusterTool list-endpoints \
        --bootstrap-server "$BOOTSTRAP" --command-config "$CDIR/tools.properties" 2>/dev/null \
        | awk '$5 == "unfenced" && $6 == "broker"' | wc -l)" -ge 3 ]
}
readiness_topic_created() {
  nodes_alive
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$CDIR/tools.properties" --create --if-not-exists \
    --topic "$READY_TOPIC" --partitions 1 --replication-factor 3
}
isr_count() { # number of replicas in the ISR of partition 0 of the readiness topic
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
    --command-config "$CDIR/tools.properties" --describe --topic "$READY_TOPIC" 2>/dev/null \
    | sed -n 's/.*Isr: \([0-9,]*\).*/\1/p' | head -n1 | tr ',' '\n' | grep -c '[0-9]'
}
isr_full() { nodes_alive; [ "$(isr_count)" -eq 3 ]; }

tail_node_logs() {
  local n lines=${1:-25}
  for n in "${NODES[@]}"; do
    if [ -f "$(node_logs_dir "$n")/server.log" ]; then
      printf '\n----- node %s: %s -----\n' "$n" "$(node_logs_dir "$n")/server.log" >&2
      tail -n "$lines" "$(node_logs_dir "$n")/server.log" >&2
    fi
    if [ -s "$(node_out "$n")" ]; then
      printf '\n----- node %s: %s -----\n' "$n" "$(node_out "$n")" >&2
      tail -n "$lines" "$(node_out "$n")" >&2
    fi
  done
}

wait_ready() {
  local t0=$1
  DEADLINE=$((SECONDS + READY_TIMEOUT))
  if ! (
    wait_for "$READY_TIMEOUT" "${#NODES[@]} nodes listening" before_deadline "${#NODES[@]} nodes listening" all_ports_open
    wait_for "$READY_TIMEOUT" "3 brokers registered" before_deadline "3 brokers registered" three_brokers_registered
    wait_for "$READY_TIMEOUT" "topic $READY_TOPIC created" before_deadline "topic $READY_TOPIC created" readiness_topic_created
    wait_for "$READY_TIMEOUT" "ISR 3/3 on $READY_TOPIC" before_deadline "ISR 3/3 on $READY_TOPIC" isr_full
  ); then
    tail_node_logs 30
    die "cluster '$KAFKA_CLUSTER' did not become ready (nodes left running; 'kafka.sh logs' / 'kafka.sh stop')"
  fi
  log "3 brokers ready, ISR 3/3 in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
}

# ---------------------------------------------------------------------------------------------
# Stopping.

stop_nodes() { # stop_nodes <node...>: SIGTERM (controlled shutdown), bounded wait, then SIGKILL
  local n pid pids=() names=()
  for n in "$@"; do
    if pid="$(node_pid "$n")"; then
      kill -CONT "$pid" 2>/dev/null || true # a frozen node can't handle SIGTERM
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid"); names+=("$n")
    fi
  done
  local i
  for i in "${!pids[@]}"; do
    await_exit "${pids[$i]}" "node ${names[$i]}" "$STOP_TIMEOUT"
    rm -f "$(node_pidfile "${names[$i]}")"
    log "node ${names[$i]} stopped"
  done
}

# ---------------------------------------------------------------------------------------------
# One mutating kafka.sh at a time per cluster: two concurrent `start`s (make up + a test's
# setup) would otherwise both launch node N, and the loser's pid would overwrite the winner's.
# The waiter then sees the cluster the other one started and just reuses it.
lock_cluster() {
  mkdir -p "$CDIR"
  exec 8>>"$CDIR/.lock"
  if ! flock -n 8; then
    log "another kafka.sh is working on cluster '$KAFKA_CLUSTER'; waiting for it"
    flock -w $((READY_TIMEOUT + 300)) 8 || die "still locked after $((READY_TIMEOUT + 300))s: $CDIR/.lock"
  fi
}

# ---------------------------------------------------------------------------------------------
# Subcommands.
cmd_start() {
  local t0 n running=0
  t0="$(date +%s.%N)"
  for n in "${NODES[@]}"; do node_pid "$n" >/dev/null && running=$((running + 1)); done
  if [ "$running" -eq 0 ] && all_broker_ports_open; then
    log "a cluster already answers on $BOOTSTRAP; reusing it (not started by us, 'stop' will leave it alone)"
    echo "$BOOTSTRAP"
    return 0
  fi
  if [ "$running" -eq "${#NODES[@]}" ] && [ -f "$MARKER" ]; then
    log "cluster '$KAFKA_CLUSTER' already running (started by this script)"
    # A cluster started before the exporter agent was added keeps running without it; the
    # agent is attached at the next start of each node, never by restarting a running one.
    for n in "${NODES[@]}"; do
      tcp_open 127.0.0.1 "$(metrics_port "$n")" \
        || log "node $n serves no metrics on $(metrics_port "$n") (started before the exporter was added; attached at its next start)"
    done
    echo "$BOOTSTRAP"
    return 0
  fi
  log "starting cluster '$KAFKA_CLUSTER' (bootstrap $BOOTSTRAP, state $CDIR)"
  prepare_and_launch "${NODES[@]}"
  date -Is >"$MARKER"
  wait_ready "$t0"
  log "bootstrap: $BOOTSTRAP"
  echo "$BOOTSTRAP"
}

cmd_stop() {
  if [ ! -f "$MARKER" ]; then
    local n
    for n in "${NODES[@]}"; do
      if node_pid "$n" >/dev/null; then
        log "no started-by-us marker but node $n of '$KAFKA_CLUSTER' is ours and running; stopping it"
        stop_all
        return 0
      fi
    done
    if all_broker_ports_open; then
      log "a cluster answers on $BOOTSTRAP but this script did not start it; leaving it alone"
    else
      log "cluster '$KAFKA_CLUSTER': nothing started by this script is running"
    fi
    return 0
  fi
  log "stopping cluster '$KAFKA_CLUSTER'"
  stop_all
  rm -f "$MARKER"
}

# Brokers first: a broker's controlled shutdown (moving its leaderships away) needs a live
# controller. In combined mode every node is both, so all go at once.
stop_all() {
  if [ "$TOPOLOGY" = split ]; then
    stop_nodes "${BROKERS[@]}"
    stop_nodes "${CONTROLLERS[@]}"
  else
    stop_nodes "${NODES[@]}"
  fi
}

cmd_status() {
  local n pid up=0 p_state b_state c_state m_state listening
  echo "cluster '$KAFKA_CLUSTER' ($TOPOLOGY)  bootstrap $BOOTSTRAP  state $CDIR$([ -f "$MARKER" ] && echo '  (started by us)')"
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")"; then
      p_state="pid $pid alive"
      [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = "T" ] && p_state="pid $pid FROZEN (SIGSTOP)"
    else
      p_state="no process of ours"
    fi
    b_state=-; c_state=-
    if is_broker "$n"; then tcp_open 127.0.0.1 "$(broker_port "$n")" && b_state=open || b_state=closed; fi
    if is_controller "$n"; then tcp_open 127.0.0.1 "$(controller_port "$n")" && c_state=open || c_state=closed; fi
    tcp_open 127.0.0.1 "$(metrics_port "$n")" && m_state=open || m_state=closed
    printf 'node %s: %-28s client %s %-6s controller %s %-6s metrics %s %s\n' "$n" "$p_state" \
      "$(is_broker "$n" && broker_port "$n" || echo -)" "$b_state" \
      "$(is_controller "$n" && controller_port "$n" || echo -)" "$c_state" "$(metrics_port "$n")" "$m_state"
    # Our node: its listeners open and not frozen (the metrics port is reported, not required:
    # a node started before the exporter was added has none). A reused cluster: its client
    # port is what counts (its controllers may live elsewhere).
    listening=true
    [ "$b_state" = closed ] && listening=false
    [ "$c_state" = closed ] && listening=false
    if [[ $p_state == pid* ]]; then
      $listening && [[ $p_state != *FROZEN* ]] && up=$((up + 1))
    else
      [ "$b_state" = open ] && up=$((up + 1))
    fi
  done
  [ "$up" -eq "${#NODES[@]}" ]
}

cmd_logs() {
  if [ -n "${1:-}" ]; then
    check_node_arg "$1"
    tail -n 60 "$(node_logs_dir "$1")/server.log" "$(node_out "$1")" 2>/dev/null || die "no logs for node $1"
  else
    tail_node_logs 40 2>&1
  fi
}

require_ours() {
  [ -f "$(node_props "$1")" ] || die "cluster '$KAFKA_CLUSTER' has no node $1 here ($CDIR); was it started by this script?"
}

cmd_node() {
  local action=$1 n=${2:-} pid
  check_node_arg "$n"
  require_ours "$n"
  case "$action" in
    start-node)
      prepare_and_launch "$n"
      local port
      # (Not `node_ports | head -n 1`: head closing the pipe early is a SIGPIPE, fatal
      # under pipefail.)
      if is_broker "$n"; then port="$(broker_port "$n")"; else port="$(controller_port "$n")"; fi
      if ! (wait_for 60 "node $n to listen on $port" tcp_open 127.0.0.1 "$port"); then
        tail_node_logs 30; die "node $n did not come up"
      fi
      ;;
    stop-node) stop_nodes "$n" ;;
    kill-node)
      pid="$(node_pid "$n")" || die "node $n is not running"
      kill -KILL "$pid"
      wait_for 10 "node $n to die" pid_gone "$pid"
      rm -f "$(node_pidfile "$n")"
      log "node $n killed (SIGKILL, pid $pid)"
      ;;
    freeze-node)
      pid="$(node_pid "$n")" || die "node $n is not running"
      kill -STOP "$pid"
      log "node $n frozen (SIGSTOP, pid $pid); 'thaw-node $n' resumes it"
      ;;
    thaw-node)
      pid="$(node_pid "$n")" || die "node $n is not running"
      kill -CONT "$pid"
      log "node $n thawed (SIGCONT, pid $pid)"
      ;;
  esac
}

cmd_wipe() {
  cmd_stop
  local n
  for n in "${NODES[@]}"; do
    node_pid "$n" >/dev/null && die "node $n still running; not wiping $CDIR"
  done
  rm -rf "$CDIR"
  log "wiped $CDIR"
}

usage() {
  sed -n '2,/^COMPONENT=/{/^COMPONENT=/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

case "${1:-}" in
  fetch) fetch; log "jars ready in $LIBS ($(du -sh "$LIBS" | cut -f1))" ;;
  start) lock_cluster; cmd_start ;;
  stop) lock_cluster; cmd_stop ;;
  status) cmd_status ;;
  logs) cmd_logs "${2:-}" ;;
  start-node | stop-node | kill-node | freeze-node | thaw-node) lock_cluster; cmd_node "$1" "${2:-}" ;;
  wipe) lock_cluster; cmd_wipe ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  metrics-targets) echo "$METRICS_TARGETS" ;;
  print-config) n="${2:-1}"; check_node_arg "$n"; node_props_text "$n" ;;
  *) usage ;;
esac
