#!/usr/bin/env sh
# Posts the sample records to a running fimlake server, through both ingestion endpoints.
#   ./examples/post-records.sh [http://127.0.0.1:8080]
set -eu
server=${1:-http://127.0.0.1:8080}
dir=$(dirname "$0")/records

# Native endpoint: a JSON array (NDJSON works too); answers {"accepted": N}.
for table in ConfigurationChange ConfigurationData; do
  curl -sS --fail-with-body -X POST "$server/v1/tables/$table/records" \
    -H 'Content-Type: application/json' --data-binary "@$dir/$table.json"
  echo
done

# Azure Logs Ingestion API shape, gzip-compressed, as the Azure SDKs send it; answers 204.
gzip -c "$dir/Heartbeat.json" | curl -sS --fail-with-body -X POST \
  "$server/dataCollectionRules/dcr-local/streams/Microsoft-Heartbeat?api-version=2023-01-01" \
  -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' --data-binary @- \
  -o /dev/null -w 'Heartbeat: HTTP %{http_code}\n'
