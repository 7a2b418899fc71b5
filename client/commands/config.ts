import { type Command, printJson } from "../command.ts";
import { writeConfig } from "../config.ts";

export const setApiKey: Command = {
  name: "set api-key",
  usage: "<key>",
  summary: "Save the API key (and --url, if given) in the config file, readable by you only",
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const url = typeof ctx.values.url === "string" ? ctx.values.url : undefined;
    await writeConfig(ctx.io.configPath, { apiKey: ctx.positionals[0]!, ...(url ? { url } : {}) });
    if (ctx.raw) return printJson(ctx, { saved: ctx.io.configPath });
    ctx.print(`saved to ${ctx.io.configPath}`);
  },
};
