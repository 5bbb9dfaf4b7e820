#!/usr/bin/env bash
# Local Apache Kafka (single KRaft node) and PostgreSQL (throwaway cluster) for tests and development.
#
#   scripts/services.sh run CMD [ARGS...]   start both, run CMD with KAFKA_BROKERS and DATABASE_URL
#                                           exported, stop both and delete their data, exit with CMD's status;
#                                           a SIGTERM or Ctrl-C stops CMD (SIGTERM, 10 s, then SIGKILL) and both
#   scripts/services.sh up                  start both, print the variables, keep running until Ctrl-C
#
# A service whose variable is already set (KAFKA_BROKERS, DATABASE_URL) is used as it is, not started.
# Kafka's jars are resolved from Maven Central with mvn into .cache/kafka/<version>/ once and reused.
# PostgreSQL is Debian's `postgresql` package, installed with apt-get when its binaries are missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")
KAFKA_HOME="$ROOT/.cache/kafka/$KAFKA_VERSION"
STARTUP_TIMEOUT_S=${SERVICES_STARTUP_TIMEOUT_S:-90}

WORK=""
SLEEP_PID=""
CMD_PID=""
CMD_NAME=""
BACKGROUND="" # "run" or "up" once the script starts its command or its sleeps in the background
KAFKA_PID=""
PG_DATA=""
PG_BIN=""

say() { printf '[services] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }

# A free loopback port, asked of the kernel by binding port 0 (Node or Python, whichever is there).
free_port() {
  if command -v node >/dev/null; then
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
  elif command -v python3 >/dev/null; then
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'
  else
    die "finding a free port needs node or python3 on PATH"
  fi
}

# Runs a command as the user that owns the PostgreSQL cluster (postgres refuses to run as root).
as_pg_user() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  local status=$?
  # Further signals are ignored, not fatal: one Ctrl-C under `deno task` arrives twice (from the
  # terminal and from the task runner), and a second one must not leave the servers running.
  trap - EXIT
  trap '' INT TERM
  # A signal handled between a `… &` and the saving of its `$!` left that pid unknown: it is the latest job started.
  if [ -n "$BACKGROUND" ] && [ -n "$!" ] && [ "$!" != "$KAFKA_PID" ]; then
    if [ "$BACKGROUND" = "up" ]; then SLEEP_PID=$!; else CMD_PID=${CMD_PID:-$!}; fi
  fi
  # SIGKILL and reaped: a SIGTERM reaching the sleep's process between fork and exec (a Ctrl-C right after start-up)
  # went to bash's trap in that copy and was lost with the exec, and the sleep stayed for an hour.
  if [ -n "$SLEEP_PID" ]; then
    kill -9 "$SLEEP_PID" 2>/dev/null || true
    wait "$SLEEP_PID" 2>/dev/null || true
  fi
  # The command first (it uses the services), given 10 s to stop (a Ctrl-C reached it too).
  if [ -n "$CMD_PID" ] && kill -0 "$CMD_PID" 2>/dev/null; then
    say "stopping $CMD_NAME (pid $CMD_PID)"
    kill -TERM "$CMD_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$CMD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$CMD_PID" 2>/dev/null || true
    wait "$CMD_PID" 2>/dev/null || true
  fi
  if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    say "stopping PostgreSQL"
    as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "$KAFKA_PID" ] && kill -0 "$KAFKA_PID" 2>/dev/null; then
    say "stopping Kafka (pid $KAFKA_PID)"
    kill "$KAFKA_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$KAFKA_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$KAFKA_PID" 2>/dev/null || true
  fi
  if [ -n "$WORK" ]; then
    if [ "$status" != "0" ] && [ -n "${SERVICES_KEEP_LOGS:-}" ]; then
      say "keeping service data and logs in $WORK"
    else
      rm -rf "$WORK"
      say "deleted service data"
    fi
  fi
  exit "$status"
}

ensure_kafka_jars() {
  if [ -f "$KAFKA_HOME/.complete" ]; then
    say "Kafka $KAFKA_VERSION jars cached in ${KAFKA_HOME#"$ROOT"/}"
    return
  fi
  command -v mvn >/dev/null || die "mvn (Maven) is required to fetch Kafka's jars from Maven Central"
  say "resolving Kafka $KAFKA_VERSION from Maven Central (first run only)"
  rm -rf "$KAFKA_HOME"
  mkdir -p "$KAFKA_HOME/libs"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs" >&2 ||
    die "could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION with mvn"
  touch "$KAFKA_HOME/.complete"
}

