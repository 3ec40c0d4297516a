#!/usr/bin/env bash
# Pins this module to one Kubernetes release: k8s.io/kubernetes at vX.Y.Z and every
# staging module it replaces locally (its go.mod lists them as `=> ./staging/...`) at
# v0.Y.Z. Deriving the list keeps it right when a release adds a staging module.
set -euo pipefail
cd "$(dirname "$0")"
version=${1:?usage: pin.sh v1.37.2}
staging=v0${version#v1}
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
{
  echo "module modelplane.test/k8s"
  echo
  echo "go $(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/').0"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  sed -nE 's#^\s+(k8s\.io/[a-z0-9-]+) => \./staging/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
  echo ")"
} > go.mod
rm -f go.sum
go mod tidy
