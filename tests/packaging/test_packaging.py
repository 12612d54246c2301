#!/usr/bin/env python3
"""test_packaging.py: what `cmake --install` and `cpack -G DEB` make of this
build, installed and unpacked into scratch directories and run from there.

- cmake --install --prefix SCRATCH: contactd, contactctl, the plugins in
  lib/contactd/plugins, the systemd unit (its ExecStart the prefix's
  contactd; systemd-analyze verify when present), a man page for each
  program that man renders (contactd's naming every option of --help);
  the installed contactd loads the installed
  plugins, not the build tree's, and answers /healthz.
- cpack -G DEB: contactd_<version>-1_<arch>.deb with the shared libraries'
  packages and adduser as dependencies, maintainer scripts (postinst makes
  the contactd system user), the unit, the man pages, copyright and
  changelog.Debian.gz (whose top entry is this version); unpacked with
  dpkg -x, its contactd and contactctl run from there and its server, with
  its unpacked plugins, answers /healthz; lintian reports no error.
- The maintainer scripts create the contactd system user and group
  (postinst, idempotent) and remove them on purge (postrm), run against a
  copy of /etc in a mount namespace of their own.
"""
import argparse
import glob
import gzip
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
from e2e_lib import (Server, Workdir, check, check_eq, curl,  # noqa: E402
                     run_tests)

p = argparse.ArgumentParser()
p.add_argument("--build", required=True)
p.add_argument("--source", required=True)
p.add_argument("--version", required=True)
p.add_argument("--only")
p.add_argument("--keep", action="store_true")
args = p.parse_args()
work = Workdir(args.keep)


