#!/usr/bin/env bash
# Start PostgreSQL and Redis on this machine if they are down, then wait until both answer.
set -euo pipefail

wait_for() {  # wait_for NAME COMMAND...: poll COMMAND for up to 60 seconds
  local name=$1
  shift
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  echo "services: $name did not come up within 60 seconds" >&2
  return 1
}

if ! pg_isready -h 127.0.0.1 >/dev/null 2>&1; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi

if ! redis-cli ping >/dev/null 2>&1; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

wait_for PostgreSQL pg_isready -h 127.0.0.1
wait_for Redis redis-cli ping
