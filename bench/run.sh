#!/usr/bin/env bash
# Throughput benchmark: the bridge against pg_recvlogical (PostgreSQL streaming pgoutput with no
# processing at all) on the same machine, in the same run. See bench/README.md.
#
#   bench/run.sh                    full size: 200,000-row transaction, 20,000 one-row transactions,
#                                   and a snapshot of 200,000 existing rows (against COPY ... TO STDOUT)
#   BENCH_SCALE=0.1 bench/run.sh    smoke run (multiplies both sizes)
#
# Knobs: BENCH_SCALE (default 1), BENCH_RUN_TIMEOUT (seconds one measured run may take, default 600),
#        BENCH_REF (build that commit, exported with git archive, instead of the working tree).
# Writes bench/results/latest.md and prints it; scratch files and logs go to bench/results/tmp/.
set -euo pipefail
export LC_ALL=C

BENCH_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$BENCH_DIR/.." && pwd -P)
RESULTS="$BENCH_DIR/results"
TMP="$RESULTS/tmp"
SCALE=${BENCH_SCALE:-1}
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-600}
PGBIN=/usr/lib/postgresql/15/bin
PUB=bench_pub
VHOST=synchro_bench
CLIENTS=4            # pgbench clients for the many-small-transactions workload
POLL=0.1             # seconds between completion checks (done inside PostgreSQL, see bench_wait)

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $SCALE =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v s="$SCALE" 'BEGIN { exit !(s > 0) }' ||
    die "BENCH_SCALE must be a positive number, got '$SCALE'"
[[ $RUN_TIMEOUT =~ ^[0-9]+$ ]] && [ "$RUN_TIMEOUT" -gt 0 ] || die "BENCH_RUN_TIMEOUT must be a positive integer"
for tool in psql pgbench pg_recvlogical; do
    [ -x "$PGBIN/$tool" ] || die "$PGBIN/$tool not found (PostgreSQL 15 client binaries are needed)"
done
for tool in dotnet curl awk; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

BIG_ROWS=$(awk -v s="$SCALE" 'BEGIN { printf "%d", 200000 * s + 0.5 }')
PER_CLIENT=$(awk -v s="$SCALE" -v c="$CLIENTS" 'BEGIN { printf "%d", 20000 * s / c + 0.5 }')
SMALL_ROWS=$((PER_CLIENT * CLIENTS))
[ "$BIG_ROWS" -ge 1 ] && [ "$PER_CLIENT" -ge 1 ] || die "BENCH_SCALE=$SCALE leaves nothing to write"

mkdir -p "$TMP"
exec 8>"$TMP/.lock"
flock -n 8 || die "another bench/run.sh is running (lock $TMP/.lock)"
cd "$REPO"

# ------------------------------------------------------------------ servers and build

log "starting or reusing the servers (scripts/servers.sh up)"
eval "$(scripts/servers.sh up)"
export PGHOST PGPORT PGUSER PGPASSWORD
: "${SYNCHRO_TEST_AMQP:?scripts/servers.sh did not export SYNCHRO_TEST_AMQP}"
: "${SYNCHRO_RABBIT_MGMT_URL:?scripts/servers.sh did not export SYNCHRO_RABBIT_MGMT_URL}"

# The bridge is built from the working tree (what `dotnet build src/Synchro.Bridge` sees), or with
# BENCH_REF=<commit> from that commit exported by `git archive` into bench/results/tmp/src, so that
# edits in progress in the working tree cannot end up in (or break) the measurement.
BUILD_ROOT=$REPO
if [ -n "${BENCH_REF:-}" ]; then
    REF_COMMIT=$(git -C "$REPO" rev-parse --verify --quiet "${BENCH_REF}^{commit}") ||
        die "BENCH_REF=$BENCH_REF is not a commit of $REPO"
    BUILD_ROOT="$TMP/src"
    rm -rf "$BUILD_ROOT"
    mkdir -p "$BUILD_ROOT"
    git -C "$REPO" archive --format=tar "$REF_COMMIT" | tar -x -C "$BUILD_ROOT" ||
        die "git archive $REF_COMMIT failed"
    log "building the bridge (Release) from commit ${REF_COMMIT:0:7} (BENCH_REF=$BENCH_REF)"
else
    log "building the bridge (Release) from the working tree"
fi
dotnet build "$BUILD_ROOT/src/Synchro.Bridge" -c Release -nologo -v quiet -clp:ErrorsOnly >"$TMP/build.log" 2>&1 ||
    { tail -n 30 "$TMP/build.log" >&2; die "dotnet build src/Synchro.Bridge -c Release failed (log: $TMP/build.log)"; }
# Run a private copy, so a rebuild by someone else during the benchmark cannot swap DLLs under it.
rm -rf "$TMP/bridge"
cp -a "$BUILD_ROOT/src/Synchro.Bridge/bin/Release/net10.0" "$TMP/bridge"
BRIDGE_DLL="$TMP/bridge/synchro-bridge.dll"
[ -f "$BRIDGE_DLL" ] || die "build produced no $BRIDGE_DLL"
# The exported tree is no longer needed; leave no second copy of the projects lying in the repository.
[ "$BUILD_ROOT" = "$REPO" ] || rm -rf "$BUILD_ROOT"

# What was built, for the report.
if [ -n "${BENCH_REF:-}" ]; then
    COMMIT="${REF_COMMIT:0:7} (BENCH_REF=$BENCH_REF, built from \`git archive\`)"
