// The README's "Guarantees" section maps each guarantee to the tests that hold it: this
// keeps that map true. Every row must cite at least one test, every file it cites must
// exist, and every test name it quotes must be found in that file (or, for a stage,
// in tests/run).
import { existsSync, readFileSync } from "node:fs";
import { suite, testPath } from "./_harness.ts";

const root = testPath("../");
const readme = readFileSync(`${root}README.md`, "utf8");

suite("README guarantees", (t) => {
  const start = readme.indexOf("\n## Guarantees\n");
  t.ok(start >= 0, "the README has a Guarantees section");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  const rows = section.split("\n").filter((line) => line.startsWith("| **"));
  t.ok(rows.length >= 8, `${rows.length} guarantees listed`);

  for (const row of rows) {
    const [guarantee, tests] = row.slice(2, -2).split(" | ");
    const title = guarantee.match(/\*\*(.+?)\.?\*\*/)?.[1] ?? guarantee.slice(0, 30);
    // Citations: a file in backticks, then the test names quoted after it, up to the next file.
    const citations = [...tests.matchAll(/`([^`]+\.(?:ts|zig|c)|tests\/run)`([^`]*)/g)];
    t.ok(citations.length > 0, `${title}: cites tests`);
    for (const [, file, rest] of citations) {
      const path = file.includes("/") ? `${root}${file}` : `${root}tests/${file}`;
      if (!existsSync(path)) {
        t.fail(`${title}: ${file} exists`);
        continue;
      }
      const source = readFileSync(path, "utf8");
      for (const [, quoted] of rest.matchAll(/"([^"]+)"/g)) {
        // A name cited by its beginning ends in "…" (or ", …" / ": …").
        const name = quoted.replace(/[,:]? …$/, "");
        t.ok(source.includes(name), `${title}: ${file} has a test "${name}"`);
      }
    }
  }
  return Promise.resolve();
});
