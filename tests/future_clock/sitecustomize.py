"""Moves this process's clock forward by TEST_CLOCK_SHIFT seconds, ticking, when that is set.

`make test-future` puts this directory on PYTHONPATH, so Python imports it at the start of the
test process and of every Python process the tests start (gunicorn and its forked workers,
Celery workers and beat, the `flask` commands): all of them see the same future, each from
its own start. time-machine moves the wall clock (`time.time`, `datetime.now`, `date.today`)
and leaves `time.monotonic` alone, so sleeps, timeouts and lock waits keep real durations.
libfaketime was tried first: under Python 3.11 it hangs every timed thread wait
(`sem_clockwait` is not intercepted) or fails every `time.sleep` with EINVAL."""

import os

_shift = os.environ.get("TEST_CLOCK_SHIFT")
if _shift:
    import time

    import time_machine

    time_machine.travel(time.time() + float(_shift), tick=True).start()