start_kafka() {
  command -v java >/dev/null || die "java (17+) is required to run the local Kafka broker"
  command -v deno >/dev/null || die "deno is not on PATH (it checks that Kafka is ready); run through 'npx --yes deno@2.9.6 task …'"
  ensure_kafka_jars
  local started port controller dir
  started=$(now_ms)
  port=$(free_port)
  controller=$(free_port)
  dir="$WORK/kafka"
  mkdir -p "$dir/logs"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/logs/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
EOF
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$dir/log4j.properties" -cp "$KAFKA_HOME/libs/*")
  local cluster_id
  cluster_id=$(java "${java_opts[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  java "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
    >"$dir/logs/format.log" 2>&1 || die "formatting Kafka storage failed: $(cat "$dir/logs/format.log")"
  java "${java_opts[@]}" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 &
  KAFKA_PID=$!
  export KAFKA_BROKERS="127.0.0.1:$port"
  # Ready means the broker answers a metadata request with itself in it, checked with the project's client.
  local deadline=$(($(date +%s) + STARTUP_TIMEOUT_S))
  until deno run -A --quiet "$ROOT/scripts/wait_kafka.ts" "$KAFKA_BROKERS" >/dev/null 2>&1; do
    kill -0 "$KAFKA_PID" 2>/dev/null || die "Kafka exited during start-up: $(tail -n 20 "$dir/logs/server.log" 2>/dev/null)"
    [ "$(date +%s)" -lt "$deadline" ] || die "Kafka did not answer metadata requests within ${STARTUP_TIMEOUT_S}s"
    sleep 0.3
  done
  say "Kafka $KAFKA_VERSION ready at $KAFKA_BROKERS (pid $KAFKA_PID) in $(($(now_ms) - started)) ms"
}

find_pg_bin() {
  local candidate
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/postgres" ]; then
    pg_config --bindir
    return
  fi
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$candidate/postgres" ] && { echo "$candidate"; return; }
  done
}

start_postgres() {
  local started port sockets
  started=$(now_ms)
  PG_BIN=$(find_pg_bin)
  if [ -z "$PG_BIN" ]; then
    [ "$(id -u)" = "0" ] || die "PostgreSQL is not installed; run: sudo apt-get install -y postgresql"
    say "installing Debian's postgresql package"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 ||
      die "apt-get install postgresql failed"
    PG_BIN=$(find_pg_bin)
    [ -n "$PG_BIN" ] || die "postgresql installed but no server binaries found"
  fi
  port=$(free_port)
  PG_DATA="$WORK/pg/data"
  sockets="$WORK/pg/sockets"
  mkdir -p "$PG_DATA" "$sockets"
  if [ "$(id -u)" = "0" ]; then chown -R postgres "$WORK/pg"; fi
  as_pg_user "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-locale >"$WORK/pg-initdb.log" 2>&1 ||
    die "initdb failed: $(tail -n 20 "$WORK/pg-initdb.log")"
  as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/server.log" -w -t "$STARTUP_TIMEOUT_S" \
    -o "-p $port -k $sockets -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null ||
    die "PostgreSQL did not start: $(tail -n 20 "$WORK/pg/server.log" 2>/dev/null)"
  as_pg_user "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -t "$STARTUP_TIMEOUT_S" >/dev/null ||
    die "PostgreSQL does not accept connections on port $port"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  say "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') ready at 127.0.0.1:$port in $(($(now_ms) - started)) ms"
}

start_services() {
  WORK=$(mktemp -d /tmp/engine-services.XXXXXX)
  chmod 755 "$WORK"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [ -n "${DATABASE_URL:-}" ]; then say "using DATABASE_URL from the environment"; else start_postgres; fi
  if [ -n "${KAFKA_BROKERS:-}" ]; then say "using KAFKA_BROKERS=$KAFKA_BROKERS from the environment"; else start_kafka; fi
}

case "${1:-}" in
  run)
    shift
    [ $# -gt 0 ] || die "usage: scripts/services.sh run CMD [ARGS...]"
    start_services
    # In the background (with this script's stdin), so that a SIGTERM or Ctrl-C to this script runs the cleanup trap
    # now: bash runs no trap while a foreground command runs, and a hung command kept Kafka and PostgreSQL up for ever.
    # SIGINT and SIGQUIT as they would be in the foreground (bash ignores them in a background job): the command and
    # whatever it starts still hear Ctrl-C.
    CMD_NAME=$1
    BACKGROUND=run
    (
      trap - INT QUIT
      exec "$@"
    ) <&0 &
    CMD_PID=$!
    set +e
    wait "$CMD_PID"
    status=$?
    set -e
    CMD_PID=""
    BACKGROUND=""
    exit "$status"
    ;;
  up)
    start_services
    say "export KAFKA_BROKERS=$KAFKA_BROKERS DATABASE_URL=$DATABASE_URL"
    say "running; press Ctrl-C to stop and delete the data"
    # In the background, so that a SIGTERM runs the cleanup trap now, not when the sleep ends.
    # The cleanup trap ends it: a background job of a non-interactive shell ignores Ctrl-C's SIGINT, and used to stay
    # for up to an hour.
    BACKGROUND=up
    while true; do sleep 3600 & SLEEP_PID=$!; wait "$SLEEP_PID"; done
    ;;
  *)
    die "usage: scripts/services.sh run CMD [ARGS...] | scripts/services.sh up"
    ;;
esac
