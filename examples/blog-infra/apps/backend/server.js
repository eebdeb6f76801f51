// The blog's API: GET /api/posts lists posts from PostgreSQL, GET /healthz reports readiness.
// Configuration comes from the environment: DATABASE_URL (from Terraform) and PGPASSWORD (from
// the postgres Secret, picked up by the pg driver).
"use strict";

const http = require("node:http");
const { Pool } = require("pg");

const port = Number(process.env.PORT || 3000);
const pool = new Pool({ connectionString: process.env.DATABASE_URL });

async function ensureSchema() {
  await pool.query(
    "CREATE TABLE IF NOT EXISTS posts (id SERIAL PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
  );
}

function send(response, status, body) {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

const server = http.createServer(async (request, response) => {
  try {
    if (request.method === "GET" && request.url === "/healthz") {
      await pool.query("SELECT 1");
      return send(response, 200, { status: "ok" });
    }
    if (request.method === "GET" && request.url === "/api/posts") {
      const { rows } = await pool.query(
        "SELECT id, title, body, created_at FROM posts ORDER BY created_at DESC LIMIT 50",
      );
      return send(response, 200, rows);
    }
    return send(response, 404, { error: "not found" });
  } catch (error) {
    console.error(`${request.method} ${request.url}: ${error.message}`);
    return send(response, 503, { error: "database unavailable" });
  }
});

ensureSchema()
  .catch((error) => console.error(`schema setup failed (will retry on demand): ${error.message}`))
  .finally(() => {
    server.listen(port, () => console.log(`blog-backend listening on :${port} (${process.env.BLOG_ENVIRONMENT || "local"})`));
  });

process.on("SIGTERM", () => server.close(() => pool.end().then(() => process.exit(0))));
