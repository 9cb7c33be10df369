import { defineConfig } from "vitest/config";
import { readdirSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL(".", import.meta.url));
const pkgs = readdirSync(join(root, "packages")).filter((p) => existsSync(join(root, "packages", p, "src", "index.ts")));

// Tests run against the TypeScript sources (no build needed): @qforge/x resolves to packages/x/src.
const alias = Object.fromEntries(pkgs.map((p) => [`@qforge/${p}`, join(root, "packages", p, "src", "index.ts")]));

export default defineConfig({
  resolve: { alias },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      ...pkgs.map((p) => ({ resolve: { alias }, test: { name: p, include: [`packages/${p}/test/**/*.test.ts`], testTimeout: 60_000 } })),
      { resolve: { alias }, test: { name: "e2e", include: ["test/**/*.test.ts", "examples/**/*.test.ts"], testTimeout: 300_000 } },
    ],
  },
});
