"""cluster_roles.py: what each role answers.

- GET /healthz/primary: 200 {"role": "primary"} on a primary, 503
  not_primary with the role on a standby and on a fenced primary;
- a standby refuses writes (503 standby) and serves reads of what it took;
- --standby-ack required with the standby gone: a write waits
  --standby-timeout and gets 503 standby_unavailable (retry-after), new
  writes are refused at once, and writes succeed again once the standby is
  back; the write answered 503 is not lost (its idempotent retry answers
  it);
- the lag in GET /admin/stats and /metrics;
- GET /admin/replication: a bad position is 400, one past the log 410;
  POST /admin/replication/ack: a bad body 400;
- the primary restarted: the standby reconnects (and says so) and goes on;
- POST /admin/fence: the primary refuses writes (503 fenced), also after a
  restart; contactctl promote makes the standby the primary.
"""
import json
import sys
import time

from cluster_lib import (Fail, Pair, check, cleanup, ctl, deadline,
                         parse_args, tmpdir, wait_for, create_body)

JSON = {"content-type": "application/json"}


def create(c, tag, idem=None):
    h = dict(JSON)
    if idem:
        h["idempotency-key"] = idem
    return c.request("POST", "/contacts", create_body(tag), headers=h)


def err_code(body):
    return json.loads(body)["error"]["code"]


