#!/usr/bin/env bash
# The main job, end to end: start PostgreSQL and RabbitMQ (installing RabbitMQ if needed), build the
# bridge, create a demo database, run the bridge on it and drive a workload while showing the changes
# flow. Extra arguments go to `synchro-bridge demo` (for example --seconds 30).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

eval "$(scripts/servers.sh up)"
dotnet build src/Synchro.Bridge -c Release -nologo -v quiet -clp:ErrorsOnly
exec dotnet src/Synchro.Bridge/bin/Release/net10.0/synchro-bridge.dll demo "$@"
