// One Node process serving PostGraphile at POST /graphql (grafserv's node
// adaptor), configured by graphile.config.mjs.
// node20.mjs first: imports run in order, before PostGraphile's code.
import "./node20.mjs";
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";
import preset from "./graphile.config.mjs";

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.keepAliveTimeout = 60_000;
server.on("error", (e) => {
  console.error(e);
  process.exit(1);
});
await serv.addTo(server);
// Build the schema before listening, so that the first request the
// benchmark sends is served, not queued behind introspection.
await pgl.getSchema();
const { port, host } = preset.grafserv;
server.listen(port, host, () => console.log(`postgraphile listening on http://${host}:${port}/graphql`));

const stop = async () => {
  server.close();
  await pgl.release();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
