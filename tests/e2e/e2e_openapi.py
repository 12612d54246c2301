"""e2e_openapi.py: the OpenAPI document, checked by a real validator and
used by a generated client, against a running contactd.

- @redocly/cli lint, with the rules of plugins/openapi/redocly.yaml, passes
  on the source file and on the document a server serves, and fails on a
  document with real errors (so a passing lint means something).
- The served document is the source with its server filled in from the
  request's host (HTTP/1.1 Host, HTTP/2 :authority), https on a TLS
  listener; a host that is no host name or address leaves the relative "/".
- The contact's rules as patterns and lengths (email, phone, first_name)
  accept exactly the values the server accepts, at and past each limit.
- Every documented path exists, with exactly the documented methods: the
  server's 405 for a method no path takes lists in allow what it serves.
- openapi-typescript generates types from the served document, tsc checks
  openapi_client.mts against them (and refuses a program that sends what
  the document forbids), and node runs it against the server: create, get,
  search, edit, delete and error bodies through openapi-fetch, every JSON
  answer checked against its documented schema with ajv.

The npm packages are tests/npm's, installed by tools/deps.sh (npm ci).
"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (Fail, Server, Workdir, check, check_eq,  # noqa: E402
                     curl, make_cert, parse_args, run_and_stop)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NPM = os.path.join(ROOT, "tests", "npm")
BIN = os.path.join(NPM, "node_modules", ".bin")
SOURCE = os.path.join(ROOT, "plugins", "openapi", "openapi.json")
RULES = os.path.join(ROOT, "plugins", "openapi", "redocly.yaml")
CLIENT = os.path.join(HERE, "openapi_client.mts")
# No telemetry, no update check: the tools run offline.
NPM_ENV = dict(os.environ, REDOCLY_TELEMETRY="off",
               REDOCLY_SUPPRESS_UPDATE_NOTICE="true", NO_UPDATE_NOTIFIER="1")

args = parse_args()
for tool in ("redocly", "openapi-typescript", "tsc"):
    if not os.access(os.path.join(BIN, tool), os.X_OK):
        print(f"FAIL {tool} is not installed in {NPM}: run tools/deps.sh")
        sys.exit(1)
if shutil.which("node") is None:
    print("FAIL node is not installed: run tools/deps.sh")
    sys.exit(1)

work = Workdir(args.keep)
data = work.sub("data")
server = Server(args.contactd, data, args.plugins).start()
KEY = server.key
HOSTPORT = server.url.split("://", 1)[1]
with open(SOURCE, encoding="utf-8") as f:
    SOURCE_DOC = json.load(f)


def run(cmd, timeout=600, cwd=None):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=cwd,
                       env=NPM_ENV, stdin=subprocess.DEVNULL)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def lint(path):
    return run([os.path.join(BIN, "redocly"), "lint", "--config", RULES,
                path])


def served(proto="h1", host=None):
    hdrs = [f"host: {host}"] if host is not None else []
    r = curl(server.url + "/openapi.json", proto, headers=hdrs)
    check_eq(r.status, 200, "GET /openapi.json")
    check_eq(r.header("content-type"), "application/json", "content-type")
    return r.json()


def save(doc, name):
    path = os.path.join(work.path, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
    return path


def test_lint_source():
    rc, out = lint(SOURCE)
    check(rc == 0, f"redocly lint {SOURCE}:\n{out}")


def test_lint_fails_on_real_errors():
    doc = json.loads(json.dumps(SOURCE_DOC))
    del doc["info"]["license"]
    op = doc["paths"]["/contacts/{id}"]["get"]
    op["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/NoSuchSchema"}
    del doc["paths"]["/healthz"]["get"]["tags"]
    rc, out = lint(save(doc, "broken.json"))
    check(rc != 0, f"redocly lint passed a broken document:\n{out}")
    for rule in ("info-license", "no-unresolved-refs",
                 "operation-tag-defined"):
        check(rule in out, f"lint did not report {rule}:\n{out}")


def test_servers_from_host():
    for proto in ("h1", "h2c"):
        doc = served(proto)
        check_eq(doc["servers"][0]["url"], f"http://{HOSTPORT}",
                 f"servers over {proto}")
    check_eq(served(host="contacts.example.com:8443")["servers"][0]["url"],
             "http://contacts.example.com:8443", "a host name")
    check_eq(served(host="[::1]:9000")["servers"][0]["url"],
             "http://[::1]:9000", "an IPv6 address")
    for hostile in ('evil.com/","x":"', "evil.com:99999", "a b",
                    "user@evil.com", "evil.com/path", "-evil.com", "1.2.3"):
        doc = served(host=hostile)
        check_eq(doc["servers"], SOURCE_DOC["servers"], f"host {hostile!r}")
    # On a TLS listener the scheme is https.
    tls_server = Server(args.contactd, work.sub("data-tls"), args.plugins,
                        tls=make_cert(work)).start()
    try:
        for proto in ("tls-h1", "tls-h2"):
            r = curl(tls_server.url + "/openapi.json", proto)
            check_eq(r.status, 200, f"GET /openapi.json over {proto}")
            check_eq(r.json()["servers"][0]["url"], tls_server.url,
                     f"servers over {proto}")
        check(tls_server.url.startswith("https://"), tls_server.url)
    finally:
        check_eq(tls_server.stop(), 0, "the TLS server's exit status")
    # Apart from its server, the served document is the source.
    doc = served()
    doc["servers"] = SOURCE_DOC["servers"]
    check(doc == SOURCE_DOC, "the served document differs from openapi.json")


def test_lint_served():
    rc, out = lint(save(served(), "served.json"))
    check(rc == 0, f"redocly lint of the served document:\n{out}")


def schema_accepts(schema, value):
    """What a validator would say of value, for the few keywords the
    contact's fields use (type, oneOf, pattern, lengths, bounds)."""
    if "oneOf" in schema:
        return sum(schema_accepts(s, value) for s in schema["oneOf"]) == 1
    t = schema.get("type")
    if t == "null":
        return value is None
    if t == "integer":
        return (isinstance(value, int) and
                schema.get("minimum", value) <= value <=
                schema.get("maximum", value))
    if t == "string":
        return (isinstance(value, str) and
                schema.get("minLength", 0) <= len(value) <=
                schema.get("maxLength", len(value)) and
                ("pattern" not in schema or
                 re.search(schema["pattern"], value) is not None))
    raise Fail(f"schema keyword not handled here: {schema}")


