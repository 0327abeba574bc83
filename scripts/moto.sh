#!/usr/bin/env bash
# Starts moto_server, an S3-compatible server, on 127.0.0.1 for the artifact tests.
#
#   scripts/moto.sh start   install moto[server] into target/moto-venv if missing, start it
#                           (idempotent: a server already answering on the port is reused)
#   scripts/moto.sh install install moto[server] into target/moto-venv if missing (the
#                           S3 tests run it before starting a server of their own)
#   scripts/moto.sh stop    stop the server this script started
#   scripts/moto.sh env     print the variables the tests read (eval "$(scripts/moto.sh env)")
#
# Port: $DAGFORGE_MOTO_PORT (default 5599). Requests are path-style; any credentials work.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${DAGFORGE_MOTO_PORT:-5599}"
VENV="target/moto-venv"
PIDFILE="target/moto.pid"
LOG="target/moto.log"
ENDPOINT="http://127.0.0.1:${PORT}"

up() { (echo > "/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; }

install() {
  if [ -x "${VENV}/bin/moto_server" ]; then return 0; fi
  echo "moto.sh: installing moto[server] into ${VENV}" >&2
  mkdir -p target
  python3 -m venv "${VENV}"
  "${VENV}/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
}

start() {
  if up; then
    echo "moto.sh: a server already listens on ${ENDPOINT}" >&2
    return 0
  fi
  install
  nohup "${VENV}/bin/moto_server" -H 127.0.0.1 -p "${PORT}" >"${LOG}" 2>&1 &
  echo $! > "${PIDFILE}"
  for _ in $(seq 1 100); do
    if up; then
      echo "moto.sh: moto_server listening on ${ENDPOINT} (pid $(cat "${PIDFILE}"))" >&2
      return 0
    fi
    if ! kill -0 "$(cat "${PIDFILE}")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "moto.sh: moto_server did not start; its log:" >&2
  cat "${LOG}" >&2 || true
  return 1
}

stop() {
  if [ -f "${PIDFILE}" ]; then
    kill "$(cat "${PIDFILE}")" 2>/dev/null || true
    rm -f "${PIDFILE}"
  fi
}

env_vars() {
  echo "export DAGFORGE_TEST_S3_ENDPOINT=${ENDPOINT}"
}

case "${1:-start}" in
  start) start ;;
  install) install ;;
  stop) stop ;;
  env) env_vars ;;
  *) echo "usage: $0 start|install|stop|env" >&2; exit 2 ;;
esac
