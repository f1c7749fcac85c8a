#!/bin/sh
# Make sure a Redis answers on 127.0.0.1:6379: start the installed server, or install it first.
set -eu
PORT="${REDIS_PORT:-6379}"

answers() {
    python3 - "$PORT" <<'PY'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
        s.sendall(b"PING\r\n")
        sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

answers && exit 0
if ! command -v redis-server >/dev/null 2>&1; then
    echo "ensure-redis: redis-server is not installed; installing it from Debian's packages"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server
fi
answers && exit 0
echo "ensure-redis: starting redis-server on 127.0.0.1:$PORT"
mkdir -p .run
redis-server --daemonize yes --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no \
    --dir "$(pwd)/.run" --logfile "$(pwd)/.run/redis.log"
for _ in $(seq 1 50); do answers && exit 0; sleep 0.1; done
echo "ensure-redis: Redis did not answer on 127.0.0.1:$PORT" >&2
exit 1
