"""huey with its SQLite storage for `stask-bench peers`.

The same line protocol as the Node peers (see tests/bench/peers/node/common.mjs): one process
runs one role of one phase. The store is the file in $HUEY_DB; $HUEY_FSYNC is `off`
(synchronous=OFF) or `default` (SQLite's default, FULL). The consumer is huey's own `Consumer`
with thread workers = the pool, polling every 1-10 ms (huey's default backs off to 10 s).
"""
import os
import sys
import threading
import time

from huey import SqliteHuey
from huey.consumer import Consumer
from huey.signals import SIGNAL_COMPLETE

# The fill is not measured: it writes without syncs (the bench syncs the disk after it).
DURABLE = os.environ.get("HUEY_FSYNC") == "default" and sys.argv[1] != "fill"
huey = SqliteHuey("bench", filename=os.environ["HUEY_DB"], fsync=(None if DURABLE else False))
latencies = []


def now_us():
    return time.time() * 1e6


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@huey.task()
def noop():
    pass


@huey.task()
def stamp(t0):
    latencies.append((now_us() - t0) / 1000.0)


def produce(producers, secs):
    created = [0] * producers
    started = time.perf_counter()
    deadline = started + secs

    def loop(i):
        while time.perf_counter() < deadline:
            noop()
            created[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    say("CREATED %d %f" % (sum(created), time.perf_counter() - started))


def work(pool, mode, target):
    done = [0]
    lock = threading.Lock()
    finished = threading.Event()

    @huey.signal(SIGNAL_COMPLETE)
    def completed(signal, task):
        with lock:
            done[0] += 1
            if done[0] == target:
                finished.set()

    consumer = Consumer(huey, workers=pool, worker_type="thread", periodic=False,
                        initial_delay=0.001, max_delay=0.01, check_worker_health=False)
    say("READY")
    started = time.perf_counter()
    consumer.start()
    if mode == "count":
        for line in sys.stdin:
            if line.strip() == "COUNT":
                with lock:
                    say("COMPLETED %d" % done[0])
    else:
        # Ends when the target is reached; the bench closing stdin is handled by its timeout.
        finished.wait()
        if mode == "drain":
            say("DRAIN %f" % (target / (time.perf_counter() - started)))
        else:
            lat = sorted(latencies)
            say("LATENCY %f %f" % (lat[len(lat) // 2], lat[len(lat) * 99 // 100]))
    os._exit(0)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "reset":
        huey.flush()
        say("RESET")
    elif cmd == "fill":
        n = int(args[0])
        for _ in range(n):
            noop()
        say("FILLED %d" % n)
    elif cmd == "produce":
        produce(int(args[0]), float(args[1]))
    elif cmd == "stamp":
        n, gap = int(args[0]), float(args[1]) / 1000.0
        for _ in range(n):
            stamp(now_us())
            time.sleep(gap)
        say("SENT %d" % n)
    elif cmd == "work":
        work(int(args[0]), args[1], int(args[2]) if len(args) > 2 else 0)
    else:
        raise SystemExit("unknown command " + cmd)


main()
