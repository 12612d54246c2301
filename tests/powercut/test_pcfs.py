#!/usr/bin/env python3
"""test_pcfs.py: the power-cut file system keeps exactly what was durable.

Goal: pcfs is the ground the power-cut rounds stand on, so it is tested
against its rules (the top of pcfs.c) before anything trusts it: file data
is durable as of the file's last fsync, a directory's entries as of the
directory's last fsync, everything fails after the cut, an unmount without
a cut keeps everything, and --keep random keeps each pending 4 KiB page or
loses it on its own, the same way for the same seed.

Method: each case mounts pcfs over a fresh backing directory, makes files
with ordinary system calls on the mount, cuts the power, unmounts, and
reads the backing directory. Usage: test_pcfs.py --pcfs BIN
"""
import argparse
import mmap
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcfs_lib import Mount, fuse_available  # noqa: E402

PAGE = 4096
failures = []
cases = 0


def write_file(path, data, sync=True, flags=os.O_CREAT | os.O_WRONLY | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    os.write(fd, data)
    if sync:
        os.fsync(fd)
    os.close(fd)


def sync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def case(fn):
    """Runs fn(mnt, backing) on a fresh mount; fn cuts and checks."""
    global cases
    cases += 1
    with tempfile.TemporaryDirectory(prefix="pcfs-test-") as work:
        m = Mount(args.pcfs, os.path.join(work, "b"), os.path.join(work, "m"))
        os.makedirs(m.backing)
        pre = getattr(fn, "pre", None)
        if pre:
            pre(m.backing)
        m.mount()
        try:
            fn(m, m.mountpoint, m.backing)
            print(f"ok   {fn.__name__}")
        except AssertionError as e:
            failures.append(fn.__name__)
            print(f"FAIL {fn.__name__}: {e}")
        finally:
            m.unmount(quiet=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def test_pcfs_synced_file_in_synced_directory_survives(m, mnt, b):
    write_file(f"{mnt}/a", b"durable")
    sync_dir(mnt)
    m.cut()
    m.unmount()
    check(read(f"{b}/a") == b"durable", f"a is {read(f'{b}/a')!r}")


def test_pcfs_synced_file_without_directory_sync_is_gone(m, mnt, b):
    write_file(f"{mnt}/a", b"data")
    m.cut()
    m.unmount()
    check(read(f"{b}/a") is None, "a survived though its name was never synced")


def test_pcfs_synced_name_of_unsynced_file_is_empty(m, mnt, b):
    write_file(f"{mnt}/a", b"data", sync=False)
    sync_dir(mnt)
    m.cut()
    m.unmount()
    check(read(f"{b}/a") == b"", f"a is {read(f'{b}/a')!r}")


def test_pcfs_writes_after_the_last_fsync_are_lost(m, mnt, b):
    write_file(f"{mnt}/a", b"one")
    sync_dir(mnt)
    write_file(f"{mnt}/a", b"-two", sync=False, flags=os.O_WRONLY | os.O_APPEND)
    check(read(f"{mnt}/a") == b"one-two", "the mount does not show the write")
    m.cut()
    m.unmount()
    check(read(f"{b}/a") == b"one", f"a is {read(f'{b}/a')!r}")


def test_pcfs_fdatasync_makes_data_durable(m, mnt, b):
    write_file(f"{mnt}/a", b"one")
    sync_dir(mnt)
    fd = os.open(f"{mnt}/a", os.O_WRONLY)
    os.pwrite(fd, b"ONE", 0)
    os.fdatasync(fd)
    os.close(fd)
    m.cut()
    m.unmount()
    check(read(f"{b}/a") == b"ONE", f"a is {read(f'{b}/a')!r}")


def test_pcfs_rename_is_durable_only_with_the_directory(m, mnt, b):
    write_file(f"{mnt}/target", b"old")
    sync_dir(mnt)
    write_file(f"{mnt}/tmp", b"new")
    os.rename(f"{mnt}/tmp", f"{mnt}/target")
    m.cut()
    m.unmount()
    check(read(f"{b}/target") == b"old", f"target is {read(f'{b}/target')!r}")
    check(read(f"{b}/tmp") is None, "tmp appeared")


def test_pcfs_atomic_replace_with_directory_sync_survives(m, mnt, b):
    write_file(f"{mnt}/target", b"old")
    sync_dir(mnt)
    write_file(f"{mnt}/tmp", b"new")
    os.rename(f"{mnt}/tmp", f"{mnt}/target")
    sync_dir(mnt)
    m.cut()
    m.unmount()
    check(read(f"{b}/target") == b"new", f"target is {read(f'{b}/target')!r}")
    check(sorted(os.listdir(b)) == ["target"], f"backing holds {os.listdir(b)}")


def test_pcfs_unlink_without_directory_sync_comes_back(m, mnt, b):
    write_file(f"{mnt}/a", b"kept")
    sync_dir(mnt)
    os.unlink(f"{mnt}/a")
    # The backing file system may give the next file a's inode number:
    # pcfs must still tell them apart.
    write_file(f"{mnt}/c", b"other")
    m.cut()
    m.unmount()
    check(read(f"{b}/a") == b"kept", f"a is {read(f'{b}/a')!r}")
    check(read(f"{b}/c") is None, "c appeared without a directory sync")


def test_pcfs_unlink_with_directory_sync_is_gone(m, mnt, b):
    write_file(f"{mnt}/a", b"x")
    sync_dir(mnt)
    os.unlink(f"{mnt}/a")
    sync_dir(mnt)
    m.cut()
    m.unmount()
    check(read(f"{b}/a") is None, "a came back")


def test_pcfs_truncate_after_the_last_fsync_is_lost(m, mnt, b):
    write_file(f"{mnt}/a", b"0123456789")
    sync_dir(mnt)
    os.truncate(f"{mnt}/a", 3)
    m.cut()
    m.unmount()
    check(read(f"{b}/a") == b"0123456789", f"a is {read(f'{b}/a')!r}")


def test_pcfs_new_directory_needs_its_parent_synced(m, mnt, b):
    os.mkdir(f"{mnt}/d")
    write_file(f"{mnt}/d/f", b"x")
    sync_dir(f"{mnt}/d")
    m.cut()
    m.unmount()
    check(not os.path.exists(f"{b}/d"), "d survived without its parent synced")


def test_pcfs_new_directory_with_parent_synced_survives(m, mnt, b):
    os.mkdir(f"{mnt}/d")
    write_file(f"{mnt}/d/f", b"x")
    sync_dir(f"{mnt}/d")
    sync_dir(mnt)
    m.cut()
    m.unmount()
    check(read(f"{b}/d/f") == b"x", f"d/f is {read(f'{b}/d/f')!r}")


def test_pcfs_everything_fails_after_the_cut(m, mnt, b):
    write_file(f"{mnt}/a", b"x")
    m.cut()
    for what, fn in [("open", lambda: os.open(f"{mnt}/b", os.O_CREAT | os.O_WRONLY)),
                     ("stat", lambda: os.stat(f"{mnt}/a")),
                     ("listdir", lambda: os.listdir(mnt))]:
        try:
            fn()
            raise AssertionError(f"{what} succeeded after the cut")
        except OSError as e:
            check(e.errno == 5, f"{what}: {e} (want EIO)")
    m.unmount()


def test_pcfs_unmount_without_a_cut_keeps_everything(m, mnt, b):
    write_file(f"{mnt}/a", b"unsynced", sync=False)
    m.unmount()
    check(read(f"{b}/a") == b"unsynced", f"a is {read(f'{b}/a')!r}")


def _pre_existing(backing):
    os.mkdir(f"{backing}/sub")
    with open(f"{backing}/sub/old", "wb") as f:
        f.write(b"from before the mount")


def test_pcfs_what_was_there_at_mount_is_durable(m, mnt, b):
    check(read(f"{mnt}/sub/old") == b"from before the mount", "not visible")
    write_file(f"{mnt}/sub/old", b"changed", sync=False)
    m.cut()
    m.unmount()
    check(read(f"{b}/sub/old") == b"from before the mount",
          f"old is {read(f'{b}/sub/old')!r}")


test_pcfs_what_was_there_at_mount_is_durable.pre = _pre_existing


def test_pcfs_mmap_sees_written_data(m, mnt, b):
    fd = os.open(f"{mnt}/seg", os.O_CREAT | os.O_RDWR, 0o644)
    os.ftruncate(fd, 2 * PAGE)
    mm = mmap.mmap(fd, 2 * PAGE, mmap.MAP_SHARED, mmap.PROT_READ)
    os.pwrite(fd, b"record", PAGE + 10)
    check(mm[PAGE + 10:PAGE + 16] == b"record", "mapping does not see the write")
    mm.close()
    os.close(fd)
    m.unmount()


def random_round(seed):
    """Three pending pages over a synced file, cut with --keep random:
    what each page holds afterwards."""
    with tempfile.TemporaryDirectory(prefix="pcfs-test-") as work:
        m = Mount(args.pcfs, os.path.join(work, "b"), os.path.join(work, "m"),
                  seed=seed, keep="random")
        m.mount()
        mnt = m.mountpoint
        write_file(f"{mnt}/a", b"o" * (3 * PAGE))
        sync_dir(mnt)
        fd = os.open(f"{mnt}/a", os.O_WRONLY)
        os.pwrite(fd, b"n" * (3 * PAGE), 0)  # one write over three pages
        os.close(fd)
        m.cut()
        m.unmount()
        data = read(f"{m.backing}/a")
        pages = [data[i * PAGE:(i + 1) * PAGE] for i in range(3)]
        for p in pages:
            check(p in (b"o" * PAGE, b"n" * PAGE), "a page is neither old nor new")
        return "".join(p[:1].decode() for p in pages)


def test_pcfs_keep_random_tears_at_pages_and_repeats_by_seed():
    global cases
    cases += 1
    try:
        seen = set()
        for seed in range(1, 13):
            got = random_round(seed)
            check(random_round(seed) == got, f"seed {seed} not repeatable")
            seen.add(got)
        check(any("n" in s and "o" in s for s in seen),
              f"no torn write in 12 seeds: {sorted(seen)}")
        check(len(seen) > 2, f"too little variety: {sorted(seen)}")
        print("ok   test_pcfs_keep_random_tears_at_pages_and_repeats_by_seed")
    except AssertionError as e:
        failures.append("keep_random")
        print(f"FAIL test_pcfs_keep_random_tears_at_pages_and_repeats_by_seed: {e}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcfs", required=True)
    args = ap.parse_args()
    why = fuse_available()
    if why:
        print(f"skipped: {why}")
        sys.exit(77)
    for name, fn in list(globals().items()):
        if name.startswith("test_pcfs_") and callable(fn) and \
                fn.__code__.co_argcount == 3:
            case(fn)
    test_pcfs_keep_random_tears_at_pages_and_repeats_by_seed()
    print(f"{cases - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)
