// The npm "prepare" script of @sessiond/client: builds dist/src, which git does not hold, so
// that `npm install <path to sdk/typescript>` (or a git URL of a branch whose root is this
// directory) gives a package that imports. Written by hand.
//
// From git npm installs this package's devDependencies before it runs prepare. From a path
// it does not: it links the directory and runs prepare there as it is, so TypeScript is
// installed here first (npm ci, from package-lock.json) when it is missing.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = dirname(dirname(fileURLToPath(import.meta.url)));
const tsc = join(packageDir, "node_modules", "typescript", "bin", "tsc");

/** Runs command with args in packageDir and stops the script if it fails. */
function run(what, command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: packageDir, stdio: "inherit", ...options });
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : `exit status ${result.status ?? result.signal}`;
    console.error(`@sessiond/client prepare: ${what} failed (${why}); to build by hand: cd ${packageDir} && npm ci && npm run prepare`);
    process.exit(1);
  }
}

if (!existsSync(tsc)) {
  console.error(`@sessiond/client prepare: TypeScript is not installed in ${packageDir}; installing the devDependencies there to build dist/`);
  // The flags override what the npm that runs this script passes down in npm_config_*
  // variables (--omit=dev, --global, --prefix of the installing project, …).
  const args = [
    existsSync(join(packageDir, "package-lock.json")) ? "ci" : "install",
    "--prefix", packageDir, "--include=dev", "--no-global", "--ignore-scripts",
    "--no-audit", "--no-fund", "--loglevel=error",
  ];
  // npm_execpath is the npm running this script (or another package manager's CLI): use it
  // when it is npm's, else the npm on PATH.
  const execPath = process.env.npm_execpath ?? "";
  if (/^npm-cli\.[cm]?js$/.test(basename(execPath))) {
    run("npm " + args[0], process.execPath, [execPath, ...args]);
  } else {
    run("npm " + args[0], "npm", args, { shell: process.platform === "win32" });
  }
}

run("tsc", process.execPath, [tsc, "-p", "tsconfig.build.json"]);
