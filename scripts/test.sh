#!/usr/bin/env bash
# Every test: starts PostgreSQL and RabbitMQ on loopback (installing RabbitMQ if needed), installs
# Debian's python3-pika for the Python example subscriber, builds, runs the unit tests and the
# integration tests against Debian's PostgreSQL 15 (all but those tagged for another version),
# then one leg per other version, each on its own server from npm (scripts/servers.sh up --pg N,
# stopped after its leg): the cross-version subset (trait Versions=all, Versions=16+ from 16 and
# Versions=17+ from 17)
# on PostgreSQL 14, 16, 17 and 18, and the refusal of 13 (Versions=13). Then it checks
# docker-compose.yml and packs the subscriber packages. Prints a line per PostgreSQL leg and the
# passed/failed totals of all of them.
# Integration tests fail (never skip) when a server is unreachable; a leg whose filter matches no
# test yet counts as 0 passed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

eval "$(scripts/servers.sh up)"
scripts/servers.sh ensure-packages python3 python3-pika
# Debian's interpreter: one earlier on PATH (pyenv, a virtualenv) does not see Debian's packages.
/usr/bin/python3 -c 'import pika' || { echo "test.sh: /usr/bin/python3 cannot import pika" >&2; exit 1; }
dotnet build Synchro.sln -c Release -nologo -clp:ErrorsOnly

passed=0 failed=0 status=0
# run_tests PROJECT [dotnet test arguments...]: adds the run's counts to passed/failed and leaves
# them in LEG_PASSED/LEG_FAILED.
run_tests() {
    local project=$1 log
    shift
    LEG_PASSED=0 LEG_FAILED=0
    log=$(mktemp)
    dotnet test "$project" -c Release --no-build -nologo "$@" 2>&1 | tee "$log" || status=1
    # dotnet test closes with "Passed!  - Failed: F, Passed: P, Skipped: S, Total: T".
    local line
    line=$(grep -E '(Passed|Failed)! +- Failed: ' "$log" | tail -n1 || true)
    if [ -n "$line" ]; then
        LEG_PASSED=$(sed -E 's/.*Passed: +([0-9]+).*/\1/' <<<"$line")
        LEG_FAILED=$(sed -E 's/.*Failed: +([0-9]+),.*/\1/' <<<"$line")
        passed=$((passed + LEG_PASSED))
        failed=$((failed + LEG_FAILED))
    elif grep -q 'No test matches the given testcase filter' "$log"; then
        echo "test.sh: $project: no test matches $*; counted as 0 passed" >&2
    else
        echo "test.sh: $project printed no result line" >&2
        status=1
    fi
    rm -f "$log"
}

run_tests tests/Synchro.Bridge.Tests
# Every integration test on PostgreSQL 15, but those that need another version.
run_tests tests/Synchro.Bridge.IntegrationTests --filter 'Versions!=13&Versions!=16+&Versions!=17+'
legs=("PostgreSQL 15: $LEG_PASSED passed, $LEG_FAILED failed")

# The cross-version subset on each other version, one server at a time.
for version in 14 16 17 18 13; do
    case $version in
        13) filter='Versions=13' ;;
        14) filter='Versions=all' ;;
        16) filter='Versions=all|Versions=16+' ;;
        *) filter='Versions=all|Versions=16+|Versions=17+' ;;
    esac
    if ! exports=$(scripts/servers.sh up --pg "$version"); then
        legs+=("PostgreSQL $version: did not start")
        status=1
        continue
    fi
    eval "$exports"
    run_tests tests/Synchro.Bridge.IntegrationTests --filter "$filter"
    legs+=("PostgreSQL $version: $LEG_PASSED passed, $LEG_FAILED failed")
    # Free its memory: the version's cluster and any primary/standby pair a test left behind.
    scripts/servers.sh stop --pg "$version" || status=1
    scripts/servers.sh pair --pg "$version" down || status=1
done
eval "$(scripts/servers.sh env)"
printf '%s\n' "${legs[@]}"
scripts/check-compose.sh || status=1
scripts/check-packages.sh || status=1

echo "$passed passed, $failed failed"
exit $status
