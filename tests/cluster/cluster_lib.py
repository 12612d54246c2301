"""cluster_lib.py: a primary and a standby on loopback for the cluster
tests (python3 stdlib only), built on tests/crash/srv.py's Contactd and
Client (free ports, every process killed when the test ends, a deadline).

A pair is made the way an operator makes one: the primary starts on a
fresh data directory, an admin key is added, a backup is fetched with
contactctl backup and restored with contactctl restore into the standby's
directory, and the standby starts with --follow.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "crash"))
from srv import Client, Contactd, Fail, check, contactctl, deadline  # noqa: E402,F401


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contactd", required=True)
    ap.add_argument("--contactctl", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--keep", action="store_true")
    return ap.parse_args()


def ctl(args, *rest, data=None, timeout=120):
    cmd = [args.contactctl] + (["--data", data] if data else []) + list(rest)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), \
        p.stderr.decode(errors="replace")


class Pair:
    """A primary and its standby, in directories under work."""

    def __init__(self, args, work, name, ack="required", timeout_ms=2000,
                 extra=()):
        self.args = args
        self.base = os.path.join(work, name)
        os.makedirs(self.base)
        self.pdata = os.path.join(self.base, "primary")
        self.sdata = os.path.join(self.base, "standby")
        self.keyfile = os.path.join(self.base, "admin.key")
        self.ack, self.timeout_ms, self.extra = ack, timeout_ms, list(extra)
        self.primary = self.standby = None

    def primary_args(self):
        return ["--standby-ack", self.ack, "--standby-timeout",
                str(self.timeout_ms)] + self.extra

    def start_primary(self):
        self.primary = Contactd(self.args.contactd, self.args.plugins,
                                self.pdata, self.primary_args()).start()
        return self.primary

    def make(self):
        # The first start makes the default key; the admin key is added
        # offline, then the primary serves.
        Contactd(self.args.contactd, self.args.plugins, self.pdata).start().stop()
        rc, out, err = ctl(self.args, "keys", "add", "--account", "ops",
                           "--admin", data=self.pdata)
        check(rc == 0, f"keys add: {err}")
        self.admin = next(w for w in out.split() if w.startswith("ck_"))
        with open(self.keyfile, "w") as f:
            f.write(self.admin + "\n")
        self.start_primary()
        self.restore_standby()
        self.start_standby()
        return self

    def restore_standby(self):
        tar = os.path.join(self.base, "backup.tar")
        rc, _, err = ctl(self.args, "backup", "--from", self.url(self.primary),
                         "--key-file", self.keyfile, "--output", tar)
        check(rc == 0, f"backup: {err}")
        if os.path.exists(self.sdata):
            shutil.rmtree(self.sdata)
        rc, _, err = ctl(self.args, "restore", tar, data=self.sdata)
        check(rc == 0, f"restore: {err}")
        # A backup leaves out default.key (the first key in plain text);
        # the key file's hashes hold it, and the test's clients need it.
        shutil.copy(os.path.join(self.pdata, "default.key"),
                    os.path.join(self.sdata, "default.key"))

    def start_standby(self, args=()):
        self.standby = Contactd(
            self.args.contactd, self.args.plugins, self.sdata,
            ["--follow", self.url(self.primary), "--follow-key-file",
             self.keyfile] + list(args)).start()
        return self.standby

    @staticmethod
    def url(srv):
        return f"http://127.0.0.1:{srv.port}"

    def admin_client(self, srv, timeout=10):
        return Client(srv.port, self.admin, timeout)

    def stop(self):
        for s in (self.primary, self.standby):
            if s is not None and s.alive():
                s.kill()


def wait_for(what, fn, timeout=10.0, step=0.02):
    """Polls fn until it returns a true value; that value, or Fail."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise Fail(f"timed out waiting for {what}")
        time.sleep(step)


def create_body(tag):
    return json.dumps({"first_name": "Rep", "last_name": tag,
                       "email": f"{tag}@repl.example"})


class Writers:
    """n threads creating contacts on srv until stopped; each create has an
    Idempotency-Key. acked: {id: tag} of every 201 received."""

    def __init__(self, srv, n, prefix):
        self.srv, self.n, self.prefix = srv, n, prefix
        self.acked = {}
        self.statuses = {}
        self.mu = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []

    def _run(self, w):
        c = self.srv.client(timeout=10)
        i = 0
        while not self.stop_ev.is_set():
            tag = f"{self.prefix}-{w}-{i}"
            i += 1
            try:
                st, _, body = c.request("POST", "/contacts", create_body(tag),
                                        headers={"content-type":
                                                 "application/json",
                                                 "idempotency-key": tag})
            except Exception:
                time.sleep(0.01)
                if not self.srv.alive():
                    return
                continue
            with self.mu:
                self.statuses[st] = self.statuses.get(st, 0) + 1
                if st in (200, 201):
                    self.acked[json.loads(body)["id"]] = tag
        c.close()

    def start(self):
        for w in range(self.n):
            t = threading.Thread(target=self._run, args=(w,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(15)


def tmpdir(args):
    return tempfile.mkdtemp(prefix="cluster-")


def cleanup(args, work):
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
