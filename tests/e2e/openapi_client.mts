// openapi_client.mts: a client generated from the document a running
// contactd serves, driven against that server (tests/e2e/e2e_openapi.py).
//
// The driver generates ./api.d.ts from GET /openapi.json with
// openapi-typescript, type-checks this program against it (tsc), then runs
// it with node: CONTACTD_URL is the server, CONTACTD_KEY a read-write key.
// openapi-fetch makes every call from the generated paths, so a request or
// an answer this program uses that the document describes otherwise is a
// type error before it is a failed run. Each step checks what the server
// answered, status and body, and the run exits non-zero on the first that
// is wrong.
import createClient from "openapi-fetch";
import type { components, paths } from "./api.js";

type Contact = components["schemas"]["Contact"];

// The little of node's process this needs (no @types/node to install).
declare const process: { env: Record<string, string | undefined>; pid: number };

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

function checkEq<T>(got: T, want: T, what: string): void {
  check(got === want, `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

const baseUrl = process.env.CONTACTD_URL;
const key = process.env.CONTACTD_KEY;
check(baseUrl && key, "CONTACTD_URL and CONTACTD_KEY are needed");

const client = createClient<paths>({ baseUrl, headers: { "x-api-key": key } });

const email = `ada.${process.pid}@example.com`;

// Create: 200 with the new id (and its version as the etag).
const created = await client.POST("/contacts", {
  body: {
    first_name: "Ada",
    last_name: "Lovelace",
    email,
    phone: 2075550123,
    company: "Analytical Engines",
  },
});
checkEq(created.response.status, 200, "create status");
check(created.data && "id" in created.data, "create: no id");
const id: string = created.data.id;
check(/^[1-9][0-9]{19}$/.test(id), `create: id ${id}`);
checkEq(created.response.headers.get("etag"), '"1"', "create etag");

// Get: the contact as stored, the integer phone kept as its digits.
const got = await client.GET("/contacts/{id}", { params: { path: { id } } });
checkEq(got.response.status, 200, "get status");
check(got.data, "get: no body");
const contact: Contact = got.data;
checkEq(contact.id, id, "get id");
checkEq(contact.email, email, "get email");
checkEq(contact.phone, "2075550123", "get phone");
checkEq(contact.version, 1, "get version");

// Search by company: exactly this contact.
const found = await client.GET("/contacts", {
  params: { query: { searchby: "email", search: email } },
});
checkEq(found.response.status, 200, "search status");
check(found.data, "search: no body");
checkEq(found.data.total, 1, "search total");
checkEq(found.data.contacts[0]?.id, id, "search hit");
checkEq(found.data.next_cursor, null, "search next_cursor");

// Edit with PATCH, conditional on the version read: the new version.
const edited = await client.PATCH("/contacts/{id}", {
  params: { path: { id }, header: { "if-match": '"1"' } },
  body: { job_title: "Programmer", company: null },
});
checkEq(edited.response.status, 200, "patch status");
checkEq(edited.response.headers.get("etag"), '"2"', "patch etag");
const after = await client.GET("/contacts/{id}", { params: { path: { id } } });
check(after.data, "get after patch: no body");
checkEq(after.data.job_title, "Programmer", "patched job_title");
checkEq(after.data.company, undefined, "removed company");
checkEq(after.data.version, 2, "patched version");

// An error body through the typed client: the same email again is 409
// duplicate_email naming the contact that has it.
const dup = await client.POST("/contacts", {
  body: { first_name: "Augusta", email },
});
checkEq(dup.response.status, 409, "duplicate status");
check(dup.error, "duplicate: no error body");
checkEq(dup.error.error.code, "duplicate_email", "duplicate code");
checkEq(dup.error.error.id, id, "duplicate names the contact");

// A value the server refuses: 400 invalid_field naming the field.
const bad = await client.POST("/contacts", {
  body: { first_name: "Bad", email: "not-an-address" },
});
checkEq(bad.response.status, 400, "bad email status");
check(bad.error, "bad email: no error body");
checkEq(bad.error.error.code, "invalid_field", "bad email code");
checkEq(bad.error.error.field, "email", "bad email field");

// Delete: the original specification's plain-text answer.
const deleted = await client.DELETE("/contacts/{id}", {
  params: { path: { id } },
  parseAs: "text",
});
checkEq(deleted.response.status, 200, "delete status");
checkEq(deleted.data, "Document deleted successfully", "delete body");

// Gone: 404 not_found, in the error shape the document gives.
const gone = await client.GET("/contacts/{id}", { params: { path: { id } } });
checkEq(gone.response.status, 404, "get after delete status");
check(gone.error, "get after delete: no error body");
checkEq(gone.error.error.code, "not_found", "get after delete code");

// The document names the server it was fetched from.
const doc = await client.GET("/openapi.json");
checkEq(doc.response.status, 200, "openapi status");
check(doc.data, "openapi: no body");

console.log("openapi client: every step answered as documented");
