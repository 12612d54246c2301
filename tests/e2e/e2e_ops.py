#!/usr/bin/env python3
"""e2e_ops.py: contactd as an operator runs it.

- SIGTERM waits for requests whose bodies are still arriving (HTTP/1.1 with
  a content-length, HTTP/2 streamed by curl) and answers them; new
  connections are refused meanwhile; --shutdown-timeout bounds the wait,
  after which the rest is dropped with a log line and the process exits.
- Every option from a CONTACTD_<OPTION> variable, lists for repeatable
  options, the command line winning, a bad value naming the variable,
  $STATE_DIRECTORY as the default data directory.
- sd_notify: READY=1 once listening, STOPPING=1 at shutdown, STATUS=
  lines, read from a datagram socket of the test's own as NOTIFY_SOCKET.
- The default plugin directory: the build's own binary loads the build's
  plugins; a copy of it elsewhere loads the directory beside it, never the
  build tree's.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (Fail, Server, Workdir, check, check_eq, curl,  # noqa: E402
                     parse_args, run_contactd, run_tests)

args = parse_args()
work = Workdir(args.keep)
plugins = work.plugin_dir("probe", args.probe)


def host_port(server):
    host, port = server.url[len("http://"):].rsplit(":", 1)
    return host, int(port)


def refused(server):
    c = socket.socket()
    try:
        return c.connect_ex(host_port(server)) != 0
    finally:
        c.close()


def read_response(sock, timeout=10):
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            chunks.append(b)
    except (socket.timeout, ConnectionResetError):
        pass
    return b"".join(chunks)


def slow_post_head(server, length):
    c = socket.create_connection(host_port(server), timeout=10)
    c.sendall(b"POST /probe/body HTTP/1.1\r\nhost: t\r\n"
              b"content-type: application/octet-stream\r\n"
              b"content-length: %d\r\n\r\n" % length)
    return c


def wait_exit(server, timeout):
    try:
        return server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        raise Fail(f"contactd did not exit within {timeout} s")


def test_sigterm_answers_a_body_still_arriving_http1():
    s = Server(args.contactd, work.sub("data"), plugins).start()
    c = slow_post_head(s, 2000)
    c.sendall(b"a" * 1000)
    time.sleep(0.3)
    s.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    check(refused(s), "a new connection was accepted while stopping")
    check(s.proc.poll() is None, "exited with a body still arriving")
    c.sendall(b"b" * 1000)
    raw = read_response(c)
    c.close()
    check(raw.startswith(b"HTTP/1.1 200"), f"answer: {raw[:200]!r}")
    check(b'"body_len":2000' in raw.replace(b" ", b""),
          f"the whole body reached the handler: {raw[-200:]!r}")
    check(b"connection: close" in raw.lower(), "keep-alive while stopping")
    check_eq(wait_exit(s, 20), 0, "exit status")
    check(any("store closed" in l for l in s.lines), "store not closed")


def test_sigterm_answers_a_body_still_arriving_http2():
    s = Server(args.contactd, work.sub("data"), plugins).start()
    # curl streams what it reads from its standard input as DATA frames.
    p = subprocess.Popen(
        ["curl", "-sS", "--http2-prior-knowledge", "-X", "POST", "-T", "-",
         "-H", "content-type: application/octet-stream", "-o", "-",
         "-w", "\n%{http_code}", "--max-time", "20", s.url + "/probe/body"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(b"a" * 1000)
    p.stdin.flush()
    time.sleep(0.5)
    s.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    check(s.proc.poll() is None, "exited with an HTTP/2 body still arriving")
    p.stdin.write(b"b" * 1000)
    p.stdin.close()
    p.wait(30)
    out, err = p.stdout.read(), p.stderr.read()
    check(out.endswith(b"\n200"), f"curl: {out[-300:]!r} {err!r}")
    check(b'"body_len":2000' in out.replace(b" ", b""), f"body: {out!r}")
    check_eq(wait_exit(s, 20), 0, "exit status")


def test_shutdown_timeout_bounds_the_wait():
    for timeout in (2, 0):
        s = Server(args.contactd, work.sub("data"), plugins,
                   args=["--shutdown-timeout", str(timeout)]).start()
        c = slow_post_head(s, 2000)
        c.sendall(b"a" * 10)
        time.sleep(0.3)
        t0 = time.monotonic()
        s.send_signal(signal.SIGTERM)
        rc = wait_exit(s, 30)
        took = time.monotonic() - t0
        check_eq(rc, 0, f"exit status (timeout {timeout})")
        check(timeout <= took < timeout + 3,
              f"--shutdown-timeout {timeout}: exited after {took:.2f} s")
        time.sleep(0.1)
        check(any(f"--shutdown-timeout {timeout} s is over; dropping 1 "
                  "unfinished" in l for l in s.lines),
              f"no log line of the dropped request:\n{s.stderr()}")
        check_eq(read_response(c, 5), b"", "what the dropped client got")
        c.close()


def test_idle_keep_alive_connection_does_not_hold_the_stop():
    s = Server(args.contactd, work.sub("data"), plugins).start()
    c = socket.create_connection(host_port(s), timeout=10)
    c.sendall(b"GET /probe/echo/x HTTP/1.1\r\nhost: t\r\n\r\n")
    c.settimeout(5)
    check(c.recv(65536).startswith(b"HTTP/1.1 200"), "first answer")
    t0 = time.monotonic()
    s.send_signal(signal.SIGTERM)
    check_eq(wait_exit(s, 20), 0, "exit status")
    took = time.monotonic() - t0
    check(took < 3, f"an idle connection held the stop {took:.1f} s")
    check_eq(read_response(c, 5), b"", "the idle connection's end")
    c.close()


def server_env(data_env=True, **env):
    """A server whose options all come from the environment."""
    s = Server(args.contactd, "", plugins, env=env)
    s.cmd = [args.contactd]
    s.data_dir = env.get("CONTACTD_DATA") or env.get("STATE_DIRECTORY", "")
    return s


def test_every_option_from_the_environment():
    d = work.sub("env")
    data, log = os.path.join(d, "data"), os.path.join(d, "access.log")
    s = server_env(CONTACTD_DATA=data, CONTACTD_PLUGINS=plugins,
                   CONTACTD_LISTEN="127.0.0.1:0,127.0.0.1:0",
                   CONTACTD_THREADS="1", CONTACTD_ACCESS_LOG=log,
                   CONTACTD_SHUTDOWN_TIMEOUT="5",
                   CONTACTD_WEBHOOK_ALLOW="a.example,b.example:8443",
                   CONTACTD_TLS_CERT="").start()  # empty: unset
    check_eq(len(s.urls), 2, "listeners from CONTACTD_LISTEN's list")
    for url in s.urls:
        check_eq(curl(url + "/probe/echo/x").status, 200, url)
    check(os.path.exists(os.path.join(data, "default.key")),
          "CONTACTD_DATA not used")
    check_eq(s.stop(), 0, "exit status")
    check(any("at most 5 s" in l for l in s.lines),
          "CONTACTD_SHUTDOWN_TIMEOUT not used:\n" + s.stderr())
    with open(log) as f:
        check("/probe/echo/x" in f.read(), "CONTACTD_ACCESS_LOG not used")


def test_command_line_wins_over_the_environment():
    d = work.sub("env-wins")
    s = Server(args.contactd, os.path.join(d, "cli"), plugins,
               env={"CONTACTD_DATA": os.path.join(d, "env"),
                    "CONTACTD_THREADS": "not-a-number",
                    "CONTACTD_LISTEN": "127.0.0.1:1"}).start()
    check_eq(curl(s.url + "/probe/echo/x").status, 200, "served")
    check(os.path.exists(os.path.join(d, "cli", "default.key")), "--data lost")
    check(not os.path.exists(os.path.join(d, "env")), "CONTACTD_DATA won")
    check_eq(s.stop(), 0, "exit status")


def test_bad_environment_value_names_the_variable():
    cases = [
        ({"CONTACTD_THREADS": "0"}, "CONTACTD_THREADS"),
        ({"CONTACTD_SHUTDOWN_TIMEOUT": "3601"}, "CONTACTD_SHUTDOWN_TIMEOUT"),
        ({"CONTACTD_LISTEN": "127.0.0.1:0,,127.0.0.1:0"}, "CONTACTD_LISTEN"),
        ({"CONTACTD_DURABILITY": "sometimes"}, "CONTACTD_DURABILITY"),
        ({"CONTACTD_TLS_CERT": "c.pem"}, "--tls-key"),
    ]
    data = work.sub("env-bad")
    for env, needle in cases:
        env = dict({"CONTACTD_LISTEN": "127.0.0.1:0"}, **env)
        rc, _, err = run_contactd(args.contactd, ["--plugins", plugins,
                                                  "--data", data], env=env)
        check_eq(rc, 2, f"exit status for {env}")
        check(needle in err and err.count("\n") == 1,
              f"{env}: message {err!r} does not name {needle}")


def test_unknown_variable_is_a_warning():
    d = work.sub("env-unknown")
    s = Server(args.contactd, d, plugins,
               env={"CONTACTD_NO_SUCH_OPTION": "1"}).start()
    check(any("CONTACTD_NO_SUCH_OPTION names no option" in l
              for l in s.lines), "no warning:\n" + s.stderr())
    check_eq(s.stop(), 0, "exit status")


def test_state_directory_is_the_default_data_directory():
    d = work.sub("state")
    state = os.path.join(d, "state")
    s = server_env(STATE_DIRECTORY=state + ":" + os.path.join(d, "other"),
                   CONTACTD_PLUGINS=plugins, CONTACTD_LISTEN="127.0.0.1:0")
    s.data_dir = state
    s.start()
    check(os.path.exists(os.path.join(state, "default.key")),
          "the store is not in $STATE_DIRECTORY:\n" + s.stderr())
    check(not os.path.exists(os.path.join(d, "other")), "second path used")
    check_eq(s.stop(), 0, "exit status")
    # --data and CONTACTD_DATA win over it.
    s = Server(args.contactd, os.path.join(d, "given"), plugins,
               env={"STATE_DIRECTORY": os.path.join(d, "unused")}).start()
    check_eq(s.stop(), 0, "exit status")
    check(os.path.exists(os.path.join(d, "given", "default.key")), "--data")
    check(not os.path.exists(os.path.join(d, "unused")), "STATE_DIRECTORY won")


def test_sd_notify_ready_stopping_status():
    d = work.sub("notify")
    path = os.path.join(d, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    got = []

    def until(word):
        while True:
            msg = sock.recv(4096).decode()
            got.append(msg)
            if word in msg.split("\n"):
                return msg

    try:
        s = Server(args.contactd, os.path.join(d, "data"), plugins,
                   env={"NOTIFY_SOCKET": path})
        s.start()
        ready = until("READY=1")
        check(any(l.startswith("STATUS=serving on http://127.0.0.1:")
                  for l in ready.split("\n")), f"READY without STATUS: {ready!r}")
        # Ready means listening: the URL in STATUS answers.
        url = [l for l in ready.split("\n") if l.startswith("STATUS=")][0]
        url = url.split()[2].rstrip(",")
        check_eq(curl(url + "/probe/echo/x").status, 200, "after READY=1")
        s.send_signal(signal.SIGTERM)
        stopping = until("STOPPING=1")
        check("STATUS=stopping" in stopping, f"STOPPING: {stopping!r}")
        check_eq(wait_exit(s, 20), 0, "exit status")
        rest = []
        sock.settimeout(0.5)
        try:
            while True:
                rest.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        check(any("closing the store" in m for m in rest),
              f"no STATUS while closing the store: {got + rest!r}")
    finally:
        sock.close()


def test_default_plugin_dir_is_the_build_trees_only_for_its_binary():
    # The build's binary loads the build's plugins without --plugins.
    rc, out, _ = run_contactd(args.contactd, ["--help"])
    check(os.path.realpath(args.plugins) in out,
          f"the build's binary does not default to {args.plugins}")
    # A copy elsewhere (as an installed one is) loads the directory beside
    # it, even though the build tree's exists.
    d = work.sub("copy")
    os.makedirs(os.path.join(d, "bin"))
    exe = os.path.join(d, "bin", "contactd")
    shutil.copy2(args.contactd, exe)
    mine = os.path.join(d, "lib", "contactd", "plugins")
    os.makedirs(mine)
    rc, out, _ = run_contactd(exe, ["--help"])
    check(mine in out and args.plugins not in out,
          f"a copy defaults to another plugin directory:\n{out}")
    os.symlink(args.probe, os.path.join(mine, "fe_probe.so"))
    s = Server(exe, os.path.join(d, "data"), plugins)
    s.cmd = [c for i, c in enumerate(s.cmd)
             if c != "--plugins" and (i == 0 or s.cmd[i - 1] != "--plugins")]
    s.start()
    check(any("plugin probe loaded" in l for l in s.lines) and
          not any("plugin contacts loaded" in l for l in s.lines),
          "the copy did not load its own plugins only:\n" + s.stderr())
    check_eq(curl(s.url + "/probe/echo/x").status, 200, "its plugin serves")
    check_eq(s.stop(), 0, "exit status")


TESTS = [(name, fn) for name, fn in sorted(globals().items())
         if name.startswith("test_") and callable(fn)]

if __name__ == "__main__":
    try:
        status = run_tests(TESTS, args)
    finally:
        work.cleanup()
    sys.exit(status)
