// The web console (client/web's production build) and GraphiQL's own assets, served from the API's
// origin: nothing the browser loads comes from another host.
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, normalize } from "node:path";
import { gzipSync } from "node:zlib";
import type { GraphiQLOptions } from "graphql-yoga";
import { CONSOLE_DIST } from "../client/web/build.ts";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
};

/** The console's pages may only load from and talk to this origin. */
const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'";

interface Asset {
  type: string;
  body: Buffer;
  gzipped: Buffer | null;
  /** Fingerprinted by the build: cached for a year. */
  immutable: boolean;
}

function asset(type: string, body: Buffer, immutable: boolean): Asset {
  const compressible = !type.startsWith("image/") || type === "image/svg+xml";
  return { type, body, gzipped: compressible && body.length > 1024 ? gzipSync(body) : null, immutable };
}

function send(req: IncomingMessage, res: ServerResponse, item: Asset, headers: Record<string, string> = {}): void {
  const gzip = item.gzipped !== null && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
  const body = gzip ? item.gzipped! : item.body;
  res.writeHead(200, {
    "content-type": item.type,
    "content-length": String(body.length),
    "cache-control": item.immutable ? "public, max-age=31536000, immutable" : "no-cache",
    "x-content-type-options": "nosniff",
    vary: "accept-encoding",
    ...(gzip ? { "content-encoding": "gzip" } : {}),
    ...headers,
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

// GraphiQL (the @graphql-yoga/render-graphiql bundle) as separate cacheable files instead of Yoga's
// default page, which loads them from a public CDN.
const GRAPHIQL_PREFIX = "/graphiql/";
let graphiqlAssets: Promise<Map<string, Asset>> | undefined;
function loadGraphiqlAssets(): Promise<Map<string, Asset>> {
  graphiqlAssets ??= import("@graphql-yoga/render-graphiql/graphiql").then((bundle) => {
    const js = (text: string) => asset(TYPES[".js"], Buffer.from(text), false);
    return new Map([
      ["graphiql.js", js(bundle.js)],
      ["graphiql.css", asset(TYPES[".css"], Buffer.from(bundle.css), false)],
      ["favicon.ico", asset(TYPES[".ico"], Buffer.from(bundle.favicon.replace(/^data:[^,]*,/, ""), "base64"), false)],
      ["editorWorkerService.worker.js", js(bundle.editorWorkerService)],
      ["json.worker.js", js(bundle.jsonWorker)],
      ["graphql.worker.js", js(bundle.graphqlWorker)],
    ]);
  });
  return graphiqlAssets;
}

/** Yoga's `renderGraphiQL`: the page, with its scripts, styles and Monaco workers from GRAPHIQL_PREFIX. */
export function renderGraphiQL(options: GraphiQLOptions): string {
  const json = JSON.stringify(options ?? {}).replace(/</g, "\\u003c");
  const title = (options?.title ?? "GraphiQL").replace(/[<&"]/g, "");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8" />
<title>${title}</title>
<link rel="icon" href="${GRAPHIQL_PREFIX}favicon.ico" />
<link rel="stylesheet" href="${GRAPHIQL_PREFIX}graphiql.css" />
</head>
<body id="body" class="no-focus-outline">
<div id="root"></div>
<script>self.MonacoEnvironment = { globalAPI: false, getWorkerUrl: (_, label) => "${GRAPHIQL_PREFIX}" + (label === "json" || label === "graphql" ? label : "editorWorkerService") + ".worker.js" };</script>
<script src="${GRAPHIQL_PREFIX}graphiql.js"></script>
<script>YogaGraphiQL.renderYogaGraphiQL(document.querySelector("#root"), ${json});</script>
</body>
</html>`;
}

const consoleAssets = new Map<string, Promise<Asset | null>>();
function consoleAsset(path: string): Promise<Asset | null> {
  let found = consoleAssets.get(path);
  if (!found) {
    found = readFile(join(CONSOLE_DIST, path)).then(
      (body) => asset(TYPES[extname(path)] ?? "application/octet-stream", body, path.startsWith("assets/")),
      () => null,
    );
    consoleAssets.set(path, found);
  }
  return found;
}

/**
 * Answers GET/HEAD requests for GraphiQL's assets and for the console: a file of the build, or the
 * console's index.html for any other path (its routes live in the browser). False for anything else.
 */
export async function serveStatic(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
  if (path.startsWith(GRAPHIQL_PREFIX)) {
    const item = (await loadGraphiqlAssets()).get(path.slice(GRAPHIQL_PREFIX.length));
    if (item) send(req, res, item);
    else res.writeHead(404).end();
    return true;
  }
  const relative = normalize(path).replace(/^\/+/, "");
  if (relative.startsWith("..")) return false;
  const file = relative && !relative.endsWith("/") ? await consoleAsset(relative) : null;
  if (file) {
    send(req, res, file);
    return true;
  }
  // A missing fingerprinted file is a 404, not the app's page.
  if (relative.startsWith("assets/")) {
    res.writeHead(404).end();
    return true;
  }
  const index = await consoleAsset("index.html");
  if (!index) {
    res.writeHead(503, { "content-type": "text/plain" }).end("The web console is not built: run npm start or npm run build:console.\n");
    return true;
  }
  send(req, res, index, { "content-security-policy": CONSOLE_CSP });
  return true;
}
