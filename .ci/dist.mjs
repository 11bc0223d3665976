// Builds every npm package refscope publishes into zig-out/dist/npm/<name>/, ready for
// `npm publish` (and, with --pack, packs each into zig-out/dist/tarballs/):
//
//   refscope                 the TypeScript API compiled to .js + .d.ts (Deno will not run
//                            TypeScript from node_modules), depending on @refscope/native
//   @refscope/native         the resolver (native/npm/), with every platform package as an
//                            optional dependency (`zig build dist`, build.zig)
//   @refscope/<platform>     one prebuilt librefscope each (`zig build dist`)
//
// and stages the JSR package @refscope/refscope in zig-out/dist/jsr/ (`deno publish` there).
//
// One version for all, the root package.json's; the script refuses to build when deno.json,
// build.zig.zon, native/npm/package.json or deno.json's npm:@refscope/native import
// disagree with it, because a user's install would then mix versions.
//
//   node .ci/dist.mjs [--pack] [--skip-native]
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "zig-out", "dist");
const args = new Set(process.argv.slice(2));
const bin = join(root, "node_modules", ".bin");
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };

const readJson = (path) => JSON.parse(readFileSync(join(root, path), "utf8"));
const writeJson = (path, value) => writeFileSync(path, JSON.stringify(value, null, 2) + "\n");
const run = (command, commandArgs, options = {}) =>
  execFileSync(command, commandArgs, { cwd: root, env, stdio: "inherit", ...options });

const manifest = readJson("package.json");
const version = manifest.version;
const platforms = readJson("native/npm/platforms.json");

function checkVersions() {
  const zon = readFileSync(join(root, "build.zig.zon"), "utf8").match(/\.version\s*=\s*"([^"]+)"/)?.[1];
  const deno = readJson("deno.json");
  const found = {
    "deno.json version": deno.version,
    "deno.json imports @refscope/native": deno.imports["@refscope/native"]?.replace(/^npm:@refscope\/native@/, ""),
    "build.zig.zon .version": zon,
    "native/npm/package.json version": readJson("native/npm/package.json").version,
  };
  const wrong = Object.entries(found).filter(([, value]) => value !== version);
  if (wrong.length > 0) {
    const lines = wrong.map(([where, value]) => `  ${where}: ${value ?? "(missing)"}`).join("\n");
    throw new Error(`versions disagree with package.json's ${version}:\n${lines}`);
  }
}

/** refscope: tsc emits mod.js, lib/**.js and their .d.ts from the same sources Deno runs. */
function buildApi() {
  const directory = join(out, "npm", "refscope");
  rmSync(directory, { recursive: true, force: true });
  // Deno's own declarations, so that tsc checks lib/ffi/deno.ts against the real API.
  mkdirSync(join(root, ".zig-cache", "tsc"), { recursive: true });
  writeFileSync(join(root, ".zig-cache", "tsc", "deno.d.ts"), execFileSync("deno", ["types"], { env }));
  run("tsc", ["-p", ".ci/tsconfig.build.json"]);
  writeJson(join(directory, "package.json"), {
    name: manifest.name,
    version,
    description: manifest.description,
    license: manifest.license,
    keywords: ["reference counting", "ffi", "deno", "bun", "node", "zig", "ray", "memory"],
    // node:ffi arrived in Node 26.1; Deno and Bun ignore this field.
    engines: { node: ">=26.1" },
    type: "module",
    main: "./mod.js",
    types: "./mod.d.ts",
    exports: { ".": { types: "./mod.d.ts", default: "./mod.js" } },
    files: ["mod.js", "mod.d.ts", "lib/", "README.md", "LICENSE"],
    dependencies: { "@refscope/native": version },
  });
  for (const file of ["README.md", "LICENSE"]) copyFileSync(join(root, file), join(directory, file));
}

/**
 * The JSR package, staged as it will be published: deno.json and the TypeScript sources,
 * plus node_modules/@refscope/native as the built resolver. In the checkout that import
 * resolves through a symlink back into native/npm/, which `deno publish` would take for
 * part of this package; here it is what JSR users get, an npm package beside it.
 */
function buildJsr() {
  const directory = join(out, "jsr");
  rmSync(directory, { recursive: true, force: true });
  mkdirSync(directory, { recursive: true });
  for (const file of ["deno.json", "mod.ts", "README.md", "LICENSE"]) {
    copyFileSync(join(root, file), join(directory, file));
  }
  cpSync(join(root, "lib"), join(directory, "lib"), { recursive: true });
  cpSync(join(out, "npm", "native"), join(directory, "node_modules", "@refscope", "native"), { recursive: true });
  // Type-checking node: imports in manual mode needs Node's types; JSR provides its own.
  mkdirSync(join(directory, "node_modules", "@types"), { recursive: true });
  symlinkSync(join(root, "node_modules", "@types", "node"), join(directory, "node_modules", "@types", "node"));
}

function pack() {
  const tarballs = join(out, "tarballs");
  rmSync(tarballs, { recursive: true, force: true });
  mkdirSync(tarballs, { recursive: true });
  for (const name of readdirSync(join(out, "npm"))) {
    run("npm", ["pack", "--silent", "--pack-destination", tarballs], { cwd: join(out, "npm", name), stdio: "ignore" });
  }
  return readdirSync(tarballs).sort();
}

checkVersions();
// From scratch: nothing of an earlier build (a platform since removed, a stale tarball)
// may end up packed or checked as if this run had made it.
if (!args.has("--skip-native")) {
  rmSync(out, { recursive: true, force: true });
  run("bash", [".ci/zig", "build", "dist"]);
}
for (const file of [...platforms.map((platform) => join(platform.name, platform.file)), "native/package.json"]) {
  if (!existsSync(join(out, "npm", file))) {
    throw new Error(`zig-out/dist/npm/${file} is missing: run \`zig build dist\``);
  }
}
buildApi();
buildJsr();
if (args.has("--pack")) { for (const tarball of pack()) console.log(join("zig-out", "dist", "tarballs", tarball)); }
