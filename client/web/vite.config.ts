import { join } from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

const GENERATED = join(import.meta.dirname, "src", "gql", "graphql.ts");

/**
 * Replaces each `graphql(\`query Name …\`)` with the typed document codegen made for it, imported
 * on its own: the client preset's `graphql()` looks documents up in a map of all of them, which
 * would put every page's documents in the search page's bundle (its docs suggest a babel plugin
 * for the same rewrite).
 */
function typedDocuments(): Plugin {
  const call = /\bgraphql\(\s*`\s*(query|mutation|subscription|fragment)\s+(\w+)[^`]*`\s*\)/g;
  return {
    name: "typed-documents",
    enforce: "pre",
    transform(code, id) {
      if (!/\/src\/.*\.tsx$/.test(id) || !code.includes("graphql(")) return null;
      const names = new Set<string>();
      const rewritten = code.replace(call, (_, kind: string, name: string) => {
        const exported = kind === "fragment" ? `${name}FragmentDoc` : `${name}Document`;
        names.add(exported);
        return exported;
      });
      if (names.size === 0) return null;
      return { code: `import { ${[...names].join(", ")} } from ${JSON.stringify(GENERATED)};\n${rewritten}`, map: null };
    },
  };
}

// The console's production build (client/web/build.ts runs it); served by the API at `/`.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [typedDocuments(), react()],
  build: { target: "es2022", sourcemap: false },
});