else
    COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    # --no-optional-locks: status must not refresh (write) the index of a repository others work in.
    if [ "$COMMIT" != unknown ] && [ -n "$(git -C "$REPO" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        COMMIT="$COMMIT, working tree with uncommitted changes"
    fi
fi

# ------------------------------------------------------------------ helpers

PSQL=("$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1)
# sql DB QUERY...: run statements in one session, print the rows (bounded).
sql() {
    local db=$1
    shift
    local args=() q
    for q in "$@"; do args+=(-c "$q"); done
    PGOPTIONS='-c client_min_messages=warning' timeout "$RUN_TIMEOUT" "${PSQL[@]}" -d "$db" "${args[@]}"
}

now() { echo "$EPOCHREALTIME"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }'; }
fmt1() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }
fmt2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
group() { sed -E ':a; s/^([0-9]+)([0-9]{3})/\1,\2/; ta' <<<"$1"; }   # 200000 -> 200,000

CLK_TCK=$(getconf CLK_TCK)
PG_DATA=$(sql postgres "SELECT current_setting('data_directory')")
PG_PM=$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
RMQ_PID=$(tr -dc '0-9' <"$REPO/.servers/rabbitmq/rabbitmq.pid" 2>/dev/null || true)
[ -n "$PG_PM" ] && [ -d "/proc/$PG_PM" ] || { log "cannot read the postmaster pid; PostgreSQL CPU is not reported"; PG_PM=; }
[ -n "$RMQ_PID" ] && [ -d "/proc/$RMQ_PID" ] || { log "cannot find the RabbitMQ node's pid; RabbitMQ CPU is not reported"; RMQ_PID=; }

# _ticks PID [children]: sets TICKS to the process's CPU ticks (plus its reaped children's); no fork.
_ticks() {
    TICKS=0
    local stat f
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    # shellcheck disable=SC2206
    f=(${stat##*) })     # f[0] is field 3 (state): utime=f[11] stime=f[12] cutime=f[13] cstime=f[14]
    TICKS=$((f[11] + f[12]))
    [ "${2:-}" = children ] && TICKS=$((TICKS + f[13] + f[14]))
    return 0
}

# All of PostgreSQL: postmaster, its live children, and the children it already reaped. A backend
# that exits between listing and reading moves into the postmaster's cutime: then read again, so
# that it is counted exactly once (a walsender exits the moment pg_recvlogical does).
pg_ticks() {
    [ -n "$PG_PM" ] || { echo -1; return; }
    local try before after total pid
    for try in 1 2 3 4 5; do
        _ticks "$PG_PM" children
        before=$TICKS
        total=0
        for pid in $(ps -o pid= --ppid "$PG_PM"); do
            _ticks "$pid" children
            total=$((total + TICKS))
        done
        _ticks "$PG_PM" children
        after=$TICKS
        [ "$before" = "$after" ] && break
    done
    echo $((after + total))
}
rmq_ticks() { if [ -n "$RMQ_PID" ]; then _ticks "$RMQ_PID" children; echo "$TICKS"; else echo -1; fi; }
# Busy CPU time of the whole machine (all cores): shows how much else was running.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
cpu_s() {   # cpu_s BEFORE AFTER -> seconds, or n/a
    if [ "$1" -lt 0 ] || [ "$2" -lt 0 ]; then echo n/a; else awk -v a="$1" -v b="$2" -v t="$CLK_TCK" 'BEGIN { printf "%.1f", (b - a) / t }'; fi
}

# ------------------------------------------------------------------ cleanup

BRIDGE_PID=
CREATED_DBS=()
VHOST_CREATED=0

# Stop a process we started: SIGTERM (the bridge shuts down gracefully on it), bounded wait, SIGKILL.
stop_pid() {
    local pid=$1 secs=${2:-60} i state
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < secs * 10; i++)); do
        state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || true)
        [ -z "$state" ] || [ "$state" = Z ] && return 0
        sleep 0.1
    done
    log "process $pid did not stop within ${secs}s of SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    return 1
}

drop_run_objects() {   # drop_run_objects DB SLOT: slot (once its walsender is gone) and database
    local db=$1 slot=$2 i
    for ((i = 0; i < 300; i++)); do
        [ "$(sql postgres "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot' AND active")" = 0 ] && break
        sleep 0.1
    done
    sql postgres "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$slot'" >/dev/null ||
        log "could not drop replication slot $slot"
    sql postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || log "could not drop database $db"
}

cleanup() {
    local rc=$? db
    set +e
    if [ -n "$BRIDGE_PID" ]; then
        stop_pid "$BRIDGE_PID" 30
        wait "$BRIDGE_PID" 2>/dev/null
    fi
    for db in "${CREATED_DBS[@]}"; do drop_run_objects "$db" "$db"; done
    if [ "$VHOST_CREATED" = 1 ]; then
        curl -sf -u "$AMQP_USERINFO" -X DELETE "${SYNCHRO_RABBIT_MGMT_URL}api/vhosts/$VHOST" >/dev/null ||
            log "could not delete RabbitMQ vhost $VHOST"
    fi
    [ "$rc" = 0 ] || log "failed (exit $rc); logs are in $TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ RabbitMQ vhost

# The bridge's consumer queue is bound to the shared change-set exchange with "#", so every other
# bridge queue on the default vhost (tests, demo, leftovers) would get a copy of our change sets.
# A private vhost keeps the benchmark's traffic, and the broker work it causes, to itself.
AMQP_USERINFO=$(sed -E 's#^amqps?://([^@/]*)@.*#\1#' <<<"$SYNCHRO_TEST_AMQP")
[[ $AMQP_USERINFO == *:* ]] || AMQP_USERINFO=guest:guest
curl -sf -u "$AMQP_USERINFO" -X DELETE "${SYNCHRO_RABBIT_MGMT_URL}api/vhosts/$VHOST" >/dev/null 2>&1 || true
curl -sf -u "$AMQP_USERINFO" -X PUT "${SYNCHRO_RABBIT_MGMT_URL}api/vhosts/$VHOST" >/dev/null ||
    die "cannot create RabbitMQ vhost $VHOST through the management API at $SYNCHRO_RABBIT_MGMT_URL"
VHOST_CREATED=1
curl -sf -u "$AMQP_USERINFO" -X PUT -H 'content-type: application/json' \
    -d '{"configure":".*","write":".*","read":".*"}' \
    "${SYNCHRO_RABBIT_MGMT_URL}api/permissions/$VHOST/${AMQP_USERINFO%%:*}" >/dev/null ||
    die "cannot grant ${AMQP_USERINFO%%:*} access to RabbitMQ vhost $VHOST"
BENCH_AMQP="${SYNCHRO_TEST_AMQP%/}/$VHOST"

# ------------------------------------------------------------------ one database per measured run

# A server-side wait loop: polls the slot every p_poll seconds for up to p_seconds and returns when
# (if) confirmed_flush_lsn reached p_target, with the server-clock times it first saw the slot active
# and saw it reach the target. Polling inside PostgreSQL costs next to nothing, unlike a psql per poll.
BENCH_WAIT_SQL=$(cat <<'SQL'
CREATE FUNCTION bench_wait(p_slot text, p_target pg_lsn, p_seconds float8, p_poll float8)
RETURNS TABLE (active_at float8, done_at float8, confirmed pg_lsn) LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => p_seconds);
    is_active boolean;
BEGIN
    LOOP
        SELECT s.active, s.confirmed_flush_lsn INTO is_active, confirmed
        FROM pg_replication_slots s WHERE s.slot_name = p_slot;
        IF is_active AND active_at IS NULL THEN
            active_at := extract(epoch FROM clock_timestamp());
        END IF;
        IF confirmed >= p_target THEN
            done_at := extract(epoch FROM clock_timestamp());
            RETURN NEXT;
            RETURN;
        END IF;
        EXIT WHEN clock_timestamp() >= deadline;
        PERFORM pg_sleep(p_poll);
    END LOOP;
    RETURN NEXT;
END $$
SQL
)

# Waits until the bridge's initial snapshot is done (every sync_snapshots job): returns the server-clock
# time it saw that, or NULL at the deadline. The table appears when the bridge starts, hence EXECUTE.
BENCH_WAIT_SNAPSHOT_SQL=$(cat <<'SQL'
CREATE FUNCTION bench_wait_snapshot(p_seconds float8, p_poll float8)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => p_seconds);
    done boolean;
BEGIN
    LOOP
        IF to_regclass('sync_snapshots') IS NOT NULL THEN
            EXECUTE 'SELECT count(*) > 0 AND bool_and(status = ''done'') FROM sync_snapshots' INTO done;
            IF done THEN
                RETURN extract(epoch FROM clock_timestamp());
            END IF;
        END IF;
        EXIT WHEN clock_timestamp() >= deadline;
        PERFORM pg_sleep(p_poll);
    END LOOP;
    RETURN NULL;
END $$
SQL
)

