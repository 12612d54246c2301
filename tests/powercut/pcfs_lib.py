"""pcfs_lib.py: mount, cut and unmount the power-cut file system (pcfs.c).

A Mount runs pcfs over a backing directory; cut() cuts the power (SIGUSR1:
every later call fails), unmount() unmounts and waits until pcfs has
rewritten the backing directory to what was durable. Every mount is undone
when the test exits, however it exits.
"""
import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time

_mounts = []


def _undo_all():
    for m in list(_mounts):
        m.unmount(quiet=True)


atexit.register(_undo_all)


def fuse_available():
    """Why pcfs cannot run here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not shutil.which("fusermount3"):
        return "no fusermount3 (Debian package fuse3)"
    return None


class Mount:
    def __init__(self, pcfs, backing, mountpoint, seed=0, keep="none"):
        self.pcfs = pcfs
        self.backing = backing
        self.mountpoint = mountpoint
        self.seed = seed
        self.keep = keep
        self.proc = None
        self.state = None
        self.report = ""

    def mount(self, timeout=10):
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.mountpoint, exist_ok=True)
        self.state = tempfile.mkdtemp(prefix="pcfs-state-")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [self.pcfs, self.backing, self.mountpoint, "--state", self.state,
             "--seed", str(self.seed), "--keep", self.keep],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        _mounts.append(self)
        end = time.monotonic() + timeout
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.unmount(quiet=True)
                raise RuntimeError("pcfs did not mount: " + self._log())
            time.sleep(0.01)
        return self

    def _log(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def cut(self):
        """The power goes: every call from now on fails with EIO."""
        self.proc.send_signal(signal.SIGUSR1)
        # The flag is seen by the next call; a call in progress finishes.
        time.sleep(0.05)

    def unmount(self, quiet=False, timeout=60):
        """Unmounts; after a cut, returns once the backing directory holds
        only what was durable. Returns pcfs's report line."""
        if self.proc is None:
            return self.report
        # After a cut even stat fails (os.path.ismount says False): always
        # ask; lazily if something still holds the mount.
        for extra in ([], ["-z"]):
            r = subprocess.run(["fusermount3", "-u"] + extra + [self.mountpoint],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                break
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.report = self._log().strip()
        self.proc = None
        if self in _mounts:
            _mounts.remove(self)
        shutil.rmtree(self.state, ignore_errors=True)
        if rc != 0 and not quiet:
            raise RuntimeError(f"pcfs exited {rc}: {self.report}")
        return self.report
