#!/bin/sh
# Make sure a PostgreSQL answers on 127.0.0.1:5432 for the PostgreSQL leg of the tests.
# Exit 0 when one answers (started here if it was installed but down), 1 when none can be had.
set -u
answers() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

answers && exit 0
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
        echo "ensure-postgres: starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    done
    for _ in $(seq 1 50); do answers && exit 0; sleep 0.2; done
fi
exit 1