EMAILS = ["a@b.c", "  b@b.c\t", "a@b", "@b.c", "c@.b.c", "d@b.c.", "e@@b.c",
          "f g@c.d", "h@b..c", "i\t@b.c", "\u00e4@\u00fc.de", "j@b.c\u00a0",
          "\u3000k@b.c", "l\u00a0m@c.d", "n@b.c\u0001", "o\u200bp@c.d",
          "q\ufeff@c.d", "r@b.c\u0085", "s\u0085t@c.d", "u@b@c.d", "v@b c.d",
          "x" * 248 + "1@b.cc", "x" * 249 + "2@b.cc", ""]
PHONES = ["123", "12", "+1 (234) 567-890", "1" * 20, "1" * 21, "12a34",
          "  456  ", "", "   ", "+++", "1.2.3", "\t789\n", "1-2", "0" * 3,
          " " * 250 + "12345", "1 " * 127 + "1", "1 " * 128, 100, 99, 0,
          12345678901234567890, 123456789012345678901, None]
NAMES = ["A", "  B  ", "", "   ", "\u00a0", "\u200b", "n" * 256, "n" * 257]


def test_patterns_agree_with_server():
    props = SOURCE_DOC["components"]["schemas"]["ContactInput"]["properties"]
    seen = [0]

    def server_accepts(field, value):
        seen[0] += 1
        body = {"first_name": "P", "email": f"p{seen[0]}.{os.getpid()}@example.com"}
        body[field] = value
        r = curl(server.url + "/contacts", method="POST",
                 headers=[f"x-api-key: {KEY}"], data=json.dumps(body))
        if r.status in (200, 409):
            return True
        check_eq(r.status, 400, f"{field} {value!r}: {r.body[:200]!r}")
        check_eq(r.json()["error"].get("field"), field, f"{field} {value!r}")
        return False

    for field, values in (("email", EMAILS), ("phone", PHONES),
                          ("first_name", NAMES)):
        for v in values:
            want = server_accepts(field, v)
            got = schema_accepts(props[field], v)
            check(got == want, f"{field} {v!r}: the server "
                  f"{'takes' if want else 'refuses'} it, the document "
                  f"{'takes' if got else 'refuses'} it")


