#!/bin/sh
# One-shot Temporal setup for the compose stack (service `temporal-setup`,
# image temporalio/admin-tools). Idempotent: safe to run on every `up`.
#   - the namespace exists, with an explicit retention (closed workflow runs are
#     kept only that long; the ClickHouse ledger is the durable record),
#   - the custom search attributes the app sets exist (Temporal Web UI filters).
set -eu

ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-168h}"
# name:type pairs
SEARCH_ATTRIBUTES="DataSource:Keyword DataSourceState:Keyword"

export TEMPORAL_ADDRESS="$ADDRESS"

retry() { # retry <attempts> <command...>
  n="$1"; shift
  i=1
  until "$@"; do
    if [ "$i" -ge "$n" ]; then
      echo "temporal-setup: giving up after $n attempts: $*" >&2
      return 1
    fi
    i=$((i + 1))
    sleep 2
  done
}

cluster_serving() {
  temporal operator cluster health --address "$ADDRESS" 2>/dev/null | grep -q SERVING
}

echo "temporal-setup: waiting for $ADDRESS"
retry 90 cluster_serving

if temporal operator namespace describe --address "$ADDRESS" "$NAMESPACE" >/dev/null 2>&1; then
  echo "temporal-setup: namespace $NAMESPACE exists; setting retention $RETENTION"
  retry 10 temporal operator namespace update --address "$ADDRESS" --retention "$RETENTION" "$NAMESPACE"
else
  echo "temporal-setup: creating namespace $NAMESPACE (retention $RETENTION)"
  # A concurrent creator (auto-setup) may win the race: then update instead.
  temporal operator namespace create --address "$ADDRESS" --retention "$RETENTION" "$NAMESPACE" \
    || retry 10 temporal operator namespace update --address "$ADDRESS" --retention "$RETENTION" "$NAMESPACE"
fi

# A freshly created namespace can take a moment to reach the frontend's cache.
retry 30 temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null

has_attribute() { # has_attribute <name> <type>: exists with exactly that type
  temporal operator search-attribute list --color never --address "$ADDRESS" --namespace "$NAMESPACE" 2>/dev/null \
    | grep -Eq "^[[:space:]]*$1[[:space:]]+$2[[:space:]]*\$"
}

ensure_attribute() { # ensure_attribute <name> <type>
  if has_attribute "$1" "$2"; then
    echo "temporal-setup: search attribute $1 already exists"
    return 0
  fi
  # "already exists" from a concurrent run is fine: re-check before failing.
  # The same name with another type is not, and fails the setup.
  temporal operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" \
    --name "$1" --type "$2" || has_attribute "$1" "$2"
}

for pair in $SEARCH_ATTRIBUTES; do
  retry 10 ensure_attribute "${pair%%:*}" "${pair#*:}"
done

echo "temporal-setup: done"
temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE"