TITLE="'title-' || lpad(v::text, 14, '0')"                                     # 20 characters
BODY="rpad('body of item ' || v || ' ', 100, 'lorem ipsum dolor sit amet ')"     # 100 characters

prepare_db() {   # prepare_db DB: fresh database with the table, the publication and a pgoutput slot named DB
    local db=$1
    drop_run_objects "$db" "$db"
    sql postgres "CREATE DATABASE $db" >/dev/null
    CREATED_DBS+=("$db")
    sql "$db" \
        "CREATE TABLE items (id bigint PRIMARY KEY, user_id bigint NOT NULL, title text NOT NULL, body text NOT NULL)" \
        "CREATE SEQUENCE items_id_seq" \
        "$BENCH_WAIT_SQL" \
        "CREATE PUBLICATION $PUB FOR TABLE items" >/dev/null
    # Waits for transactions running anywhere in the cluster to end (consistent snapshot); untimed.
    sql "$db" "SELECT pg_create_logical_replication_slot('$db', 'pgoutput')" >/dev/null
}

# write_workload DB KIND: writes the workload with nothing reading the slot. Sets ROWS, WRITE_S, END_LSN.
write_workload() {
    local db=$1 kind=$2 t0 t1 insert_lsn inserts
    t0=$(now)
    case $kind in
        big)
            ROWS=$BIG_ROWS
            sql "$db" "INSERT INTO items (id, user_id, title, body)
                       SELECT v, v % 100, $TITLE, $BODY FROM generate_series(1, $ROWS) v" >/dev/null ;;
        small)
            ROWS=$SMALL_ROWS
            printf '%s\n' "INSERT INTO items (id, user_id, title, body) SELECT v, v % 100, $TITLE, $BODY FROM (SELECT nextval('items_id_seq') AS v) s;" \
                >"$TMP/small.sql"
            timeout "$RUN_TIMEOUT" "$PGBIN/pgbench" -n -f "$TMP/small.sql" -t "$PER_CLIENT" -c "$CLIENTS" -j 2 "$db" \
                >"$TMP/pgbench-$db.log" 2>&1 ||
                { tail -n 20 "$TMP/pgbench-$db.log" >&2; die "pgbench failed on $db (log: $TMP/pgbench-$db.log)"; } ;;
    esac
    t1=$(now)
    WRITE_S=$(sub "$t1" "$t0")
    [ "$(sql "$db" "SELECT count(*) FROM items")" = "$ROWS" ] || die "$db: items does not hold $ROWS rows after the workload"

    # Walsenders only send flushed WAL (synchronous_commit is off on the test server): let the
    # WAL writer catch up first so that no measured run waits for it.
    insert_lsn=$(sql "$db" "SELECT pg_current_wal_insert_lsn()")
    local deadline=$((SECONDS + 60))
    until [ "$(sql "$db" "SELECT pg_current_wal_flush_lsn() >= '$insert_lsn'")" = t ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "WAL not flushed up to $insert_lsn after 60 s"
        sleep 0.05
    done
    # The end LSN is the end of the workload's last commit, read from the slot itself (peek: the
    # slot does not move). pg_current_wal_insert_lsn() alone can lie past it when other databases
    # write WAL meanwhile, and the bridge would then wait for an idle keepalive acknowledgement.
    # The peek also checks that the stream holds every row. It is untimed and done for every run.
    local peek
    peek=$(sql "$db" "SELECT count(*) FILTER (WHERE get_byte(data, 0) = 73), max(lsn)
        FROM pg_logical_slot_peek_binary_changes('$db', '$insert_lsn', NULL,
             'proto_version', '1', 'publication_names', '$PUB')")
    IFS='|' read -r inserts END_LSN <<<"$peek"
    [ "$inserts" = "$ROWS" ] || die "$db: the slot holds $inserts inserts up to $insert_lsn, expected $ROWS"
    [ -n "$END_LSN" ] || die "$db: no end LSN found in the slot"
    log "$db: wrote $ROWS rows in ${WRITE_S}s, end LSN $END_LSN"
}

# Result rows, one per measured run, '|'-separated (CPU in seconds; the last two only for the bridge):
# workload|consumer|rows|seconds|startup|peak_rss_mb|cpu_consumer|cpu_pg|cpu_rmq|cpu_machine|cpu_walsender|cpu_backends
RESULT_ROWS=()
declare -A WRITE_TIMES RECV_SECONDS

measure_recvlogical() {   # measure_recvlogical WORKLOAD KIND
    local workload=$1 kind=$2 db="bench_${2}_recv" t0 t1 pg0 pg1 rm0 rm1 m0 m1 rss=n/a cpu=n/a u s
    prepare_db "$db"
    write_workload "$db" "$kind"
    WRITE_TIMES[$kind]=$WRITE_S
    local cmd=("$PGBIN/pg_recvlogical" -d "$db" --slot "$db" --start --no-loop
        -o proto_version=1 -o "publication_names=$PUB" "--endpos=$END_LSN" -f /dev/null)
    local timed=()
    [ -x /usr/bin/time ] && timed=(/usr/bin/time -f '%M %U %S' -o "$TMP/time-$db.txt")
    log "$db: pg_recvlogical up to $END_LSN"
    pg0=$(pg_ticks); rm0=$(rmq_ticks); m0=$(machine_ticks)
    t0=$(now)
    timeout "$RUN_TIMEOUT" "${timed[@]}" "${cmd[@]}" 2>"$TMP/recvlogical-$db.log" ||
        { cat "$TMP/recvlogical-$db.log" >&2; die "pg_recvlogical failed or took over ${RUN_TIMEOUT}s on $db"; }
    t1=$(now)
    pg1=$(pg_ticks); rm1=$(rmq_ticks); m1=$(machine_ticks)
    local confirmed
    confirmed=$(sql "$db" "SELECT confirmed_flush_lsn >= '$END_LSN' FROM pg_replication_slots WHERE slot_name = '$db'")
    [ "$confirmed" = t ] || die "$db: pg_recvlogical exited but the slot is not confirmed up to $END_LSN"
    if [ -s "$TMP/time-$db.txt" ]; then
        read -r rss u s < <(tail -n1 "$TMP/time-$db.txt")
        rss=$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')
        cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.1f", u + s }')
    fi
    RECV_SECONDS[$kind]=$(sub "$t1" "$t0")
    RESULT_ROWS+=("$workload|pg_recvlogical|$ROWS|${RECV_SECONDS[$kind]}||$rss|$cpu|$(cpu_s "$pg0" "$pg1")|$(cpu_s "$rm0" "$rm1")|$(cpu_s "$m0" "$m1")||")
    log "$db: pg_recvlogical took ${RECV_SECONDS[$kind]}s"
    drop_run_objects "$db" "$db"
}

start_bridge() {   # start_bridge DB AMQP_URI LOG [PARTITIONS]: the bridge on items of DB in the background (BRIDGE_PID)
    local db=$1 uri=$2 blog=$3 partitions=${4:-1}
    env Synchro__Postgres__ConnectionString="Host=$PGHOST;Port=$PGPORT;Username=$PGUSER;Password=$PGPASSWORD;Database=$db" \
        Synchro__RabbitMq__Uri="$uri" \
        Synchro__Replication__SlotName="$db" \
        Synchro__Replication__PublicationName="$PUB" \
        Synchro__Tables__0__Name=items \
        Synchro__Tables__0__OwnerColumn=user_id \
        Synchro__Apply__Partitions="$partitions" \
        Logging__LogLevel__Default=Warning \
        DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
        dotnet "$BRIDGE_DLL" run >"$blog" 2>&1 </dev/null &
    BRIDGE_PID=$!
}

measure_bridge() {   # measure_bridge WORKLOAD KIND BUS(rabbitmq|memory) [PARTITIONS]
    local workload=$1 kind=$2 bus=$3 partitions=${4:-1} db uri label
    case $bus in
        rabbitmq) db="bench_${kind}_rmq" uri=$BENCH_AMQP label="bridge + RabbitMQ" ;;
        memory) db="bench_${kind}_mem" uri= label="bridge, in-memory bus" ;;
    esac
    if [ "$partitions" != 1 ]; then db="${db}_p$partitions"; label="$label, $partitions apply partitions"; fi
    prepare_db "$db"
    write_workload "$db" "$kind"

    local blog="$TMP/bridge-$db.log" t0 pg0 rm0 m0 b0
    log "$db: starting the bridge ($label)"
    pg0=$(pg_ticks); rm0=$(rmq_ticks); m0=$(machine_ticks)
    t0=$(now)
    start_bridge "$db" "$uri" "$blog" "$partitions"

    local active_at= done_at= confirmed= a d c deadline out
    deadline=$(awk -v t="$t0" -v n="$RUN_TIMEOUT" 'BEGIN { printf "%d", t + n }')
    while :; do
        out=$(sql "$db" "SELECT * FROM bench_wait('$db', '$END_LSN', 1.0, $POLL)") ||
            die "$db: polling the slot failed"
        IFS='|' read -r a d c <<<"$out"
        [ -z "$active_at" ] && [ -n "$a" ] && active_at=$a
        confirmed=$c
        if [ -n "$d" ]; then done_at=$d; break; fi
        if ! kill -0 "$BRIDGE_PID" 2>/dev/null || [ "$(awk '{ print $3 }' "/proc/$BRIDGE_PID/stat" 2>/dev/null)" = Z ]; then
            tail -n 30 "$blog" >&2
            die "$db: the bridge exited before confirming $END_LSN (confirmed: ${confirmed:-none}; log: $blog)"
        fi
        if [ "$(printf '%.0f' "$(now)")" -ge "$deadline" ]; then
            tail -n 30 "$blog" >&2
            die "$db: the bridge did not confirm $END_LSN within ${RUN_TIMEOUT}s (confirmed: ${confirmed:-none}; log: $blog)"
        fi
    done
    # Read everything before stopping the process: peak RSS, its CPU, the servers' CPU.
    local hwm pg1 rm1 m1 b1
    hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$BRIDGE_PID/status")
    _ticks "$BRIDGE_PID"
    b1=$TICKS
    pg1=$(pg_ticks); rm1=$(rmq_ticks); m1=$(machine_ticks)
    # Where PostgreSQL's share went: the slot's walsender (decoding, pgoutput) and the bridge's other
    # backends (sidecar tables, position store). Both live exactly as long as the bridge, so their
    # whole CPU time is this run's.
    local ws be ws_ticks=0 be_ticks=0 p
    ws=$(sql "$db" "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$db'")
    be=$(sql "$db" "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                    AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
    if [ -n "$ws" ]; then _ticks "$ws"; ws_ticks=$TICKS; fi
    for p in $be; do _ticks "$p"; be_ticks=$((be_ticks + TICKS)); done
    stop_pid "$BRIDGE_PID" 60 || true
    local rc=0
    wait "$BRIDGE_PID" || rc=$?
    BRIDGE_PID=
    [ "$rc" = 0 ] || log "$db: the bridge exited with code $rc after SIGTERM (log: $blog)"

    local distinct
    distinct=$(sql "$db" "SELECT count(DISTINCT record_id) FROM sync_changelog")
    [ "$distinct" = "$ROWS" ] ||
        die "$db: sync_changelog holds $distinct distinct records, expected $ROWS (log: $blog)"
    [ "$kind/$bus/$partitions" = big/rabbitmq/1 ] && keep_sidecar_rows "$db"

    [ -n "$active_at" ] || active_at=$done_at
    local seconds startup
    seconds=$(sub "$done_at" "$t0")
    startup=$(sub "$active_at" "$t0")
    RESULT_ROWS+=("$workload|$label|$ROWS|$seconds|$startup|$hwm|$(cpu_s 0 "$b1")|$(cpu_s "$pg0" "$pg1")|$(cpu_s "$rm0" "$rm1")|$(cpu_s "$m0" "$m1")|$(cpu_s 0 "$ws_ticks")|$(cpu_s 0 "$be_ticks")")
    log "$db: $label confirmed $END_LSN after ${seconds}s (slot active after ${startup}s), peak RSS ${hwm} MB"
    drop_run_objects "$db" "$db"
}

