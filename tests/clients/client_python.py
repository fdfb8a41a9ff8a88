# redis-py (Debian python3-redis) with its default options against the
# daemon: one line "ok STEP" or "FAIL STEP: why" per step (run.sh counts them).
import os
import subprocess
import sys
import threading

import redis

SOCKET = os.environ["TC_SOCKET"]
NAME = "cache:acme:credit:crm.leads.create"
failures = 0


def step(name, check):
    global failures
    try:
        check()
        print("ok python " + name, flush=True)
    except Exception as error:  # any failure of a step is reported, the suite goes on
        failures += 1
        print("FAIL python %s: %r" % (name, error), flush=True)


def expect(got, wanted):
    if got != wanted:
        raise AssertionError("expected %r, got %r" % (wanted, got))


# The two lines of the README's "From your language", Python.
r = redis.Redis(unix_socket_path=SOCKET, decode_responses=True)


def connect():
    expect(r.ping(), True)


def get():
    expect(r.get(NAME), "3.5")
    expect(r.get("cache:acme:credit:nope"), None)


def can():
    expect(r.execute_command("CAN", "acme", "alice", "crm.leads.create"), 1)
    expect(r.execute_command("CAN", "acme", "nobody", "crm.leads.create"), None)


def pipeline():
    # redis-py's default pipeline() is a MULTI/EXEC transaction
    pipe = r.pipeline(transaction=False)
    for _ in range(100):
        pipe.get(NAME)
    expect(pipe.execute(), ["3.5"] * 100)


def transaction():
    pipe = r.pipeline()
    pipe.get(NAME)
    pipe.execute_command("CAN", "acme", "alice", "crm.leads.create")
    pipe.execute_command("CREDIT", "acme", "crm.leads.create")
    expect(pipe.execute(), ["3.5", 1, "3.5"])


def client_name():
    named = redis.Redis(unix_socket_path=SOCKET, client_name="py-app", decode_responses=True)
    expect(named.client_getname(), "py-app")
    info = named.client_info()
    expect(info["name"], "py-app")
    expect(int(info["pid"]), os.getpid())


def pool():
    shared = redis.Redis(unix_socket_path=SOCKET, decode_responses=True)
    errors = []

    def caller():
        try:
            for _ in range(50):
                expect(shared.get(NAME), "3.5")
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    if shared.connection_pool._created_connections < 2:
        raise AssertionError("the pool opened only one connection")


def error_reply():
    try:
        r.execute_command("CAN", "acme")
    except redis.ResponseError as error:
        expect(str(error), "wrong number of arguments for 'CAN'")
        return
    raise AssertionError("no error")


def reconnect():
    subprocess.run(os.environ["TC_RESTART"], shell=True, check=True)
    expect(r.get(NAME), "3.5")


for name, check in [("connect", connect), ("get", get), ("can", can), ("pipeline", pipeline),
                    ("transaction", transaction), ("client-name", client_name), ("pool", pool),
                    ("error", error_reply), ("reconnect", reconnect)]:
    step(name, check)
sys.exit(1 if failures else 0)