def main():
    args = parse_args()
    deadline(170)
    work = tmpdir(args)
    pair = None
    try:
        pair = Pair(args, work, "roles", ack="required", timeout_ms=1000).make()
        p, s = pair.primary, pair.standby
        pc, sc = p.client(), s.client()

        st, _, b = pc.request("GET", "/healthz/primary", key=False)
        check(st == 200 and json.loads(b) == {"role": "primary"},
              f"primary's /healthz/primary: {st} {b!r}")
        st, _, b = sc.request("GET", "/healthz/primary", key=False)
        check(st == 503 and json.loads(b)["role"] == "standby" and
              err_code(b) == "not_primary",
              f"standby's /healthz/primary: {st} {b!r}")

        st, _, b = create(pc, "one")
        check(st == 200, f"create on the primary: {st} {b!r}")
        cid = json.loads(b)["id"]
        # Required: answered only once the standby has it, so it is there.
        st, _, b = sc.request("GET", f"/contacts/{cid}")
        check(st == 200, f"the standby lacks an acknowledged write: {st}")
        st, h, b = create(sc, "on-standby")
        check(st == 503 and err_code(b) == "standby" and "retry-after" in h,
              f"a write on the standby: {st} {b!r}")

        # The standby gone: the write waits the timeout, then 503.
        check(s.stop() == 0, "standby did not stop cleanly")
        t0 = time.monotonic()
        st, h, b = create(pc, "while-gone", idem="while-gone")
        waited = time.monotonic() - t0
        check(st == 503 and err_code(b) == "standby_unavailable" and
              h.get("retry-after") == "1",
              f"a write with the standby gone: {st} {h} {b!r}")
        check(waited >= 0.95, f"answered after {waited:.3f}s, before the "
              "1000 ms timeout")
        t0 = time.monotonic()
        st, _, b = create(pc, "refused")
        check(st == 503 and err_code(b) == "standby_unavailable" and
              time.monotonic() - t0 < 0.9,
              f"the next write is refused at once: {st} {b!r}")
        ac = pair.admin_client(p)
        st, _, b = ac.request("GET", "/admin/stats")
        r = json.loads(b)["replication"]
        check(r["standby_unavailable"] and r["lag_records"] >= 1 and
              r["standby_ack"] == "required",
              f"stats while the standby is gone: {r}")
        st, _, m = ac.request("GET", "/metrics")
        check(b"contactd_standby_unavailable 1" in m and
              b"contactd_standby_lag_records" in m,
              "the lag metrics in /metrics")

        # Back: writes succeed again, and the one answered 503 was kept.
        pair.start_standby()
        s, sc = pair.standby, pair.standby.client()
        wait_for("writes again", lambda: create(pc, f"back-{time.time()}")[0]
                 == 200, 10)
        st, _, b = create(pc, "while-gone", idem="while-gone")
        check(st == 200, f"the retry of the write answered 503: {st} {b!r}")
        gone_id = json.loads(b)["id"]
        st, _, b = sc.request("GET", f"/contacts/{gone_id}")
        check(st == 200, "the write answered 503 is on the standby")

        # The primary restarted on the same port: the standby says it lost
        # it, reconnects with its back-off, and goes on after the primary's
        # own last record (the seal of its close).
        port = p.port
        pc.close()
        check(p.stop() == 0, "primary did not stop cleanly")
        pair.primary = p = type(p)(args.contactd, args.plugins, pair.pdata,
                                   pair.primary_args() +
                                   ["--listen", f"127.0.0.1:{port}"]).start()
        pc = p.client()
        wait_for("a write after the primary's restart",
                 lambda: create(pc, f"restart-{time.time()}")[0] == 200, 10)
        st, _, b = create(pc, "after-restart")
        check(st == 200, f"a write after the restart: {st} {b!r}")
        rid = json.loads(b)["id"]
        st, _, b = sc.request("GET", f"/contacts/{rid}")
        check(st == 200, "the standby has the write made after the restart")
        log = "\n".join(s.lines)
        check("follow: lost the primary" in log and "reconnecting to" in log,
              "the standby's log says it lost the primary and reconnects")
        ac = pair.admin_client(p)

        # The replication routes refuse bad input.
        st, _, b = ac.request("GET", "/admin/replication?after=x")
        check(st == 400, f"after=x: {st} {b!r}")
        st, _, b = ac.request("GET", "/admin/replication?after=999999")
        check(st == 410 and err_code(b) == "replication_gone",
              f"after past the log: {st} {b!r}")
        for body in ("", "{}", '{"seq": -1}', '{"seq": "1"}', "[1]"):
            st, _, b = ac.request("POST", "/admin/replication/ack", body,
                                  headers=JSON)
            check(st == 400, f"ack {body!r}: {st} {b!r}")
        st, _, b = ac.request("POST", "/admin/replication/ack",
                              '{"seq": 99999999}', headers=JSON)
        check(st == 400, f"an ack past the log's end: {st} {b!r}")
        st, _, b = pc.request("GET", "/admin/replication?after=0")
        check(st == 403, f"a read-write key on /admin/replication: {st}")

        # Fence the primary: refuses writes, also after a restart.
        st, _, b = ac.request("POST", "/admin/fence")
        check(st == 200 and json.loads(b)["role"] == "fenced",
              f"fence: {st} {b!r}")
        st, _, b = create(pc, "fenced")
        check(st == 503 and err_code(b) == "fenced", f"fenced: {st} {b!r}")
        st, _, b = pc.request("GET", "/healthz/primary", key=False)
        check(st == 503 and json.loads(b)["role"] == "fenced",
              f"fenced /healthz/primary: {st} {b!r}")
        pc.close()
        ac.close()
        check(p.stop() == 0, "fenced primary did not stop cleanly")
        pair.start_primary()
        p = pair.primary
        pc = p.client()
        st, _, b = create(pc, "fenced-after-restart")
        check(st == 503 and err_code(b) == "fenced",
              f"fenced after a restart: {st} {b!r}")

        # Promote the standby.
        rc, out, err = ctl(args, "promote", "--url", pair.url(s),
                           "--admin-key-file", pair.keyfile)
        check(rc == 0 and json.loads(out)["role"] == "primary",
              f"contactctl promote: {rc} {out} {err}")
        st, _, b = sc.request("GET", "/healthz/primary", key=False)
        check(st == 200, f"promoted /healthz/primary: {st} {b!r}")
        st, _, b = create(sc, "after-promotion")
        check(st == 200, f"a write on the promoted standby: {st} {b!r}")
        rc, out, err = ctl(args, "promote", "--url", pair.url(p),
                           "--admin-key-file", pair.keyfile)
        check(rc == 1 and "fenced" in err,
              f"promoting a fenced primary: {rc} {out} {err}")
        rc, out, err = ctl(args, "promote", "--url", pair.url(p))
        check(rc != 0, "promote without a key")
        print("1 passed, 0 failed")
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        if pair:
            for srv in (pair.primary, pair.standby):
                if srv:
                    print(srv.stderr(), file=sys.stderr)
        sys.exit(1)
    finally:
        if pair:
            pair.stop()
        cleanup(args, work)


if __name__ == "__main__":
    main()
