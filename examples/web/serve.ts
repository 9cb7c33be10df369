/**
 * Node-side helpers of the web example: bundle a page script with esbuild (qforge packages from
 * their TypeScript sources), serve files from localhost (WebGPU needs a secure context, and
 * localhost is one), and start headless Chromium with WebGPU enabled.
 */
import { createServer, type Server } from "node:http";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser } from "playwright-core";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const WEB = join(ROOT, "examples", "web");
export const OUT = join(WEB, "out");
export const CHROMIUM = "/usr/bin/chromium";
/** The rendered text lines (80 PNGs + labels.json); QFORGE_OCR_LINES overrides the location. */
export const OCR_LINES = process.env["QFORGE_OCR_LINES"] ?? "/work/shared/data/ocr-lines";

/** Why the browser test cannot run here, or undefined. */
export function chromiumUnavailableReason(): string | undefined {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install chromium)`;
  if (!existsSync(join(OCR_LINES, "labels.json"))) return `no OCR lines at ${OCR_LINES} (set QFORGE_OCR_LINES)`;
  return undefined;
}

/** Bundles `entry` (TypeScript, browser) to `outfile` as one ES module. */
export async function bundle(entry: string, outfile: string): Promise<void> {
  const esbuild = await import("esbuild");
  const pkgs = ["ir", "runtime", "quant", "backend-webgpu"];
  await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    sourcemap: true,
    logLevel: "error",
    alias: Object.fromEntries(pkgs.map((p) => [`@qforge/${p}`, join(ROOT, "packages", p, "src", "index.ts")])),
  });
}

const TYPES: Record<string, string> = {
  ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json", ".png": "image/png",
  ".txt": "text/plain; charset=utf-8", ".wasm": "application/wasm", ".map": "application/json", ".onnx": "application/octet-stream",
};

/** Serves URL prefixes from directories (or single files); returns the server and its base URL. */
export async function serve(routes: Record<string, string>): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const prefix = Object.keys(routes).filter((p) => path === p || path.startsWith(p.endsWith("/") ? p : `${p}/`)).sort((a, b) => b.length - a.length)[0];
    if (prefix === undefined) {
      res.writeHead(404).end();
      return;
    }
    const target = routes[prefix]!;
    const file = existsSync(target) && statSync(target).isFile() ? target : normalize(join(target, path.slice(prefix.length)));
    if (!file.startsWith(target) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : 0;
  return { server, url: `http://127.0.0.1:${port}` };
}

/** Headless Chromium with WebGPU (on a machine without a GPU it uses SwiftShader). */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
}