def test_documented_paths_exist():
    """OPTIONS is no documented method of any path (PUT is, since
    /admin/accounts/{name}/moving): the server's 405 to it lists in allow
    every method it has for the path, which must be the documented ones
    (HEAD wherever GET is)."""
    have_admin = os.path.exists(os.path.join(args.plugins, "admin.so"))
    paths = SOURCE_DOC["paths"]

    def matches(template, concrete):
        t, c = template.split("/"), concrete.split("/")
        return len(t) == len(c) and all(
            a == b or (a.startswith("{") and a.endswith("}"))
            for a, b in zip(t, c))

    for path in paths:
        if path.startswith("/admin") and not have_admin:
            continue
        concrete = path.replace("{id}", "12345678901234567890")
        concrete = concrete.replace("{key_id}", "k").replace("{name}", "n")
        # allow names the methods of every pattern the path matches
        # (/contacts/query is also /contacts/{id}).
        methods = {m.upper() for p, item in paths.items()
                   if matches(p, concrete) for m in item if m != "parameters"}
        check("OPTIONS" not in methods, f"{path} documents OPTIONS")
        if "GET" in methods:
            methods.add("HEAD")
        r = curl(server.url + concrete, method="OPTIONS", data="{}")
        check_eq(r.status, 405, f"OPTIONS {concrete}")
        allow = {m.strip() for m in (r.header("allow") or "").split(",")}
        check_eq(sorted(allow), sorted(methods), f"allow of {path}")
        check_eq(r.json()["error"]["code"], "method_not_allowed",
                 f"405 code of {path}")


def client_dir():
    d = work.sub("client")
    os.symlink(os.path.join(NPM, "node_modules"),
               os.path.join(d, "node_modules"))
    doc = save(served(), "client-openapi.json")
    rc, out = run([os.path.join(BIN, "openapi-typescript"), doc, "-o",
                   os.path.join(d, "api.d.ts")])
    check(rc == 0, f"openapi-typescript:\n{out}")
    return d


def tsconfig(d, program):
    with open(os.path.join(d, "tsconfig.json"), "w") as f:
        json.dump({"compilerOptions": {
            "target": "es2022", "module": "nodenext",
            "moduleResolution": "nodenext", "strict": True,
            "noUncheckedIndexedAccess": True, "types": [],
            "outDir": "out"}, "files": [program, "api.d.ts"]}, f)


def test_typed_client():
    d = client_dir()
    shutil.copy(CLIENT, d)
    tsconfig(d, os.path.basename(CLIENT))
    rc, out = run([os.path.join(BIN, "tsc"), "-p", d])
    check(rc == 0, f"tsc: the client disagrees with the document:\n{out}")
    p = subprocess.run(
        ["node", os.path.join(d, "out", "openapi_client.mjs")],
        capture_output=True, timeout=300, stdin=subprocess.DEVNULL,
        env=dict(NPM_ENV, CONTACTD_URL=server.url, CONTACTD_KEY=KEY))
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check(p.returncode == 0, f"the typed client failed:\n{out}")
    check("every step answered as documented" in out, out)


# Requests the document forbids, each of which tsc must refuse.
WRONG = """import createClient from "openapi-fetch";
import type { paths } from "./api.js";
const client = createClient<paths>({ baseUrl: "http://127.0.0.1:1" });
export async function wrong() {
  await client.POST("/contacts/batch", { body: { contacts: [{ first_name: "x" }] } });
  await client.PATCH("/contacts/{id}", { params: { path: { id: "1" } }, body: { first_name: 5 } });
  await client.GET("/contacts", { params: { query: { searchby: "nickname", search: "x" } } });
  const r = await client.GET("/contacts/{id}", { params: { path: { id: "1" } } });
  if (r.error) { const c: "duplicate_email" = r.error.error.code; return c; }
  return r.data?.nickname;
}
"""


def test_types_refuse_a_wrong_program():
    d = client_dir()
    with open(os.path.join(d, "wrong.mts"), "w") as f:
        f.write(WRONG)
    tsconfig(d, "wrong.mts")
    rc, out = run([os.path.join(BIN, "tsc"), "--noEmit", "-p", d])
    check(rc != 0, "tsc accepted requests the document forbids")
    # One error a line of wrong(): a missing email, a name that is no
    # string, an unknown searchby, a 404's code that is no duplicate_email, a member
    # the contact does not have.
    for line in (5, 6, 7, 9, 10):
        check(f"wrong.mts({line}," in out, f"tsc let line {line} pass:\n{out}")


TESTS = [
    ("lint_source", test_lint_source),
    ("lint_fails_on_real_errors", test_lint_fails_on_real_errors),
    ("servers_from_host", test_servers_from_host),
    ("lint_served", test_lint_served),
    ("patterns_agree_with_server", test_patterns_agree_with_server),
    ("documented_paths_exist", test_documented_paths_exist),
    ("typed_client", test_typed_client),
    ("types_refuse_a_wrong_program", test_types_refuse_a_wrong_program),
]

sys.exit(run_and_stop(TESTS, args, server, work))