# ------------------------------------------------------------------ existing rows (snapshot)

# prepare_snapshot_db DB: fresh database whose items table already holds BIG_ROWS rows (analyzed),
# with the publication but no slot: the bridge creates the slot and reads the rows in its snapshot.
prepare_snapshot_db() {
    local db=$1
    drop_run_objects "$db" "$db"
    sql postgres "CREATE DATABASE $db" >/dev/null
    CREATED_DBS+=("$db")
    sql "$db" \
        "CREATE TABLE items (id bigint PRIMARY KEY, user_id bigint NOT NULL, title text NOT NULL, body text NOT NULL)" \
        "$BENCH_WAIT_SNAPSHOT_SQL" \
        "INSERT INTO items (id, user_id, title, body) SELECT v, v % 100, $TITLE, $BODY FROM generate_series(1, $BIG_ROWS) v" \
        "CREATE PUBLICATION $PUB FOR TABLE items" >/dev/null
    sql "$db" "VACUUM ANALYZE items" >/dev/null
    ROWS=$BIG_ROWS
}

measure_copy() {   # the read limit: PostgreSQL writing the same rows as text, to a client that drops them
    local workload=$1 db=bench_snap_copy t0 t1 pg0 pg1 rm0 rm1 m0 m1
    prepare_snapshot_db "$db"
    pg0=$(pg_ticks); rm0=$(rmq_ticks); m0=$(machine_ticks)
    t0=$(now)
    "$PGBIN/psql" -X -q -d "$db" -c "COPY (SELECT * FROM items) TO STDOUT" >/dev/null
    t1=$(now)
    pg1=$(pg_ticks); rm1=$(rmq_ticks); m1=$(machine_ticks)
    RECV_SECONDS[snapshot]=$(sub "$t1" "$t0")
    RESULT_ROWS+=("$workload|COPY (SELECT ...) TO STDOUT|$ROWS|${RECV_SECONDS[snapshot]}||n/a|n/a|$(cpu_s "$pg0" "$pg1")|$(cpu_s "$rm0" "$rm1")|$(cpu_s "$m0" "$m1")||")
    log "$db: COPY took ${RECV_SECONDS[snapshot]}s"
    drop_run_objects "$db" "$db"
}