def run(cmd, timeout=300, **kw):
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    check(r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{out}")
    return r.stdout.decode(errors="replace")


def serve_healthz(exe, root, plugin_dir):
    """Starts exe without --plugins: it must load plugin_dir's plugins and
    answer /healthz."""
    s = Server(exe, os.path.join(root, "data"), "")
    s.cmd = [exe, "--data", os.path.join(root, "data"), "--listen",
             "127.0.0.1:0", "--threads", "1"]
    s.start()
    try:
        check(any("plugin health loaded" in l for l in s.lines),
              "health plugin not loaded:\n" + s.stderr())
        r = curl(s.url + "/healthz")
        check_eq(r.status, 200, f"/healthz of {exe}")
    finally:
        check_eq(s.stop(), 0, f"exit status of {exe}")
    out = run([exe, "--help"])
    check(os.path.realpath(plugin_dir) in out,
          f"{exe} does not default to {plugin_dir}:\n{out}")
    build_plugins = os.path.join(os.path.realpath(args.build), "plugins")
    check(build_plugins not in out, f"{exe} defaults to the build tree's")


def check_man(path):
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0")
    r = subprocess.run(["man", "--warnings", "-l", path], capture_output=True,
                       timeout=60, env=env)
    # Without a terminal, man still overstrikes bold text (X, backspace, X).
    text = re.sub(r".\x08", "", r.stdout.decode(errors="replace"))
    check_eq(r.returncode, 0, f"man -l {path}")
    check("NAME" in text and "SYNOPSIS" in text, f"{path} renders: {text[:200]}")
    check(r.stderr.decode().strip() == "",
          f"man warns on {path}: {r.stderr.decode()}")


def test_cmake_install_into_a_prefix():
    prefix = os.path.join(work.sub("install"), "prefix")
    run(["cmake", "--install", args.build, "--prefix", prefix])
    for rel in ("bin/contactd", "bin/contactctl"):
        check(os.access(os.path.join(prefix, rel), os.X_OK), f"{rel} missing")
    plugin_dir = os.path.join(prefix, "lib", "contactd", "plugins")
    sos = sorted(os.path.basename(p) for p in
                 glob.glob(os.path.join(plugin_dir, "*.so")))
    for so in ("contacts.so", "health.so", "metrics.so", "openapi.so"):
        check(so in sos, f"{so} not installed: {sos}")
    unit = os.path.join(prefix, "lib", "systemd", "system", "contactd.service")
    with open(unit) as f:
        text = f.read()
    check(f"ExecStart={prefix}/bin/contactd\n" in text, "ExecStart: " + text)
    for word in ("Type=notify", "StateDirectory=contactd", "User=contactd",
                 "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
                 "RestrictAddressFamilies=", "SystemCallFilter=@system-service"):
        check(word in text, f"unit lacks {word}")
    if shutil.which("systemd-analyze"):
        run(["systemd-analyze", "verify", "--man=no", unit])
    for page in ("contactd.1.gz", "contactctl.1.gz"):
        check_man(os.path.join(prefix, "share", "man", "man1", page))
    run([os.path.join(prefix, "bin", "contactctl"), "--version"])
    serve_healthz(os.path.join(prefix, "bin", "contactd"), work.sub("run"),
                  plugin_dir)


def test_man_page_names_every_option():
    """contactd.1 lists every option --help does (a new option needs its
    paragraph in packaging/contactd.1)."""
    exe = os.path.join(args.build, "frontend", "contactd")
    names = set(re.findall(r"^\s+(--[a-z][a-z-]*)", run([exe, "--help"]),
                           re.M))
    check(len(names) > 10, f"options found in --help: {names}")
    with open(os.path.join(args.source, "packaging", "contactd.1")) as f:
        page = f.read().replace("\\-", "-")
    missing = sorted(n for n in names if n not in page)
    check(not missing, f"packaging/contactd.1 lacks {missing}")


def build_deb():
    out = work.sub("deb")
    run(["cpack", "-G", "DEB", "--config",
         os.path.join(args.build, "CPackConfig.cmake"), "-B", out],
        timeout=600)
    arch = run(["dpkg", "--print-architecture"]).strip()
    deb = os.path.join(out, f"contactd_{args.version}-1_{arch}.deb")
    check(os.path.exists(deb), f"no {deb}: {os.listdir(out)}")
    return deb


def test_debian_package():
    deb = build_deb()
    fields = run(["dpkg-deb", "-f", deb, "Package", "Version", "Depends"])
    check("Package: contactd" in fields, fields)
    check(f"Version: {args.version}-1" in fields, fields)
    for dep in ("adduser", "libh2o-evloop0.13", "libsystemd0", "libyajl2",
                "libc6"):
        check(re.search(rf"\b{re.escape(dep)}\b", fields), f"Depends: {fields}")

    files = run(["dpkg-deb", "-c", deb])
    for path in ("./usr/bin/contactd", "./usr/bin/contactctl",
                 "./usr/lib/contactd/plugins/contacts.so",
                 "./usr/lib/systemd/system/contactd.service",
                 "./usr/share/man/man1/contactd.1.gz",
                 "./usr/share/man/man1/contactctl.1.gz",
                 "./usr/share/doc/contactd/copyright",
                 "./usr/share/doc/contactd/changelog.Debian.gz"):
        check(f" {path}\n" in files, f"{path} not in the package:\n{files}")
    check("/usr/local" not in files and "/build" not in files,
          "the package holds build or /usr/local paths")

    control = work.sub("control")
    run(["dpkg-deb", "-e", deb, control])
    for script in ("postinst", "postrm"):
        path = os.path.join(control, script)
        check(os.access(path, os.X_OK), f"{script} missing or not executable")
        run(["sh", "-n", path])
    with open(os.path.join(control, "postinst")) as f:
        text = f.read()
    check("adduser --system" in text and "contactd" in text, "postinst user")

    root = work.sub("root")
    run(["dpkg", "-x", deb, root])
    with gzip.open(os.path.join(root, "usr/share/doc/contactd/"
                                      "changelog.Debian.gz"), "rt") as f:
        first = f.readline()
    check(first.startswith(f"contactd ({args.version}-1) "),
          f"changelog's top entry is not {args.version}-1: {first!r}")
    with open(os.path.join(root, "usr/lib/systemd/system/"
                                 "contactd.service")) as f:
        unit = f.read()
    check("ExecStart=/usr/bin/contactd\n" in unit,
          "the package's unit does not run /usr/bin/contactd")
    exe = os.path.join(root, "usr", "bin", "contactd")
    check(args.version in run([exe, "--version"]), "contactd --version")
    check(args.version in run([os.path.join(root, "usr", "bin", "contactctl"),
                               "--version"]), "contactctl --version")
    serve_healthz(exe, work.sub("run-deb"),
                  os.path.join(root, "usr", "lib", "contactd", "plugins"))

    if shutil.which("lintian") is None:
        raise AssertionError("lintian is not installed (tools/deps.sh)")
    r = subprocess.run(["lintian", "--no-tag-display-limit", deb],
                       capture_output=True, timeout=300)
    report = r.stdout.decode(errors="replace")
    errors = [l for l in report.splitlines() if l.startswith("E:")]
    check(not errors, "lintian errors:\n" + report)
    print(report.strip() or "lintian: clean", flush=True)


def test_maintainer_scripts_make_and_remove_the_user():
    """postinst configure (twice: it is idempotent) and postrm purge, run
    in a mount namespace whose /etc is a copy, so the machine's users stay
    as they are. Needs root and unshare(1)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("skipped: needs root and unshare", flush=True)
        return
    scripts = os.path.join(args.source, "packaging", "debian")
    etc = os.path.join(work.sub("etc"), "etc")
    run(["cp", "-a", "/etc", etc])
    script = f"""
set -e
mount --bind {etc} /etc
sh {scripts}/postinst configure
sh {scripts}/postinst configure
getent passwd contactd
getent group contactd
sh {scripts}/postrm purge
if getent passwd contactd; then echo user-left; fi
if getent group contactd; then echo group-left; fi
"""
    out = run(["unshare", "-m", "sh", "-c", script], timeout=120)
    lines = out.splitlines()
    check(len(lines) >= 2 and lines[0].startswith("contactd:") and
          ":/var/lib/contactd:/usr/sbin/nologin" in lines[0],
          f"postinst made no system user: {out!r}")
    uid = int(lines[0].split(":")[2])
    check(uid < 1000, f"not a system user (uid {uid})")
    check(lines[1].startswith("contactd:"), f"no group: {out!r}")
    check("user-left" not in out and "group-left" not in out,
          f"postrm purge left the user or group: {out!r}")


TESTS = [(name, fn) for name, fn in sorted(globals().items())
         if name.startswith("test_") and callable(fn)]

if __name__ == "__main__":
    try:
        status = run_tests(TESTS, args)
    finally:
        work.cleanup()
    sys.exit(status)
