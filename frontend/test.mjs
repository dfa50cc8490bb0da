// Runs the unit tests (test/*.test.ts) with Node's own test runner: esbuild compiles
// each into .test-build/ (git-ignored), then `node --test` runs them.
//
//   cd frontend && npm test

import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, ".test-build");
const tests = readdirSync(join(here, "test")).filter((f) => f.endsWith(".test.ts")).sort();

rmSync(out, { recursive: true, force: true });
await esbuild.build({
  entryPoints: tests.map((f) => join(here, "test", f)),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outdir: out,
  outExtension: { ".js": ".mjs" },
  sourcemap: "inline",
  logLevel: "warning",
});
const built = tests.map((f) => join(out, f.replace(/\.ts$/, ".mjs")));
const run = spawnSync(process.execPath, ["--test", "--test-reporter=spec", ...built], { stdio: "inherit" });
process.exit(run.status ?? 1);
