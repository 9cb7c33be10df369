// Shared helpers for the top-level npm scripts (plain Node, no dependencies: they run before install).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1", ONNXRUNTIME_NODE_INSTALL: "skip", ...opts.env } });
  if (r.status !== 0 && !opts.allowFail) {
    console.error(`\n${cmd} ${args.join(" ")} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
  return r.status ?? 1;
}

/** Installs dependencies when node_modules is missing or older than the lock file. */
export function ensureInstalled() {
  const marker = join(root, "node_modules", ".package-lock.json");
  if (!existsSync(marker)) {
    console.log("> installing dependencies (npm ci)");
    sh("npm", ["ci", "--no-audit", "--no-fund"]);
  }
}

export function build() {
  console.log("> building (turbo run build)");
  sh("npx", ["turbo", "run", "build", "--output-logs=errors-only"]);
}