measure_snapshot() {   # measure_snapshot WORKLOAD BUS(rabbitmq|memory): the bridge's initial snapshot of the table
    local workload=$1 bus=$2 db uri label
    case $bus in
        rabbitmq) db=bench_snap_rmq uri=$BENCH_AMQP label="bridge + RabbitMQ" ;;
        memory) db=bench_snap_mem uri= label="bridge, in-memory bus" ;;
    esac
    prepare_snapshot_db "$db"
    local blog="$TMP/bridge-$db.log" t0 pg0 rm0 m0 done_at=
    log "$db: starting the bridge ($label) on $ROWS existing rows"
    pg0=$(pg_ticks); rm0=$(rmq_ticks); m0=$(machine_ticks)
    t0=$(now)
    start_bridge "$db" "$uri" "$blog"
    local deadline
    deadline=$(awk -v t="$t0" -v n="$RUN_TIMEOUT" 'BEGIN { printf "%d", t + n }')
    while [ -z "$done_at" ]; do
        done_at=$(sql "$db" "SELECT bench_wait_snapshot(1.0, $POLL)") || die "$db: polling the snapshot failed"
        if ! kill -0 "$BRIDGE_PID" 2>/dev/null; then
            tail -n 30 "$blog" >&2
            die "$db: the bridge exited before its snapshot was done (log: $blog)"
        fi
        [ "$(printf '%.0f' "$(now)")" -lt "$deadline" ] || { tail -n 30 "$blog" >&2; die "$db: the snapshot took over ${RUN_TIMEOUT}s (log: $blog)"; }
    done
    local hwm pg1 rm1 m1 b1
    hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$BRIDGE_PID/status")
    _ticks "$BRIDGE_PID"
    b1=$TICKS
    pg1=$(pg_ticks); rm1=$(rmq_ticks); m1=$(machine_ticks)
    stop_pid "$BRIDGE_PID" 60 || true
    wait "$BRIDGE_PID" || true
    BRIDGE_PID=
    local distinct
    distinct=$(sql "$db" "SELECT count(DISTINCT record_id) FROM sync_changelog")
    [ "$distinct" = "$ROWS" ] || die "$db: sync_changelog holds $distinct distinct records, expected $ROWS (log: $blog)"
    local seconds
    seconds=$(sub "$done_at" "$t0")
    RESULT_ROWS+=("$workload|$label|$ROWS|$seconds||$hwm|$(cpu_s 0 "$b1")|$(cpu_s "$pg0" "$pg1")|$(cpu_s "$rm0" "$rm1")|$(cpu_s "$m0" "$m1")||")
    log "$db: $label read and placed $ROWS existing rows in ${seconds}s, peak RSS ${hwm} MB"
    drop_run_objects "$db" "$db"
}

# ------------------------------------------------------------------ write floor

# What the bridge writes for the big transaction, kept for the write floor: the sidecar tables' DDL
# (same columns, keys and indexes) and their rows in COPY's binary format.
SIDECAR_TABLES=(sync_changelog sync_bucket_edges sync_record_positions)
keep_sidecar_rows() {   # keep_sidecar_rows DB
    local db=$1 table args=()
    "$PGBIN/pg_dump" --schema-only --no-owner --no-privileges "${SIDECAR_TABLES[@]/#/--table=}" "$db" >"$TMP/floor-schema.sql" ||
        die "$db: pg_dump of the sidecar tables failed"
    for table in "${SIDECAR_TABLES[@]}"; do args+=("\\copy $table TO '$TMP/floor-$table.bin' WITH (FORMAT binary)"); done
    sql "$db" "${args[@]}" >/dev/null || die "$db: copying the sidecar rows out failed"
    FLOOR_ROWS=$(sql "$db" "SELECT (SELECT count(*) FROM sync_changelog) || ' changelog, ' || (SELECT count(*) FROM sync_bucket_edges) || ' edge and ' || (SELECT count(*) FROM sync_record_positions) || ' position rows'")
}

# The write floor: PostgreSQL alone writing the rows the bridge wrote for the big transaction, with
# COPY in one transaction into empty tables with the same indexes. No decoding, no bus, no planning:
# what the sidecar writes cost at the least on this machine.
measure_write_floor() {
    local db=bench_floor t0 t1 table args=() pg0 pg1 m0 m1
    [ -s "$TMP/floor-schema.sql" ] || die "no sidecar rows kept for the write floor (the big RabbitMQ run keeps them)"
    drop_run_objects "$db" "$db"
    sql postgres "CREATE DATABASE $db" >/dev/null
    CREATED_DBS+=("$db")
    PGOPTIONS='-c client_min_messages=warning' "${PSQL[@]}" -d "$db" -f "$TMP/floor-schema.sql" >/dev/null ||
        die "$db: creating the sidecar tables failed"
    args=(BEGIN)
    for table in "${SIDECAR_TABLES[@]}"; do args+=("\\copy $table FROM '$TMP/floor-$table.bin' WITH (FORMAT binary)"); done
    args+=(COMMIT)
    pg0=$(pg_ticks); m0=$(machine_ticks)
    t0=$(now)
    sql "$db" "${args[@]}" >/dev/null || die "$db: COPY of the sidecar rows failed"
    t1=$(now)
    pg1=$(pg_ticks); m1=$(machine_ticks)
    FLOOR_SECONDS=$(sub "$t1" "$t0")
    RESULT_ROWS+=("$BIG_LABEL|write floor: COPY of the bridge's sidecar rows|$BIG_ROWS|$FLOOR_SECONDS||n/a|n/a|$(cpu_s "$pg0" "$pg1")|n/a|$(cpu_s "$m0" "$m1")||")
    log "$db: COPY of $FLOOR_ROWS took ${FLOOR_SECONDS}s"
    drop_run_objects "$db" "$db"
}

# ------------------------------------------------------------------ live latency

