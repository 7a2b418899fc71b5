import type { CodegenConfig } from "@graphql-codegen/cli";

const typescriptConfig = {
  // Our ESM imports carry explicit .ts extensions (tsx, NodeNext).
  importExtension: ".ts",
  useTypeImports: true,
  enumsAsTypes: true,
  // Money is an exact decimal string, DateTime an ISO-8601 string: never numbers or Dates.
  scalars: { Money: "string", DateTime: "string" },
};

/**
 * Typed documents from the checked-in schema (`npm run codegen`): for the CLI from client/operations,
 * and for the web console from the `graphql()` documents next to its components, so that a schema
 * change that breaks either fails the type check.
 */
const config: CodegenConfig = {
  schema: "schema.graphql",
  ignoreNoDocuments: false,
  generates: {
    "client/generated/": {
      documents: ["client/operations/*.graphql"],
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: typescriptConfig,
    },
    "client/web/src/gql/": {
      documents: ["client/web/src/**/*.tsx"],
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: typescriptConfig,
    },
  },
};

export default config;
