import { main } from "../../client/cli.ts";

/** Runs the CLI in-process against `url` with captured streams and only the config file and env given. */
export async function runCli(
  url: string,
  configPath: string,
  argv: string[],
  options: { key?: string; env?: Record<string, string>; onStdout?: (stdout: string) => void } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main([...argv, "--url", url, ...(options.key ? ["--api-key", options.key] : [])], {
    stdout: {
      write: (text: string) => {
        stdout += text;
        options.onStdout?.(stdout);
      },
    },
    stderr: { write: (text: string) => (stderr += text) },
    env: options.env ?? {},
    configPath,
  });
  return { code, stdout, stderr };
}