# Commit to changelog row at a fixed rate of one-row transactions with the bridge running: pgbench
# -R paces LATENCY_RATE transactions/s for LATENCY_SECONDS. Each row stamps clock_timestamp() when
# inserted (it commits right after); a trigger the benchmark adds to sync_changelog stamps each
# changelog row as the bridge inserts it (its transaction commits right after).
LATENCY_RATE=1000
LATENCY_SECONDS=$(awk -v s="$SCALE" 'BEGIN { n = int(20 * s + 0.5); print (n < 4 ? 4 : n) }')
SUSTAINED_CLIENTS=4
SUSTAINED_SECONDS=$(awk -v s="$SCALE" 'BEGIN { n = int(60 * s + 0.5); print (n < 5 ? 5 : n) }')
LATENCY_WARMUP=2
measure_latency() {
    local db=bench_latency blog="$TMP/bridge-bench_latency.log" out a d c lsn rows
    prepare_db "$db"
    sql "$db" "ALTER TABLE items ADD COLUMN written_at timestamptz NOT NULL DEFAULT clock_timestamp()" >/dev/null
    start_bridge "$db" "$BENCH_AMQP" "$blog"
    # Started once the slot is active: the sidecar tables exist then.
    out=$(sql "$db" "SELECT * FROM bench_wait('$db', 'FFFFFFFF/FFFFFFFF', 60, $POLL)")
    IFS='|' read -r a d c <<<"$out"
    [ -n "$a" ] || { tail -n 30 "$blog" >&2; die "$db: the bridge did not take the slot within 60 s (log: $blog)"; }
    sql "$db" "CREATE FUNCTION bench_stamp() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN NEW.created_at := clock_timestamp(); RETURN NEW; END \$\$" \
        "CREATE TRIGGER bench_stamp BEFORE INSERT ON sync_changelog FOR EACH ROW EXECUTE FUNCTION bench_stamp()" >/dev/null
    printf '%s\n' "INSERT INTO items (id, user_id, title, body) SELECT v, v % 100, $TITLE, $BODY FROM (SELECT nextval('items_id_seq') AS v) s;" >"$TMP/latency.sql"
    log "$db: $LATENCY_RATE one-row transactions/s for ${LATENCY_SECONDS}s with the bridge running"
    timeout "$RUN_TIMEOUT" "$PGBIN/pgbench" -n -f "$TMP/latency.sql" -R "$LATENCY_RATE" -T "$LATENCY_SECONDS" -c 2 -j 2 "$db" \
        >"$TMP/pgbench-$db.log" 2>&1 || { tail -n 20 "$TMP/pgbench-$db.log" >&2; die "pgbench failed on $db"; }
    lsn=$(sql "$db" "SELECT pg_current_wal_insert_lsn()")
    out=$(sql "$db" "SELECT * FROM bench_wait('$db', '$lsn', $RUN_TIMEOUT, $POLL)")
    IFS='|' read -r a d c <<<"$out"
    [ -n "$d" ] || die "$db: the bridge did not confirm $lsn (log: $blog)"
    stop_pid "$BRIDGE_PID" 60 || true
    wait "$BRIDGE_PID" || true
    BRIDGE_PID=
    rows=$(sql "$db" "SELECT count(*) FROM items")
    # The first $LATENCY_WARMUP s are left out: the freshly started process is still compiling its hot paths.
    out=$(sql "$db" "WITH l AS (SELECT extract(epoch FROM c.created_at - i.written_at) * 1000 AS ms
                               FROM sync_changelog c JOIN items i ON i.id::text = c.record_id
                               WHERE i.written_at >= (SELECT min(written_at) FROM items) + interval '$LATENCY_WARMUP s'),
                          span AS (SELECT count(*) / extract(epoch FROM max(written_at) - min(written_at)) AS rate FROM items)
                     SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
                            round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 1),
                            round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
                            round(max(ms)::numeric, 1), (SELECT round(rate::numeric) FROM span)
                     FROM l")
    IFS='|' read -r LAT_N LAT_P50 LAT_P90 LAT_P99 LAT_MAX LAT_RATE <<<"$out"
    [ "$(sql "$db" "SELECT count(*) FROM sync_changelog")" = "$rows" ] || die "$db: the changelog does not hold one row per inserted row ($rows)"
    log "$db: commit -> changelog p50 ${LAT_P50} ms, p90 ${LAT_P90} ms, p99 ${LAT_P99} ms, max ${LAT_MAX} ms over $rows rows at $LAT_RATE tx/s"
    drop_run_objects "$db" "$db"
}

# ------------------------------------------------------------------ sustained load

# pgbench with SUSTAINED_CLIENTS clients at full speed for SUSTAINED_SECONDS while the bridge runs:
# the rate the writers held, the lag (bytes and seconds behind the last commit) sampled every
# second, and how long after the writers stopped the slot was acknowledged up to their last commit.
measure_sustained() {
    local db=bench_sustained blog="$TMP/bridge-bench_sustained.log" out a d c lsn t_end t_done samples="$TMP/sustained-lag.txt"
    prepare_db "$db"
    start_bridge "$db" "$BENCH_AMQP" "$blog"
    out=$(sql "$db" "SELECT * FROM bench_wait('$db', 'FFFFFFFF/FFFFFFFF', 60, $POLL)")
    IFS='|' read -r a d c <<<"$out"
    [ -n "$a" ] || { tail -n 30 "$blog" >&2; die "$db: the bridge did not take the slot within 60 s (log: $blog)"; }
    printf '%s\n' "INSERT INTO items (id, user_id, title, body) SELECT v, v % 100, $TITLE, $BODY FROM (SELECT nextval('items_id_seq') AS v) s;" >"$TMP/sustained.sql"
    log "$db: pgbench, $SUSTAINED_CLIENTS clients at full speed for ${SUSTAINED_SECONDS}s with the bridge running"
    : >"$samples"
    ( while sleep 1; do sql "$db" "SELECT round((pg_current_wal_insert_lsn() - confirmed_flush_lsn) / 1048576.0, 1) FROM pg_replication_slots WHERE slot_name = '$db'" >>"$samples" 2>/dev/null || true; done ) &
    local sampler=$!
    timeout "$RUN_TIMEOUT" "$PGBIN/pgbench" -n -f "$TMP/sustained.sql" -T "$SUSTAINED_SECONDS" -c "$SUSTAINED_CLIENTS" -j 2 "$db" \
        >"$TMP/pgbench-$db.log" 2>&1 || { kill "$sampler"; tail -n 20 "$TMP/pgbench-$db.log" >&2; die "pgbench failed on $db"; }
    t_end=$(now)
    lsn=$(sql "$db" "SELECT pg_current_wal_insert_lsn()")
    out=$(sql "$db" "SELECT * FROM bench_wait('$db', '$lsn', $RUN_TIMEOUT, $POLL)")
    IFS='|' read -r a d c <<<"$out"
    t_done=$(now)
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    [ -n "$d" ] || die "$db: the bridge did not confirm $lsn (log: $blog)"
    SUS_HWM=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$BRIDGE_PID/status")
    stop_pid "$BRIDGE_PID" 60 || true
    wait "$BRIDGE_PID" || true
    BRIDGE_PID=
    SUS_ROWS=$(sql "$db" "SELECT count(*) FROM items")
    [ "$(sql "$db" "SELECT count(*) FROM sync_changelog")" = "$SUS_ROWS" ] || die "$db: the changelog does not hold one row per inserted row ($SUS_ROWS)"
    SUS_RATE=$(awk -v n="$SUS_ROWS" -v s="$SUSTAINED_SECONDS" 'BEGIN { printf "%.0f", n / s }')
    SUS_DRAIN=$(sub "$t_done" "$t_end")
    SUS_MAX_LAG=$(sort -g "$samples" | tail -n 1)
    log "$db: $SUS_ROWS rows at $SUS_RATE tx/s; lag at most ${SUS_MAX_LAG} MB; acknowledged ${SUS_DRAIN}s after the writers stopped; peak RSS ${SUS_HWM} MB"
    drop_run_objects "$db" "$db"
}

# ------------------------------------------------------------------ bytes on the wire

