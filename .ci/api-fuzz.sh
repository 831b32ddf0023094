#!/usr/bin/env bash
# Property-based API fuzzing: schemathesis (PyPI) generates requests from the daemon's own
# OpenAPI document and checks every answer: no 5xx, documented status codes, content types and
# response schemas. Usage: .ci/api-fuzz.sh [max-examples-per-operation]
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-40}"
venv=target/ci-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.32.5"
fi
cargo build --quiet -p stask-host -p stask-worker-demo -p stask-worker-product
home=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$home"' EXIT
mkdir -p "$home/plugins.d"
cp target/debug/libstask_worker_demo.so target/debug/libstask_worker_product.so "$home/plugins.d/"
# Commands other than serve, migrate and process refuse a home without its database.
target/debug/stask --home "$home" migrate >/dev/null
token=$(target/debug/stask --home "$home" token create --name fuzz 2>/dev/null | tail -1)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STASK_BIND="127.0.0.1:$port" STASK_LOG=warn target/debug/stask --home "$home" serve 2>"$home/daemon.log" &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/stask/health" >/dev/null && break
  sleep 0.1
done
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/stask/openapi.json" >"$home/openapi.json"
status=0
# One worker: with two, hypothesis parses lambda sources from two threads at once and CPython
# 3.11 has failed that with "AST constructor recursion depth mismatch" (a fuzzer crash, not a
# finding about the API).
"$venv/bin/schemathesis" run "$home/openapi.json" \
  --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth \
  --exclude-path-regex 'events$' \
  --max-examples "$examples" \
  --workers 1 \
  --suppress-health-check all \
  --no-color || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "the daemon died during fuzzing:"; tail -50 "$home/daemon.log"; exit 1
fi
if grep -q "panicked" "$home/daemon.log"; then
  echo "the daemon logged a panic:"; grep -B2 -A5 panicked "$home/daemon.log"; exit 1
fi
exit "$status"
