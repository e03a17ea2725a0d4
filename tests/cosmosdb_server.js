// Runs @vercel/cosmosdb-server (from the repo's package.json) for the tests, with two fixes applied here
// rather than in the adapter:
// - reading a missing item crashes the server's read handler (HTTP 500); the real service answers 404, so
//   the handler is wrapped to answer 404 NotFound the way the service does;
// - the server speaks plain HTTP on loopback (no self-signed, long-expired certificate to turn verification
//   off for), keeps connections alive, and advertises http:// locations so the SDK's endpoint discovery
//   stays on the address it was given.
// Usage: node tests/cosmosdb_server.js <port>  (prints "ready <port>" once listening on 127.0.0.1).
"use strict";

const lib = "@vercel/cosmosdb-server/lib";
// Patched before the server module loads: its router takes the handlers when it is built.
const readDocument = require(`${lib}/handler/read-document`);
const readMeta = require(`${lib}/handler/read-meta`);
const partition = require(`${lib}/utils/get-partition-from-header`);

const originalRead = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  const header = partition.default(req);
  if (collection.read() && header) {
    const key = partition.parsePartitionKey(header, params.docId);
    if (!collection.document(params.docId, key).read()) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
  }
  return originalRead(account, req, res, params);
};

const originalMeta = readMeta.default;
readMeta.default = (account, ...rest) => {
  const meta = originalMeta(account, ...rest);
  const plain = (locations) =>
    locations.map((l) => ({ ...l, databaseAccountEndpoint: l.databaseAccountEndpoint.replace(/^https:/, "http:") }));
  return { ...meta, writableLocations: plain(meta.writableLocations), readableLocations: plain(meta.readableLocations) };
};

const { createHttpServer } = require(lib);
const port = parseInt(process.argv[2] || "0", 10);
const server = createHttpServer({ keepAlive: true });
server.keepAliveTimeout = 60000;
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`ready ${server.address().port}\n`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref(); // a client still holding a kept-alive connection
  });
}
