#!/usr/bin/env bash
# Pack the two NuGet packages subscribers use (Synchro.Contracts, Synchro.Subscriptions) from the
# Release build and check what a user gets: the assembly, its XML docs, the package README, and the
# dependencies the kit needs. Run after `dotnet build Synchro.sln -c Release`.
#
#   scripts/check-packages.sh [OUT]   packages go to OUT (default .build/packages)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/.build/packages}
rm -rf "$out"
for project in Synchro.Contracts Synchro.Subscriptions; do
    dotnet pack "$repo/src/$project" -c Release --no-build -nologo -v quiet -o "$out" >/dev/null
done

status=0
check() { # package, file inside it
    # Listed first, then searched: with pipefail, grep -q leaving early would fail unzip with SIGPIPE.
    local listing
    listing=$(unzip -l "$out/$1")
    if ! grep -q " $2\$" <<<"$listing"; then
        echo "check-packages: $1 lacks $2" >&2
        status=1
    fi
}
for package in Synchro.Contracts Synchro.Subscriptions; do
    nupkg=$package.2.0.0.nupkg
    if [ ! -f "$out/$nupkg" ]; then
        echo "check-packages: dotnet pack did not produce $nupkg" >&2
        exit 1
    fi
    check "$nupkg" README.md
    check "$nupkg" "lib/net10.0/$package.dll"
    check "$nupkg" "lib/net10.0/$package.xml"
done
nuspec=$(unzip -p "$out/Synchro.Subscriptions.2.0.0.nupkg" Synchro.Subscriptions.nuspec)
for dependency in Synchro.Contracts MassTransit.RabbitMQ; do
    grep -q "id=\"$dependency\"" <<<"$nuspec" || { echo "check-packages: Synchro.Subscriptions does not depend on $dependency" >&2; status=1; }
done
[ $status -eq 0 ] && echo "packages: Synchro.Contracts and Synchro.Subscriptions 2.0.0 in $out"
exit $status
