import { expect } from "vitest";
import { eventually } from "./agent-process.ts";

/**
 * An instance's Jupyter server, directly and through the API's proxy: each answers with the token
 * (once up, within `timeoutMs`) and 403 without it or with another. The token and both base URLs.
 */
export async function expectJupyterGuarded(
  connection: { jupyterUrl: string; jupyterDirectUrl: string },
  timeoutMs: number,
): Promise<{ token: string; directBase: string; proxiedBase: string }> {
  const direct = new URL(connection.jupyterDirectUrl);
  const proxied = new URL(connection.jupyterUrl);
  const token = proxied.searchParams.get("token")!;
  expect(token).toMatch(/^[0-9a-f]{48}$/);
  expect(direct.searchParams.get("token")).toBe(token);
  const directBase = `${direct.origin}${direct.pathname}`;
  const proxiedBase = `${proxied.origin}${proxied.pathname}`;
  for (const base of [directBase, proxiedBase]) {
    const withToken = await eventually(async () => {
      const response = await fetch(`${base}api/status?token=${token}`).catch(() => null);
      return response?.status === 200 ? response : undefined;
    }, timeoutMs);
    expect(await withToken.json()).toHaveProperty("started");
    expect((await fetch(`${base}api/status`)).status).toBe(403);
    expect((await fetch(`${base}api/status?token=not-${token}`)).status).toBe(403);
  }
  return { token, directBase, proxiedBase };
}
