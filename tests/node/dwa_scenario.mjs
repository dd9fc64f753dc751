// A scenario run by the community client library DynamicsWebApi (npm
// `dynamics-web-api`, v2) against the emulator's Dataverse Web API, unmodified
// and with its normal configuration. Run by
// host/emulator/tests/emulator/dynamics_web_api.rs.
//
// Environment:
//   DV_URL              environment URL exactly as the emulator prints it, e.g.
//                       https://127.0.0.1:50123 (with or without a trailing slash)
//   DV_TOKEN            bearer token for the environment (returned from onTokenRefresh)
//   NODE_EXTRA_CA_CERTS the emulator's CA certificate (PEM), so TLS verifies
//   DWA_TRACE=1         optional: print every HTTP exchange on stderr
//   DWA_PREFIX          optional: name prefix of the rows this run creates (default DWA)
//
// Every step asserts its result with node:assert/strict. A failing step is
// reported on stderr together with the last HTTP exchange the library made;
// the remaining steps still run, and the exit status is then 1. On success the
// last line of stdout is {"ok": true, "steps": N}.

import assert from "node:assert/strict";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { DynamicsWebApi } from "dynamics-web-api";

const require = createRequire(import.meta.url);

const DV_URL = process.env.DV_URL;
const DV_TOKEN = process.env.DV_TOKEN;
if (!DV_URL || !DV_TOKEN) {
  console.error("DV_URL and DV_TOKEN must be set");
  process.exit(2);
}

// --- recording of the library's HTTP exchanges, for failure reports only ---
// The library calls https.request (dist/esm/dynamics-web-api.mjs, `_executeRequest`);
// the wrapper records what goes over the wire and changes nothing.
const exchanges = [];
let exchangeCount = 0;
{
  const https = require("node:https");
  const original = https.request;
  https.request = function request(options, callback) {
    const ex = {
      method: options.method,
      url: `https://${options.hostname}:${options.port}${options.path}`,
      headers: { ...options.headers },
      body: "",
      seq: ++exchangeCount,
    };
    if (ex.headers.Authorization) ex.headers.Authorization = "Bearer <redacted>";
    exchanges.push(ex);
    if (exchanges.length > 8) exchanges.shift();
    const req = original.call(this, options, (res) => {
      ex.status = res.statusCode;
      ex.responseHeaders = res.headers;
      ex.responseBody = "";
      callback(res);
      res.on("data", (chunk) => {
        ex.responseBody += chunk;
      });
      if (process.env.DWA_TRACE) res.on("end", () => console.error(`trace: ${JSON.stringify(ex)}`));
    });
    const write = req.write;
    req.write = function (chunk, ...rest) {
      ex.body += chunk;
      return write.call(this, chunk, ...rest);
    };
    return req;
  };
  syncBuiltinESMExports();
}

// The URL as given: the library resolves "api/data/v9.2" against it, which
// works for an environment at its own origin with or without the slash.
const serverUrl = DV_URL;
const apiBase = new URL("api/data/v9.2/", serverUrl).href;
const dwa = new DynamicsWebApi({
  serverUrl,
  dataApi: { version: "9.2" },
  onTokenRefresh: async () => DV_TOKEN,
});

let steps = 0;
const failures = [];

async function step(name, fn) {
  const before = exchangeCount;
  try {
    await fn();
    steps++;
    console.error(`ok   ${name}`);
  } catch (e) {
    failures.push(name);
    console.error(`FAIL ${name}: ${e.stack || e}`);
    if (e.status !== undefined) {
      console.error(`     error.status=${e.status} error.code=${e.code ?? ""} error.message=${e.message}`);
    }
    // The step's last two exchanges: the failing one, and the one before it.
    for (const ex of exchanges.filter((x) => x.seq > before).slice(-2)) {
      console.error(`     exchange: ${JSON.stringify(ex)}`);
    }
  }
}

const PREFIX = process.env.DWA_PREFIX || "DWA";
const N = 12;
const names = Array.from({ length: N }, (_, i) => `${PREFIX} ${String(i + 1).padStart(2, "0")}`);
const filter = `startswith(name,'${PREFIX}')`;
let firstId;

