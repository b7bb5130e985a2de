// PostGraphile v5 over the benchmark's task table: the baseline
// "postgraphile" of bench/README.md. Production settings: no GraphiQL, no
// watch mode, no explain. Environment (set by the benchmark):
//
//   DATABASE_URL     PostgreSQL as the role taskbench_user (not a superuser,
//                    so the table's row level security applies to it)
//   SCHEMA           the seeded schema (taskbench, or taskbench_smoke)
//   AUTH_JWT_SECRET  the HS256 secret the benchmark mints its tokens with
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import jwt from "jsonwebtoken";

const secret = process.env.AUTH_JWT_SECRET;
if (!secret) throw new Error("AUTH_JWT_SECRET is required");

// A request's claims, verified: HS256 only, expiry checked. PostGraphile
// v5 leaves verification to the application and takes what it should tell
// PostgreSQL as pgSettings (its JWT guide, "You own JWT verification").
function verifiedClaims(req) {
  const header = req?.headers?.authorization;
  if (typeof header !== "string" || !header.startsWith("Bearer ")) {
    throw Object.assign(new Error("missing bearer token"), { statusCode: 401 });
  }
  try {
    return jwt.verify(header.slice(7), secret, { algorithms: ["HS256"] });
  } catch (err) {
    throw Object.assign(new Error("invalid token"), { statusCode: 401 });
  }
}

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: [process.env.SCHEMA || "taskbench"],
    }),
  ],
  grafserv: {
    port: Number(process.env.PORT || 5678),
    host: "127.0.0.1",
    graphiql: false,
    graphiqlOnGraphQLGET: false,
    watch: false,
  },
  grafast: {
    explain: false,
    // The verified subject becomes jwt.claims.sub for the transaction
    // PostGraphile runs the operation in (set_config(..., true)); the row
    // level security policy of the task table reads it.
    context(requestContext) {
      const claims = verifiedClaims(requestContext.node?.req);
      if (typeof claims.sub !== "string" || claims.sub === "") {
        throw Object.assign(new Error("token without subject"), { statusCode: 401 });
      }
      return { pgSettings: { "jwt.claims.sub": claims.sub } };
    },
  },
};

export default preset;
