// openapi_client.mts: a client generated from the document a running
// contactd serves, driven against that server (tests/e2e/e2e_openapi.py).
//
// The driver generates ./api.d.ts from GET /openapi.json with
// openapi-typescript, type-checks this program against it (tsc), then runs
// it with node: CONTACTD_URL is the server, CONTACTD_KEY a read-write key.
// openapi-fetch makes every call from the generated paths, so a request or
// an answer this program uses that the document describes otherwise is a
// type error before it is a failed run; and every JSON answer is checked
// against the schema the served document gives it (ajv). Each step checks
// what the server answered, status and body, and the run exits non-zero on
// the first that is wrong.
import { Ajv2020 } from "ajv/dist/2020.js";
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

// Every JSON answer is also checked against the schema the document gives
// for its path, method and status (ajv, JSON Schema 2020-12 as OpenAPI
// 3.1 uses it), so an answer the document describes otherwise fails here
// even where this program reads no member of it.
type Json = { [k: string]: unknown };
const docAnswer = await fetch(`${baseUrl}/openapi.json`);
checkEq(docAnswer.status, 200, "GET /openapi.json");
const doc = (await docAnswer.json()) as Json;
checkEq(doc["openapi"], "3.1.0", "openapi version");
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema(doc, "openapi.json");
// Follows a $ref to what it names: [the object, its JSON pointer].
function follow(node: Json, pointer: string[]): [Json, string[]] {
  const r = node["$ref"];
  if (typeof r !== "string") return [node, pointer];
  const parts = r.slice(2).split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  let at: unknown = doc;
  for (const part of parts) at = (at as Json)[part];
  return follow(at as Json, parts);
}
const fragment = (parts: string[]) =>
  parts.map((p) => encodeURIComponent(p.replace(/~/g, "~0").replace(/\//g, "~1"))).join("/");
const validators = new Map<string, ReturnType<typeof ajv.compile>>();
const validated: string[] = [];
client.use({
  async onResponse({ request, response, schemaPath }) {
    const method = request.method.toLowerCase();
    const what = `${request.method} ${schemaPath} ${response.status}`;
    if (response.headers.get("content-type") !== "application/json") return undefined;
    const op = ((doc["paths"] as Json)[schemaPath] as Json | undefined)?.[method] as Json | undefined;
    check(op, `${what}: not documented`);
    const answers = op["responses"] as Json;
    const status = String(response.status) in answers ? String(response.status) : "default";
    check(answers[status], `${what}: the status is not documented`);
    const [answer, at] = follow(answers[status] as Json, ["paths", schemaPath, method, "responses", status]);
    const media = (answer["content"] as Json | undefined)?.["application/json"];
    check(media, `${what}: the document gives this answer no JSON body`);
    const pointer = `openapi.json#/${fragment([...at, "content", "application/json", "schema"])}`;
    let validate = validators.get(pointer);
    if (!validate) {
      validate = ajv.compile({ $ref: pointer });
      validators.set(pointer, validate);
    }
    const body: unknown = await response.clone().json();
    check(validate(body), `${what}: the answer ${JSON.stringify(body)} is not as documented: ${ajv.errorsText(validate.errors)}`);
    validated.push(what);
    return undefined;
  },
});

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

// The document through the typed client, itself an answer checked.
const served = await client.GET("/openapi.json");
checkEq(served.response.status, 200, "openapi status");

// Every JSON answer above went through the schema check (the delete's is
// text, the first GET of the document was made before the check).
checkEq(validated.length, 9, `answers checked against their schemas (${validated.join(", ")})`);
console.log("openapi client: every step answered as documented");
