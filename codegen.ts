import type { CodegenConfig } from "@graphql-codegen/cli";

/** Typed documents for the client and CLI, from the checked-in schema and client/operations (`npm run codegen`). */
const config: CodegenConfig = {
  schema: "schema.graphql",
  documents: ["client/operations/*.graphql"],
  ignoreNoDocuments: false,
  generates: {
    "client/generated/": {
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: {
        // Our ESM imports carry explicit .ts extensions (tsx, NodeNext).
        importExtension: ".ts",
        useTypeImports: true,
        enumsAsTypes: true,
        // Money is an exact decimal string, DateTime an ISO-8601 string: never numbers or Dates.
        scalars: { Money: "string", DateTime: "string" },
      },
    },
  },
};

export default config;
