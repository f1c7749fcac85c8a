"""Claims Redis db numbers for one `make test` run, so that two runs on one machine (a CI run
beside a developer's, or two clones) never flush each other's broker and counters.

    claim-redis-dbs.py claim N OWNER   prints N free db numbers, now held by OWNER for an hour
    claim-redis-dbs.py release OWNER   gives back what OWNER holds

The claims live in db 0 (`leads:test-claim:<db>`), which no test flushes; a claim left behind
by a run killed before its release runs out after an hour, longer than a run takes."""

import sys

import redis

CANDIDATES = range(11, 16)  # 9 is the bench's, 10 the mutation run's
HOLD_SECONDS = 3600
KEY = "leads:test-claim:{}"


def claim(server: redis.Redis, wanted: int, owner: str) -> list[int]:
    claimed = []
    for db in CANDIDATES:
        if len(claimed) == wanted:
            break
        if server.set(KEY.format(db), owner, nx=True, ex=HOLD_SECONDS):
            claimed.append(db)
    if len(claimed) < wanted:
        release(server, owner)
        raise SystemExit(f"claim-redis-dbs: only {len(claimed)} of {wanted} Redis dbs free "
                         f"among {CANDIDATES.start}-{CANDIDATES.stop - 1}: other test runs hold "
                         "the rest (their claims run out after an hour)")
    return claimed


def release(server: redis.Redis, owner: str) -> None:
    for db in CANDIDATES:
        if server.get(KEY.format(db)) == owner.encode():
            server.delete(KEY.format(db))


if __name__ == "__main__":
    action, *args = sys.argv[1:]
    server = redis.Redis(host="127.0.0.1", port=6379, db=0, socket_timeout=5)
    if action == "claim":
        print(" ".join(str(db) for db in claim(server, int(args[0]), args[1])))
    else:
        release(server, args[0])