# What a subscriber receives per row: a queue bound to every table's change sets fills during a
# small extra run (not a measured one: a filling queue costs the broker work), then its message
# bodies are counted. Sets WIRE_BYTES_PER_ROW and WIRE_MESSAGES.
WIRE_EXCHANGE=synchro.change-set.v2
# Contract v1 (MassTransit's indented JSON envelope, every column's name, type and kind on every
# row) measured on this workload by this script at commit 1686180, the last one publishing v1.
WIRE_V1_BYTES_PER_ROW=942
measure_wire_bytes() {
    local db=bench_wire api="${SYNCHRO_RABBIT_MGMT_URL}api" queue=bench_wire_subscriber rows=2000 out
    prepare_db "$db"
    BIG_ROWS=$rows write_workload "$db" big
    # The exchange as MassTransit declares it, and a queue bound to every routing key.
    curl -sf -u "$AMQP_USERINFO" -X PUT -H 'content-type: application/json' -d '{"type":"topic","durable":true}' \
        "$api/exchanges/$VHOST/$WIRE_EXCHANGE" >/dev/null || die "cannot declare exchange $WIRE_EXCHANGE"
    curl -sf -u "$AMQP_USERINFO" -X PUT -H 'content-type: application/json' -d '{"durable":false,"auto_delete":false}' \
        "$api/queues/$VHOST/$queue" >/dev/null || die "cannot declare queue $queue"
    curl -sf -u "$AMQP_USERINFO" -X POST -H 'content-type: application/json' -d '{"routing_key":"#"}' \
        "$api/bindings/$VHOST/e/$WIRE_EXCHANGE/q/$queue" >/dev/null || die "cannot bind queue $queue"
    start_bridge "$db" "$BENCH_AMQP" "$TMP/bridge-$db.log"
    out=$(sql "$db" "SELECT done_at FROM bench_wait('$db', '$END_LSN', $RUN_TIMEOUT, $POLL)")
    stop_pid "$BRIDGE_PID" 60 || true
    wait "$BRIDGE_PID" || true
    BRIDGE_PID=
    [ -n "$out" ] || die "$db: the bridge did not confirm $END_LSN (log: $TMP/bridge-$db.log)"
    # The management API refreshes queue statistics every few seconds.
    local deadline=$((SECONDS + 30)) stats messages=0 bytes=0
    while :; do
        stats=$(curl -sf -u "$AMQP_USERINFO" "$api/queues/$VHOST/$queue") || die "cannot read queue $queue"
        messages=$(sed -nE 's/.*"messages":([0-9]+).*/\1/p' <<<"$stats")
        bytes=$(sed -nE 's/.*"message_bytes":([0-9]+).*/\1/p' <<<"$stats")
        [ "${messages:-0}" -gt 0 ] && [ "${bytes:-0}" -gt 0 ] && break
        [ "$SECONDS" -lt "$deadline" ] || die "queue $queue still shows no messages"
        sleep 0.5
    done
    curl -sf -u "$AMQP_USERINFO" -X DELETE "$api/queues/$VHOST/$queue" >/dev/null || true
    WIRE_MESSAGES=$messages
    WIRE_BYTES_PER_ROW=$(awk -v b="$bytes" -v r="$rows" 'BEGIN { printf "%.0f", b / r }')
    WIRE_ROWS=$rows
    log "$db: subscribers receive $WIRE_BYTES_PER_ROW bytes per row ($bytes bytes in $messages change sets for $rows rows)"
    drop_run_objects "$db" "$db"
}

# ------------------------------------------------------------------ run

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
T_START=$SECONDS
BIG_LABEL="one big transaction"
SMALL_LABEL="many small transactions"
SNAP_LABEL="snapshot of existing rows"

measure_recvlogical "$BIG_LABEL" big
measure_bridge "$BIG_LABEL" big rabbitmq
measure_bridge "$BIG_LABEL" big memory
measure_write_floor
measure_recvlogical "$SMALL_LABEL" small
measure_bridge "$SMALL_LABEL" small rabbitmq
measure_bridge "$SMALL_LABEL" small memory
measure_bridge "$BIG_LABEL" big rabbitmq 2
measure_bridge "$BIG_LABEL" big rabbitmq 4
measure_bridge "$SMALL_LABEL" small rabbitmq 2
measure_bridge "$SMALL_LABEL" small rabbitmq 4
measure_copy "$SNAP_LABEL"
measure_snapshot "$SNAP_LABEL" rabbitmq
measure_snapshot "$SNAP_LABEL" memory
measure_latency
measure_sustained
measure_wire_bytes

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
TOTAL_S=$((SECONDS - T_START))

# ------------------------------------------------------------------ report

MEM_GB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
PG_VERSION=$(sql postgres "SHOW server_version")
RMQ_VERSION=$(curl -sf -u "$AMQP_USERINFO" "${SYNCHRO_RABBIT_MGMT_URL}api/overview" |
    sed -nE 's/.*"rabbitmq_version":"([^"]*)".*/\1/p' || true)
DOTNET_VERSION=$(dotnet --version 2>/dev/null || echo unknown)

# Busy CPU of the whole machine minus what the consumer, PostgreSQL and RabbitMQ used.
other_cpu() {
    local m=$1 x
    shift
    for x in "$@"; do [ "$x" = n/a ] && { echo n/a; return; }; done
    awk -v m="$m" -v a="$1" -v b="$2" -v c="$3" 'BEGIN { o = m - a - b - c; if (o < 0) o = 0; printf "%.1f", o }'
}

# A warning when other processes took a noticeable share of the machine during any measured run.
contention_note() {
    local r workload consumer rows seconds startup rss cpu_c cpu_pg cpu_rmq cpu_m cpu_ws cpu_be other worst=0 share
    for r in "${RESULT_ROWS[@]}"; do
        IFS='|' read -r workload consumer rows seconds startup rss cpu_c cpu_pg cpu_rmq cpu_m cpu_ws cpu_be <<<"$r"
        other=$(other_cpu "$cpu_m" "$cpu_c" "$cpu_pg" "$cpu_rmq")
        [ "$other" = n/a ] && continue
        # Below a second, the 10 ms accounting ticks make the share meaningless.
        awk -v s="$seconds" 'BEGIN { exit !(s < 1) }' && continue
        share=$(awk -v o="$other" -v s="$seconds" -v n="$(nproc)" 'BEGIN { x = 100 * o / (s * n); if (x > 100) x = 100; printf "%d", x }')
        [ "$share" -gt "$worst" ] && worst=$share
    done
    if [ "$worst" -ge 15 ]; then
        echo "**Warning:** other processes used up to $worst % of the machine's CPU during a measured run (column"
        echo "*other processes* below); those runs had less CPU than on a quiet machine. Run again when it is idle."
    else
        echo "Other processes used at most $worst % of the machine's CPU during any measured run of a second or more."
    fi
}

throughput_table() {
    echo "| workload | consumer | rows | seconds | rows/s | × reference time | start-up s | rows/s excl. start-up | peak RSS MB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    local r workload consumer rows seconds startup rss rest kind ratio excl
    for r in "${RESULT_ROWS[@]}"; do
        IFS='|' read -r workload consumer rows seconds startup rss rest <<<"$r"
        kind=small
        [ "$workload" = "$BIG_LABEL" ] && kind=big
        [ "$workload" = "$SNAP_LABEL" ] && kind=snapshot
        ratio=$(awk -v s="$seconds" -v r="${RECV_SECONDS[$kind]}" 'BEGIN { if (r > 0) printf "%.1f×", s / r; else print "n/a" }')
        if [ -n "$startup" ]; then
            excl=$(group "$(rate "$rows" "$(sub "$seconds" "$startup")")")
            startup=$(fmt2 "$startup")
        else
            startup=—
            excl=—
        fi
        echo "| $workload | $consumer | $(group "$rows") | $(fmt2 "$seconds") | $(group "$(rate "$rows" "$seconds")") | $ratio | $startup | $excl | $rss |"
    done
}

