import react from "@vitejs/plugin-react";
import { type DocumentNode, print } from "graphql";
import { defineConfig, type Plugin } from "vite";
import * as generated from "./src/gql/graphql.ts";

/**
 * Replaces each `graphql(\`query Name …\`)` with the text of the typed document codegen made for
 * it (fragments included), as a string literal that urql parses: the client preset's `graphql()`
 * looks documents up in a map of all of them as syntax trees, which would put every page's documents
 * in the search page's bundle (its docs suggest a babel plugin for the same rewrite). A document that
 * codegen has not made fails the build.
 */
function typedDocuments(): Plugin {
  const documents = generated as unknown as Record<string, DocumentNode | undefined>;
  const call = /\bgraphql\(\s*`\s*(query|mutation|subscription|fragment)\s+(\w+)[^`]*`\s*\)/g;
  return {
    name: "typed-documents",
    enforce: "pre",
    transform(code, id) {
      if (!/\/src\/.*\.tsx$/.test(id) || !code.includes("graphql(")) return null;
      return code.replace(call, (_, kind: string, name: string) => {
        const exported = kind === "fragment" ? `${name}FragmentDoc` : `${name}Document`;
        const document = documents[exported];
        if (!document) this.error(`${id}: no generated ${exported}; run npm run codegen`);
        return JSON.stringify(print(document));
      });
    },
  };
}

// The console's production build (client/web/build.ts runs it); served by the API at `/`.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [typedDocuments(), react()],
  build: { target: "es2022", sourcemap: false },
});
