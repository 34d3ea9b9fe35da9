#!/usr/bin/env bash
# Every test: starts PostgreSQL and RabbitMQ on loopback (installing RabbitMQ if needed), installs
# Debian's python3-pika for the Python example subscriber, builds, runs the unit tests, the
# integration tests against those servers, checks docker-compose.yml and packs the subscriber packages.
# Integration tests fail (never skip) when a server is unreachable.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

eval "$(scripts/servers.sh up)"
scripts/servers.sh ensure-packages python3 python3-pika
# Debian's interpreter: one earlier on PATH (pyenv, a virtualenv) does not see Debian's packages.
/usr/bin/python3 -c 'import pika' || { echo "test.sh: /usr/bin/python3 cannot import pika" >&2; exit 1; }
dotnet build Synchro.sln -c Release -nologo -clp:ErrorsOnly

passed=0 failed=0 status=0
run_tests() {
    local project=$1 log
    log=$(mktemp)
    dotnet test "$project" -c Release --no-build -nologo 2>&1 | tee "$log" || status=1
    # dotnet test closes with "Passed!  - Failed: F, Passed: P, Skipped: S, Total: T".
    local line
    line=$(grep -E '(Passed|Failed)! +- Failed: ' "$log" | tail -n1 || true)
    if [ -z "$line" ]; then
        echo "test.sh: $project printed no result line" >&2
        status=1
    else
        passed=$((passed + $(sed -E 's/.*Passed: +([0-9]+).*/\1/' <<<"$line")))
        failed=$((failed + $(sed -E 's/.*Failed: +([0-9]+),.*/\1/' <<<"$line")))
    fi
    rm -f "$log"
}

run_tests tests/Synchro.Bridge.Tests
run_tests tests/Synchro.Bridge.IntegrationTests
scripts/check-compose.sh || status=1
scripts/check-packages.sh || status=1

echo "$passed passed, $failed failed"
exit $status
