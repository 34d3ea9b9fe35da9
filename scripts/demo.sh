#!/usr/bin/env bash
# The main job, end to end: start PostgreSQL and RabbitMQ (installing RabbitMQ if needed), build the
# bridge, create a demo database, run the bridge on it and drive a workload while showing the changes
# flow. Meanwhile a second service, the sample samples/Synchro.Samples.TodoReadModel, keeps a copy of
# todos in its own database from the bus alone; the demo ends checking that copy against the table.
# Extra arguments go to `synchro-bridge demo` (for example --seconds 30).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

eval "$(scripts/servers.sh up)"
dotnet build src/Synchro.Bridge -c Release -nologo -v quiet -clp:ErrorsOnly
dotnet build samples/Synchro.Samples.TodoReadModel -c Release -nologo -v quiet -clp:ErrorsOnly

read_model=synchro_demo_read_model
[ -n "$(psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$read_model'")" ] || createdb "$read_model"
log=.servers/todo-read-model.log
ready=.servers/todo-read-model.ready
rm -f "$ready"
# --reset: the demo database is new each run, so the copy starts empty and old change sets are purged.
ReadModel__Postgres="${SYNCHRO_TEST_PG/Database=postgres/Database=$read_model}" ReadModel__RabbitMq="$SYNCHRO_TEST_AMQP" ReadModel__ReadyFile="$ready" \
    dotnet samples/Synchro.Samples.TodoReadModel/bin/Release/net10.0/Synchro.Samples.TodoReadModel.dll --reset >"$log" 2>&1 &
service=$!
trap 'kill -TERM "$service" 2>/dev/null && wait "$service" || true' EXIT
trap 'exit 130' INT TERM
# Its queue must be bound before the bridge publishes its first change set.
for _ in $(seq 300); do
    [ -f "$ready" ] && break
    kill -0 "$service" 2>/dev/null || { cat "$log" >&2; echo "demo: the read model service stopped (log: $log)" >&2; exit 1; }
    sleep 0.2
done
[ -f "$ready" ] || { echo "demo: the read model service did not start within 60 s (log: $log)" >&2; exit 1; }
echo "demo: read model service running (pid $service, log $log), keeping todo_read_model in database $read_model"

dotnet src/Synchro.Bridge/bin/Release/net10.0/synchro-bridge.dll demo "$@"

# Each side as a count and a digest of its rows, all columns, in id order.
rows() { psql -d "$1" -tAc "SELECT to_char(count(*), 'FM999,999,990') || ' ' || md5(coalesce(string_agg(t::text, E'\n' ORDER BY t.id), '')) FROM (SELECT id, user_id, title, done, deleted_at, updated_at FROM $2) t"; }
for _ in $(seq 60); do
    source_rows=$(rows synchro_demo todos) copy_rows=$(rows "$read_model" todo_read_model)
    [ "$source_rows" = "$copy_rows" ] && break
    sleep 0.5
done
if [ "$source_rows" = "$copy_rows" ]; then
    echo "demo: read model: ${copy_rows%% *} todos in $read_model, kept by a second service from the bus, match the source table"
else
    echo "demo: read model FAILED: ${copy_rows%% *} todos in $read_model differ from the ${source_rows%% *} in synchro_demo after 30 s (log: $log)" >&2
    exit 1
fi
