#!/bin/sh
# `make test`'s two legs, side by side: the whole suite on SQLite, and on PostgreSQL all but
# the browser stories (`-m browser`: they test pages, not the database, and the two legs one
# after the other took longer than the 15 minutes `make test` may take on a 2-core machine).
# Each leg has its own Redis db and database. The SQLite leg prints as it goes; the
# PostgreSQL leg's output goes to .run/test-postgres.log and is printed when it is done.
# Exits non-zero when either leg fails.
# Usage: scripts/test-legs.sh PYTEST PG_URL
set -u
pytest=$1
pg_url=$2
mkdir -p .run
# Redis dbs of this run's own: another run on the machine flushes only its own.
owner="make-test-$$-$(date +%s)"
dbs=$(.venv/bin/python scripts/claim-redis-dbs.py claim 2 "$owner") || exit 1
trap '.venv/bin/python scripts/claim-redis-dbs.py release "$owner"' EXIT
# A run stopped by a signal gives its dbs back too (the EXIT trap runs on these exits).
trap 'exit 130' INT
trap 'exit 143' TERM
sqlite_db=${dbs% *}
postgres_db=${dbs#* }
echo "=== test leg 1/2: SQLite (every test, the browser stories included; Redis db $sqlite_db) ==="
TEST_REDIS_DB=$sqlite_db sh -c "$pytest" &
sqlite=$!
postgres=""
if scripts/ensure-postgres.sh; then
    echo "=== test leg 2/2: PostgreSQL (a fresh database on 127.0.0.1:5432; all but -m browser; Redis db $postgres_db) ==="
    TEST_DATABASE_URL=$pg_url TEST_REDIS_DB=$postgres_db sh -c "$pytest -m 'not browser'" \
        > .run/test-postgres.log 2>&1 &
    postgres=$!
fi
wait $sqlite; sqlite_rc=$?
postgres_rc=0
[ -n "$postgres" ] && { wait $postgres; postgres_rc=$?; }
echo "=== SQLite leg: exit $sqlite_rc ==="
if [ -n "$postgres" ]; then
    echo "=== PostgreSQL leg: exit $postgres_rc ==="; cat .run/test-postgres.log
else
    echo ""
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!! SKIPPED: the PostgreSQL leg. No PostgreSQL answers on 127.0.0.1:5432 and   !!!"
    echo "!!! none could be started. Only the SQLite leg ran.                            !!!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi
[ "$sqlite_rc" -eq 0 ] && [ "$postgres_rc" -eq 0 ]
