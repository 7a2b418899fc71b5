import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The console's production build (client/web/build.ts runs it); served by the API at `/`.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  build: { target: "es2022", sourcemap: false, chunkSizeWarningLimit: 400 },
});
