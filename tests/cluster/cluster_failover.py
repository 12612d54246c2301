"""cluster_failover.py: a primary and a warm standby under 32 writers, the
primary killed with -9 at a random moment, the standby promoted
(contactctl promote).

--ack required (zero loss): every write the primary acknowledged (201) is
on the promoted standby; contactctl verify is clean on its directory;
creates after the promotion get ids above every id seen and none handed
out twice. --ack async: the same checks, except that acknowledged writes
missing on the standby are counted and reported (the loss window), not
refused. Prints the failover time of each round (kill to the first 201 on
the promoted standby).
"""
import json
import random
import sys
import time

from cluster_lib import (Fail, Pair, Writers, check, cleanup, ctl, deadline,
                         parse_args, tmpdir, wait_for)

import argparse


def one_round(args, work, n, ack):
    pair = Pair(args, work, f"{ack}-{n}", ack=ack, timeout_ms=2000).make()
    try:
        p, s = pair.primary, pair.standby
        w = Writers(p, 32, f"r{n}").start()
        time.sleep(random.uniform(0.4, 1.2))
        p.kill()
        t_kill = time.monotonic()
        w.stop()
        rc, out, err = ctl(args, "promote", "--url", pair.url(s),
                           "--admin-key-file", pair.keyfile)
        check(rc == 0, f"promote: {err}")
        check(json.loads(out)["role"] == "primary", f"promote said {out}")
        c = s.client()
        # The first write on the promoted standby.
        def first():
            st, _, body = c.request("POST", "/contacts", '{"first_name": '
                                    '"After", "email": "first-%d@x.example"}'
                                    % n, headers={"content-type":
                                                  "application/json"})
            return body if st in (200, 201) else None
        body = wait_for("a write on the promoted standby", first, 10)
        failover_ms = (time.monotonic() - t_kill) * 1000
        first_id = int(json.loads(body)["id"])

        acked = w.acked
        check(len(acked) > 0, f"round {n}: no write was acknowledged "
              f"({w.statuses})")
        missing = []
        for cid, tag in acked.items():
            st, _, b = c.request("GET", f"/contacts/{cid}")
            if st != 200:
                missing.append(cid)
            else:
                check(json.loads(b).get("last_name") == tag,
                      f"contact {cid} is not the write acknowledged for it")
        top = max(int(i) for i in acked)
        check(first_id > top, f"id {first_id} after promotion is not above "
              f"every id seen ({top})")
        ids = {first_id}
        for i in range(20):
            st, _, b = c.request("POST", "/contacts",
                                 '{"first_name": "New", "email": '
                                 '"new-%d-%d@x.example"}' % (n, i),
                                 headers={"content-type": "application/json"})
            check(st in (200, 201), f"create after promotion: {st} {b!r}")
            nid = int(json.loads(b)["id"])
            check(nid not in ids and str(nid) not in acked and nid > top,
                  f"id {nid} handed out twice")
            ids.add(nid)
        c.close()
        check(s.stop() == 0, "the promoted standby did not stop cleanly")
        rc, out, err = ctl(args, "verify", data=pair.sdata)
        check(rc == 0, f"verify on the promoted standby: {out}{err}")
        if ack == "required":
            check(not missing, f"round {n}: {len(missing)} acknowledged "
                  f"writes missing on the promoted standby: {missing[:5]}")
        print(f"{ack} round {n}: {len(acked)} acknowledged writes, "
              f"{len(missing)} missing on the standby, statuses "
              f"{w.statuses}, failover {failover_ms:.0f} ms")
        return len(acked), len(missing), failover_ms
    finally:
        pair.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ack", choices=["required", "async"], required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--contactd", required=True)
    ap.add_argument("--contactctl", required=True)
    ap.add_argument("--plugins", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    deadline(170)
    work = tmpdir(args)
    try:
        total = lost = 0
        for n in range(args.rounds):
            a, m, _ = one_round(args, work, n, args.ack)
            total += a
            lost += m
        if args.ack == "async":
            print(f"async loss window: {lost} of {total} acknowledged writes "
                  f"missing on the promoted standby over {args.rounds} rounds")
        print(f"{args.rounds} passed, 0 failed")
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        cleanup(args, work)


if __name__ == "__main__":
    main()
