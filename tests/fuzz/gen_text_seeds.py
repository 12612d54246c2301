#!/usr/bin/env python3
"""gen_text_seeds.py: writes the hand-made seeds of the text fuzz targets.

Usage: python3 tests/fuzz/gen_text_seeds.py   (rewrites corpus/body,
corpus/request and corpus/query; files found by the fuzzer and added by hand,
named crash-* or regress-*, are left alone)

Each seed is a meaningful request of API.md, valid or at the edge of a rule:
the fuzzer mutates from there. A body seed starts with the byte that picks
the body kind (0 POST, 1 PATCH, 2 batch, 3 search, 4 DELETE, 5 upsert,
6 batch upsert); a request seed
is the text form fuzz_request.c reads.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

CREATE = '{"first_name":"José","last_name":"Müller","email":"jose@example.com","phone":"+1 (234) 567-890","company":"Example Inc.","job_title":"CTO","notes":"met at the fair"}'
MINIMAL = '{"first_name":"Ada","email":"ada@example.com"}'
EDIT = '{"contactID":"10000000000000000001","updateFields":{"email":"example@example.com","phone":1234567890}}'
EDIT2 = '{"contact_id":10000000000000000002,"update_fields":{"name":"Grace Brewster Hopper","company":null}}'
PATCH = '{"email":"new@example.com","notes":null,"name":"Ada King"}'
BATCH = ('{"contacts":[' + MINIMAL + ',{"first_name":"Bob","email":"ada@example.com"},'
         '{"first_name":"","email":"x"},42]}')
SEARCH = '{"searchby":"company","search":"Example Inc.","match":"prefix","limit":5,"cursor":null}'
DELETE = '{"contact_id":"10000000000000000003"}'
UPSERT = '{"email":"ADA@example.com","company":"Example Inc.","name":"Ada Lovelace"}'
BATCH_UPSERT = ('{"contacts":[' + UPSERT + ',{"email":"new@example.com","first_name":"New"},'
                '{"email":"new@example.com","phone":null},{"first_name":"no email"}]}')

BODIES = {
    "create": (0, CREATE), "create-minimal": (0, MINIMAL),
    "create-unicode-escapes": (0, '{"first_name":"\\u00c9mile \\ud83d\\ude00","email":"e@x.fr","phone":5551234}'),
    "create-unknown-field": (0, '{"first_name":"A","email":"a@b.co","fax":"1"}'),
    "create-duplicate-key": (0, '{"first_name":"A","first_name":"B","email":"a@b.co"}'),
    "create-nul": (0, '{"first_name":"A\\u0000B","email":"a@b.co"}'),
    "create-bad-utf8": (0, b'{"first_name":"\xc0\xaf","email":"a@b.co"}'),
    "create-nested": (0, '{"first_name":{"a":[1,2,{"b":null}]},"email":"a@b.co"}'),
    "create-number-phone": (0, '{"first_name":"A","email":"a@b.co","phone":1.5e3}'),
    "create-spaces": (0, '{"first_name":"  \\u00a0 Ann \\t","email":" ann@x.io "}'),
    "edit": (0, EDIT), "edit-name": (0, EDIT2),
    "edit-empty": (0, '{"contact_id":"10000000000000000001","update_fields":{}}'),
    "edit-bad-id": (0, '{"contactID":"123","updateFields":{"email":"a@b.co"}}'),
    "patch": (1, PATCH), "patch-clear-required": (1, '{"email":null}'),
    "batch": (2, BATCH), "batch-empty": (2, '{"contacts":[]}'),
    "search": (3, SEARCH), "search-number": (3, '{"searchby":"phone","search":1234567890}'),
    "search-empty": (3, ''), "delete": (4, DELETE), "delete-number": (4, '{"contactID":10000000000000000003}'),
    "not-json": (0, '{"first_name":'), "array": (0, '[1,2,3]'),
    "delete-purge": (4, '{"contact_id":"10000000000000000003","purge":true}'),
    "upsert": (5, UPSERT), "upsert-no-email": (5, '{"first_name":"A","version":2}'),
    "batch-upsert": (6, BATCH_UPSERT),
}

Q = "searchby=company&search=Example%20Inc."
QUERIES = {
    "search": Q, "plus-and-percent": "search=a+b%2Bc%zz%4&searchby=email&match=words",
    "empty-pieces": "&&a&=&b=&=c&", "cursor": "searchby=id&search=10000000000000000001&limit=1&cursor=AQAAAAAAAAAA",
    "utf8": "search=Jos%C3%A9&searchby=first_name", "truncated-escape": "a=%", "request-id": "abc-123_XYZ",
}

KEY = "x-api-key: ck_thisisnotarealkeyatallnotreal00000000000\n"
REQUESTS = {
    "create": "POST /contacts\ncontent-type: application/json\n" + KEY + "\n" + CREATE,
    "create-no-type": "POST /contacts\n\n" + MINIMAL,
    "edit": "POST /contacts\n\n" + EDIT,
    "batch": "POST /contacts/batch\n\n" + BATCH,
    "search": "GET /contacts?" + Q + "&match=prefix&limit=2\n\n",
    "search-body": "GET /contacts\n\n" + SEARCH,
    "search-both": "GET /contacts?searchby=email&search=ada%40one.example\n\n" + SEARCH,
    "search-words": "GET /contacts?searchby=notes&search=seed&match=words\n\n",
    "search-id": "GET /contacts?searchby=id&search=10000000000000000002\n\n",
    "search-bad": "GET /contacts?searchby=fax&search=1&limit=0&cursor=zz\n\n",
    "get": "GET /contacts/10000000000000000001\n\n",
    "get-other-account": "GET /contacts/10000000000000000004\nx-fuzz-account: 1\n\n",
    "get-as-two": "GET /contacts/10000000000000000004\nx-fuzz-account: 2\n\n",
    "head": "HEAD /contacts/10000000000000000002\n\n",
    "get-bad-id": "GET /contacts/12ab\n\n",
    "patch": "PATCH /contacts/10000000000000000002\n\n" + PATCH,
    "patch-read-only": "PATCH /contacts/10000000000000000002\nx-fuzz-role: read-only\n\n" + PATCH,
    "delete-id": "DELETE /contacts/10000000000000000003\n\n",
    "delete-body": "DELETE /contacts\n\n" + DELETE,
    "no-route": "PUT /contacts/1/2\n\n",
    "if-match": 'PATCH /contacts/10000000000000000002\nif-match: "1", W/"2", *\n\n' + PATCH,
    "if-none-match": 'GET /contacts/10000000000000000001\nif-none-match: W/"1"\n\n',
    "idempotent-create": "POST /contacts\nidempotency-key: seed-key-1\n\n" + MINIMAL,
    "idempotent-batch": "POST /contacts/batch\nidempotency-key: seed-key-2\n\n" + BATCH,
    "upsert": 'POST /contacts/upsert\nif-match: *\n\n' + UPSERT,
    "batch-upsert": "POST /contacts/batch/upsert\nidempotency-key: k\n\n" + BATCH_UPSERT,
    "trash": "GET /contacts/trash?limit=1&cursor=AgAAAAAAAAAB\n\n",
    "restore": 'POST /contacts/10000000000000000003/restore\nif-match: "1"\n\n',
    "purge": "DELETE /contacts/10000000000000000003?purge=true\nidempotency-key: p\n\n",
}


def write(sub, name, data):
    d = os.path.join(HERE, "corpus", sub)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for name, (kind, body) in BODIES.items():
        write("body", name, bytes([kind]) + (body.encode() if isinstance(body, str) else body))
    for name, q in QUERIES.items():
        write("query", name, q)
    for name, r in REQUESTS.items():
        write("request", name, r)
    print("text seeds written")


if __name__ == "__main__":
    main()
