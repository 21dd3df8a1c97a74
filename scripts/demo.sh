#!/usr/bin/env bash
# The embedded default: start the webhook on 127.0.0.1 with self-made certificates, the example
# resources and the policies, send real AdmissionReviews with curl, print the answers, stop.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/fidomesh
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=${FIDOMESH_DEMO_PORT:-18443}
admin=${FIDOMESH_DEMO_ADMIN_PORT:-19090}

"$bin" certs --service fidomesh --namespace fidomesh-system --ip 127.0.0.1 --dns localhost --out "$work/certs" 2>/dev/null
"$bin" serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
  --tls-cert "$work/certs/tls.crt" --tls-key "$work/certs/tls.key" \
  --policies policies --data-dir manifests/examples \
  --mds-payload manifests/examples/fido-mds-payload.json \
  --decision-log "$work/decisions.log" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null || { echo "webhook not ready"; cat "$work/server.log"; exit 1; }
echo "fidomesh webhook ready on https://127.0.0.1:$port (CA $work/certs/ca.crt)"

send() { # endpoint review-file
  sed "s/__AUTH_TIME__/$(date +%s)/" "manifests/examples/reviews/$2.json" >"$work/$2.json"
  curl -sS --fail-with-body --cacert "$work/certs/ca.crt" -H 'content-type: application/json' \
    --data-binary "@$work/$2.json" "https://127.0.0.1:$port/$1"
  echo
}

echo
echo "== allowed: alice, with her registered YubiKey, binds a role she holds herself (POST /validate)"
send validate allowed-binding
echo
echo "== denied: mallory, an admin without a hardware key, binds a role (POST /validate)"
send validate denied-binding
echo
echo "== mutated: olivia registers her new key; ID, AAGUID and notAfter are made canonical (POST /mutate)"
answer=$(send mutate mutated-authenticator)
echo "$answer"
patch=$(printf '%s' "$answer" | sed -n 's/.*"patch":"\([^"]*\)".*/\1/p')
[ -n "$patch" ] && { echo "-- the patch, decoded:"; printf '%s' "$patch" | base64 -d; echo; }
echo
echo "== decision log ($(wc -l <"$work/decisions.log") durable records), last one:"
tail -n 1 "$work/decisions.log"