cpu_table() {
    echo "| workload | consumer | seconds | consumer process | PostgreSQL | … walsender | … bridge's backends | RabbitMQ | other processes | machine busy |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    local r workload consumer rows seconds startup rss cpu_c cpu_pg cpu_rmq cpu_m cpu_ws cpu_be busy
    for r in "${RESULT_ROWS[@]}"; do
        IFS='|' read -r workload consumer rows seconds startup rss cpu_c cpu_pg cpu_rmq cpu_m cpu_ws cpu_be <<<"$r"
        busy=$(awk -v m="$cpu_m" -v s="$seconds" -v n="$(nproc)" 'BEGIN { b = 100 * m / (s * n); if (b > 100) b = 100; printf "%d %%", b }')
        echo "| $workload | $consumer | $(fmt2 "$seconds") | $cpu_c | $cpu_pg | ${cpu_ws:-—} | ${cpu_be:-—} | $cpu_rmq | $(other_cpu "$cpu_m" "$cpu_c" "$cpu_pg" "$cpu_rmq") | $busy |"
    done
}

REPORT=$(cat <<EOF
# Synchro Bridge throughput: bridge vs pg_recvlogical

Run $STARTED, BENCH_SCALE=$SCALE, took ${TOTAL_S} s in all. Bridge built from commit $COMMIT.

Machine: $(nproc) CPUs ($CPU_MODEL), $MEM_GB GB memory, Linux $(uname -r); load average
(1/5/15 min) $LOAD_BEFORE before, $LOAD_AFTER after. PostgreSQL $PG_VERSION (fsync and
synchronous_commit off, see scripts/servers.sh), RabbitMQ ${RMQ_VERSION:-unknown}, .NET SDK $DOTNET_VERSION.
Everything (PostgreSQL, RabbitMQ, the consumer) runs on this one machine.

Workloads, each written into a fresh database with nothing reading the slot, then read by one consumer:

- **$BIG_LABEL**: $(group "$BIG_ROWS") rows inserted by one \`INSERT ... SELECT FROM generate_series\`
  (written in $(fmt2 "${WRITE_TIMES[big]}") s).
- **$SMALL_LABEL**: $(group "$SMALL_ROWS") single-row INSERT transactions from pgbench, $CLIENTS clients
  (written in $(fmt2 "${WRITE_TIMES[small]}") s).
- **$SNAP_LABEL**: $(group "$BIG_ROWS") rows already in the table (vacuumed and analyzed) when the
  bridge starts without a slot: it creates the slot, reads the rows in the snapshot the slot exports
  and places them (\`Snapshot:Mode = Initial\`). Its reference is \`COPY (SELECT * FROM items) TO STDOUT\`
  of the same rows to a psql that drops them: what PostgreSQL alone takes to read and send them.

Table \`items (id bigint PRIMARY KEY, user_id bigint, title text, body text)\`, user_id = id % 100,
title 20 and body 100 characters. The bridge assigns each row to bucket \`user:<user_id>\`.

$(throughput_table)

On the wire, a subscriber bound to every table receives **$WIRE_BYTES_PER_ROW bytes per row**: message bodies of
the change sets (contract v2: raw JSON, columns named once per set) of a $WIRE_ROWS-row transaction of this
table, $WIRE_MESSAGES messages, counted by RabbitMQ (\`message_bytes\` of a queue bound with \`#\` to
\`$WIRE_EXCHANGE\`; an extra run, not timed). Before contract v2 the same rows took **$WIRE_V1_BYTES_PER_ROW bytes per
row** (contract v1 in MassTransit's indented envelope, measured by this script at commit 1686180).

The **write floor** is PostgreSQL alone writing what the bridge wrote for the big transaction
($FLOOR_ROWS, kept from the RabbitMQ run) with \`COPY ... FROM\` (binary) in one transaction into
empty tables with the same columns, keys and indexes (\`pg_dump --schema-only\` of them): no
decoding, no bus, no planning. Together with pg_recvlogical (what PostgreSQL takes to decode and
send the stream) it bounds what the bridge can reach on this machine.

Live latency, bridge + RabbitMQ running while pgbench writes $LATENCY_RATE one-row transactions/s for
${LATENCY_SECONDS} s (2 clients, \`-R\`; the first $LATENCY_WARMUP s are left out as warm-up): from each row's insert (\`clock_timestamp()\`, its transaction
commits right after) to its changelog row's insert (stamped by a trigger the benchmark adds; the
bridge's transaction commits right after):

| rows | rate held (tx/s) | p50 ms | p90 ms | p99 ms | max ms |
|---:|---:|---:|---:|---:|---:|
| $(group "$LAT_N") | $(group "$LAT_RATE") | $LAT_P50 | $LAT_P90 | $LAT_P99 | $LAT_MAX |

Sustained load, bridge + RabbitMQ running while pgbench writes one-row transactions with
$SUSTAINED_CLIENTS clients at full speed for $SUSTAINED_SECONDS s (lag sampled every second as WAL written but
not yet acknowledged; *drained* = from the writers' stop until the slot was acknowledged up to
their last commit):

| rows | rate held (tx/s) | largest lag MB | drained after s | peak RSS MB |
|---:|---:|---:|---:|---:|
| $(group "$SUS_ROWS") | $(group "$SUS_RATE") | $SUS_MAX_LAG | $(fmt2 "$SUS_DRAIN") | $SUS_HWM |

- **seconds**: pg_recvlogical from start to exit at the end LSN of the workload's last commit; the
  bridge from process start until the slot's \`confirmed_flush_lsn\` reached that LSN, i.e. until every
  row was written to \`sync_changelog\` and acknowledged (checked: distinct record ids = rows).
- **× reference time**: seconds divided by the reference's seconds for the same workload
  (pg_recvlogical for the stream, COPY for the snapshot).
- For the snapshot, **seconds** run from process start until every \`sync_snapshots\` job is done,
  i.e. every row was placed and confirmed (checked: distinct record ids = rows).
- **start-up s**: process start until the slot was \`active\` (.NET start, start-up checks, sidecar
  tables, bus); **rows/s excl. start-up** times from then on.
- **peak RSS**: \`VmHWM\` of the bridge process (\`/usr/bin/time\` for pg_recvlogical).

CPU seconds used during the measured interval (with $(nproc) CPUs, at most $(nproc) CPU-seconds fit into a
second of wall time; *machine busy* is the share of that used by anything):

$(cpu_table)

- **PostgreSQL**: the whole server (every backend, anything it served meanwhile); of that,
  **walsender** is the slot's decoding and pgoutput, **bridge's backends** its other connections
  (sidecar writes, position store). RabbitMQ is the whole node (idle during pg_recvlogical and the
  in-memory runs). **other processes**: the machine's busy time minus consumer, PostgreSQL and
  RabbitMQ (this script's polling and whatever else ran).

$(contention_note)
EOF
)

printf '%s\n' "$REPORT" >"$RESULTS/latest.md"
printf '%s\n' "$REPORT"
log "written to ${RESULTS#"$REPO"/}/latest.md"
