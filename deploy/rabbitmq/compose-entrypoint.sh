#!/bin/bash
# Compose only. definitions.json creates paylink's users without passwords (no secrets in
# the repository), so this starts RabbitMQ as the image would and then gives each user the
# password from the environment. Elsewhere ops set them once with
# `rabbitmqctl change_password USER` (reads the password from stdin).
set -euo pipefail

ready=/tmp/paylink-users-ready
rm -f "$ready"

docker-entrypoint.sh rabbitmq-server &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"; exit $?' TERM INT

until docker-entrypoint.sh rabbitmqctl --quiet await_startup >/dev/null 2>&1; do
  if ! kill -0 "$server" 2>/dev/null; then
    wait "$server"
    exit $?
  fi
  sleep 2
done

set_password() {
  local user=$1 password=$2
  if [ -z "$password" ]; then
    echo "paylink: no password given for $user; it stays unable to log in" >&2
    return
  fi
  printf '%s' "$password" | docker-entrypoint.sh rabbitmqctl --quiet change_password "$user" >/dev/null
}

set_password paylink-worker "${PAYLINK_RABBITMQ_WORKER_PASSWORD:-}"
set_password paylink-upstream "${PAYLINK_RABBITMQ_UPSTREAM_PASSWORD:-}"
set_password paylink-checkout "${PAYLINK_RABBITMQ_CHECKOUT_PASSWORD:-}"
set_password paylink-monitor "${PAYLINK_RABBITMQ_MONITOR_PASSWORD:-}"
set_password paylink-admin "${PAYLINK_RABBITMQ_ADMIN_PASSWORD:-}"
touch "$ready"

wait "$server"
