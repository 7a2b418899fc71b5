import { ValidationError } from "../errors.ts";
import { envList, portList } from "./launchSpec.ts";

/*
 * The "docker create/run options" box of a template or rental, as the reference reads it: `-p` opens
 * a port and `-e` sets a variable (`-p 8081:8081 -p 70000:70000 -e TZ=UTC -e TASK="a b"`). Words are
 * split as a shell would (quotes and backslashes). Any other option is refused rather than dropped,
 * so a user never believes a `-v` or `--privileged` took effect.
 */

export interface DockerOptions {
  ports: string[];
  env: { key: string; value: string }[];
}

const PUBLISH = new Set(["-p", "--publish"]);
const ENV = new Set(["-e", "--env"]);

/** Shell-like words: whitespace separates, '…' is literal, "…" and bare words honour backslash escapes. */
function words(text: string, fail: (message: string) => never): string[] {
  const result: string[] = [];
  let word: string | null = null;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quote === "'") {
      if (char === "'") quote = null;
      else word += char;
    } else if (char === "\\" && i + 1 < text.length && (quote === null || /["\\$`]/.test(text[i + 1]!))) {
      word = (word ?? "") + text[++i];
    } else if (quote === '"') {
      if (char === '"') quote = null;
      else word += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      word ??= "";
    } else if (/\s/.test(char)) {
      if (word !== null) result.push(word);
      word = null;
    } else {
      word = (word ?? "") + char;
    }
  }
  if (quote) fail(`unterminated ${quote} quote`);
  if (word !== null) result.push(word);
  return result;
}

/**
 * Parses the options into ports and env (in order of appearance), each checked by the instance's
 * own rules; `field` names the input field in the typed error.
 */
export function parseDockerOptions(text: string, field: string[] = ["dockerOptions"]): DockerOptions {
  const fail = (message: string): never => {
    throw new ValidationError([{ path: field, message }]);
  };
  const options: DockerOptions = { ports: [], env: [] };
  const tokens = words(text, fail);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const [name, inline] = token.startsWith("--") && token.includes("=") ? [token.slice(0, token.indexOf("=")), token.slice(token.indexOf("=") + 1)] : [token, undefined];
    if (!PUBLISH.has(name) && !ENV.has(name)) {
      fail(token.startsWith("-")
        ? `unsupported docker option ${JSON.stringify(name)}: only -p (ports) and -e (environment) are accepted`
        : `unexpected ${JSON.stringify(token)}: options are -p PORT and -e KEY=value`);
    }
    const value = inline ?? tokens[++i];
    if (value === undefined) fail(`${name} needs a value`);
    if (PUBLISH.has(name)) {
      options.ports.push(value!);
    } else {
      const equals = value!.indexOf("=");
      if (equals < 1) fail(`${name} ${JSON.stringify(value)}: write KEY=value`);
      options.env.push({ key: value!.slice(0, equals), value: value!.slice(equals + 1) });
    }
  }
  const ports = portList.safeParse(options.ports);
  if (!ports.success) {
    const issue = ports.error.issues[0]!;
    fail(typeof issue.path[0] === "number" ? `-p ${JSON.stringify(options.ports[issue.path[0]])}: ${issue.message}` : `-p: ${issue.message}`);
  }
  const env = envList.safeParse(options.env);
  if (!env.success) {
    const issue = env.error.issues[0]!;
    fail(typeof issue.path[0] === "number" ? `-e ${options.env[issue.path[0]]!.key}: ${issue.message}` : `-e: ${issue.message}`);
  }
  return options;
}
