// npm run demo: install what is missing, build, then trace the example CNN, print its graph and run it.
import { build, ensureInstalled, sh } from "./lib.mjs";

ensureInstalled();
build();
sh("npx", ["tsx", "examples/cnn/main.ts", ...process.argv.slice(2)]);