await step("create returns the new id", async () => {
  firstId = await dwa.create({
    collection: "accounts",
    data: { name: "Contoso first", revenue: 12345.5, accountcategorycode: 1 },
  });
  assert.match(firstId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
});

await step("retrieve with select", async () => {
  const row = await dwa.retrieve({ collection: "accounts", key: firstId, select: ["name", "revenue"] });
  assert.equal(row.name, "Contoso first");
  assert.equal(row.revenue, 12345.5);
  assert.equal(row.accountid, firstId);
  assert.equal(row.accountcategorycode, undefined, "not selected");
});

await step("update, then retrieve the new name", async () => {
  const updated = await dwa.update({ collection: "accounts", key: firstId, data: { name: "Contoso renamed" } });
  assert.equal(updated, true);
  const row = await dwa.retrieve({ collection: "accounts", key: firstId, select: ["name", "revenue"] });
  assert.equal(row.name, "Contoso renamed");
  assert.equal(row.revenue, 12345.5);
});

const created = new Map();
await step(`create ${N} more accounts`, async () => {
  for (const [i, name] of names.entries()) {
    const id = await dwa.create({ collection: "accounts", data: { name, revenue: 1000 * (i + 1) } });
    assert.ok(id, `id for ${name}`);
    created.set(id, name);
  }
  assert.equal(created.size, N, "distinct ids");
});

await step("retrieveMultiple with filter, select, orderBy desc, top", async () => {
  const res = await dwa.retrieveMultiple({
    collection: "accounts",
    filter,
    select: ["name", "revenue"],
    orderBy: ["name desc"],
    top: 3,
  });
  assert.deepEqual(
    res.value.map((r) => r.name),
    names.slice(-3).reverse(),
  );
  assert.equal(res.value[0].revenue, 1000 * N);
  assert.equal(res.oDataNextLink, undefined, "no next link with $top");
  assert.match(res.oDataContext ?? "", /\$metadata#accounts\(name,revenue(,accountid)?\)$/);
});

await step("retrieveMultiple paged by maxPageSize 5, following oDataNextLink", async () => {
  const request = { collection: "accounts", filter, select: ["name"], orderBy: ["name"], maxPageSize: 5 };
  const pages = [];
  let rows = [];
  let link;
  do {
    const res = await dwa.retrieveMultiple(request, link);
    pages.push(res.value.length);
    rows = rows.concat(res.value);
    link = res.oDataNextLink;
    if (link) assert.ok(link.startsWith(`${apiBase}accounts?`), `next link ${link}`);
    assert.ok(pages.length <= N, "paging terminates");
  } while (link);
  assert.deepEqual(pages, [5, 5, 2]);
  assert.equal(rows.length, N);
  assert.equal(new Set(rows.map((r) => r.accountid)).size, N, "no duplicates");
  assert.deepEqual(
    rows.map((r) => r.name),
    names,
  );
  for (const r of rows) assert.equal(created.get(r.accountid), r.name);
});

await step("retrieveAll with maxPageSize 4", async () => {
  const res = await dwa.retrieveAll({ collection: "accounts", filter, select: ["name"], maxPageSize: 4 });
  assert.equal(res.value.length, N);
  assert.deepEqual(new Set(res.value.map((r) => r.accountid)), new Set(created.keys()));
});

await step("deleteRecord, then retrieve fails with 404", async () => {
  const deleted = await dwa.deleteRecord({ collection: "accounts", key: firstId });
  assert.equal(deleted, true);
  await assert.rejects(dwa.retrieve({ collection: "accounts", key: firstId, select: ["name"] }), (e) => {
    assert.equal(e.status, 404);
    assert.equal(typeof e.message, "string");
    assert.ok(e.message.length > 0, "error message");
    assert.equal(typeof e.code, "string", "Dataverse error code");
    return true;
  });
});

await step("retrieveEntities lists account", async () => {
  const res = await dwa.retrieveEntities({ select: ["LogicalName", "EntitySetName"] });
  assert.ok(Array.isArray(res.value) && res.value.length > 0);
  const account = res.value.find((e) => e.LogicalName === "account");
  assert.ok(account, "account in EntityDefinitions");
  assert.equal(account.EntitySetName, "accounts");
});

await step("retrieveEntity by LogicalName", async () => {
  const entity = await dwa.retrieveEntity({
    key: "LogicalName='account'",
    select: ["LogicalName", "EntitySetName", "PrimaryIdAttribute", "PrimaryNameAttribute", "MetadataId"],
  });
  assert.equal(entity.LogicalName, "account");
  assert.equal(entity.EntitySetName, "accounts");
  assert.equal(entity.PrimaryIdAttribute, "accountid");
  assert.equal(entity.PrimaryNameAttribute, "name");
  assert.match(entity.MetadataId, /^[0-9a-f-]{36}$/);
});

await step("retrieveAttributes for account", async () => {
  const res = await dwa.retrieveAttributes({ entityKey: "LogicalName='account'", select: ["LogicalName", "AttributeType"] });
  const byName = new Map(res.value.map((a) => [a.LogicalName, a]));
  for (const name of ["accountid", "name", "revenue", "accountcategorycode"]) {
    assert.ok(byName.has(name), `attribute ${name}`);
  }
  assert.equal(byName.get("name").AttributeType, "String");
  assert.equal(byName.get("accountcategorycode").AttributeType, "Picklist");
});

await step("retrieveAttributes cast to PicklistAttributeMetadata", async () => {
  const res = await dwa.retrieveAttributes({
    entityKey: "LogicalName='account'",
    castType: "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
    select: ["LogicalName", "AttributeType"],
  });
  assert.ok(res.value.length > 0);
  for (const a of res.value) assert.equal(a.AttributeType, "Picklist", a.LogicalName);
  assert.ok(
    res.value.some((a) => a.LogicalName === "accountcategorycode"),
    "accountcategorycode is a picklist",
  );
});

if (failures.length) {
  console.log(JSON.stringify({ ok: false, steps, failed: failures }));
  process.exit(1);
}
console.log(JSON.stringify({ ok: true, steps }));
