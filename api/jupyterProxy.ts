import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { jupyterTarget } from "../domain/instances/connection.ts";
import { logger } from "../infra/logger.ts";

export const JUPYTER_PROXY_PREFIX = "/jupyter/";

/**
 * Jupyter's proxy mode: /jupyter/<instanceId>/… on the API's origin is forwarded, path and query
 * unchanged (the server inside runs with that base URL), to the instance's mapped port 8080 on its
 * machine's public address. The Jupyter server checks the token itself: without it, 403.
 * Only running JUPYTER instances are reachable this way, so it is no open relay.
 */
export async function proxyJupyter(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const match = /^\/jupyter\/(\d{1,10})\//.exec(req.url ?? "");
  const target = match ? await jupyterTarget(Number(match[1])) : null;
  if (!target) {
    res.writeHead(404, { "content-type": "text/plain" }).end("No running Jupyter instance here\n");
    return;
  }
  const upstream = httpRequest(
    {
      host: target.host,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: `${target.host}:${target.port}` },
    },
    (response) => {
      res.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(res);
    },
  );
  upstream.on("error", (err) => {
    logger.warn({ err: err.message, instance: match![1] }, "jupyter proxy: instance unreachable");
    if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end("The instance's Jupyter server did not answer\n");
    else res.destroy();
  });
  req.pipe(upstream);
}
