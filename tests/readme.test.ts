// The README maps each guarantee to the tests that hold it, and documents every public data
// shape in a table, one row per field: this keeps both true.
//
// Guarantees: every row must cite at least one test, every file it cites must exist, and
// every test name it quotes must be found in that file (or, for a stage, in tests/run).
//
// Shapes: a table whose header row is "| `Name` field | meaning |" documents the interface
// (or error class) `Name` declared in lib/*.ts, one row per field, each row's first cell the
// field in backticks ("| `liveBytes` | … |"). A row "| every `Base` field | … |" stands for
// every field of `Base`, which `Name` must extend. Every interface mod.ts exports, and every
// exported class that extends Error, must have exactly one such table. So a field added to a
// type fails here until its README table has a row for it, and a row fails once its field
// is gone.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { type IAssert, suite, testPath } from "./_harness.ts";

const root = testPath("../");
const readme = readFileSync(`${root}README.md`, "utf8");

function checkGuarantees(t: IAssert): void {
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
}

/** An interface or class as declared in lib/: its own fields and what it extends. */
interface Shape {
  readonly file: string;
  readonly kind: "interface" | "class";
  readonly fields: readonly string[];
  readonly bases: readonly string[];
}

/** Error's own fields (ES2022); `stack` is not standard, so the README need not list it. */
const builtins = new Map<string, Shape>([
  ["Error", { file: "ES2022", kind: "class", fields: ["name", "message", "cause"], bases: [] }],
]);

/**
 * The exported interfaces and classes of lib/*.ts, read from the source by layout, which
 * `deno fmt` keeps fixed: a declaration starts a line and its body ends at the next line
 * that is "}"; a member starts at two spaces' indent (deeper lines and JSDoc lines do not).
 * A class's fields are its `readonly` ones (its methods and accessors are not data).
 */
function declaredShapes(): Map<string, Shape> {
  const shapes = new Map(builtins);
  for (const name of readdirSync(`${root}lib`).filter((name) => name.endsWith(".ts")).sort()) {
    const file = `lib/${name}`;
    const source = readFileSync(`${root}${file}`, "utf8");
    const declarations = /^export (interface|class) (\w+)(?:<[^>]*>)?(?: extends ([\w<>, ]+?))? \{$/gm;
    for (const match of source.matchAll(declarations)) {
      const [, kind, shape, extended] = match;
      const start = match.index + match[0].length;
      const body = source.slice(start, source.indexOf("\n}", start));
      const member = kind === "interface"
        ? /^ {2}(?:readonly )?(\w+)\??[:(<]/gm
        : /^ {2}(?:declare )?readonly (\w+)\??:/gm;
      shapes.set(shape, {
        file,
        kind: kind as Shape["kind"],
        fields: [...body.matchAll(member)].map(([, field]) => field),
        bases: extended === undefined ? [] : extended.split(",").map((base) => base.trim().replace(/<.*$/, "")),
      });
    }
  }
  return shapes;
}

/** Every field of `name`, its bases' included: field → the shape that declares it. */
function allFields(shapes: Map<string, Shape>, name: string): Map<string, string> {
  const shape = shapes.get(name)!;
  const fields = new Map<string, string>();
  // A base declared outside lib/ and not a builtin (none yet) adds no fields.
  for (const base of shape.bases.filter((base) => shapes.has(base))) {
    for (const [field, from] of allFields(shapes, base)) fields.set(field, from);
  }
  for (const field of shape.fields) fields.set(field, name);
  return fields;
}

function extendsShape(shapes: Map<string, Shape>, name: string, base: string): boolean {
  return (shapes.get(name)?.bases ?? []).some((direct) => direct === base || extendsShape(shapes, direct, base));
}

/** The names mod.ts exports (`type X` or `X`, from its `export { … } from` lists). */
function exportedNames(): Set<string> {
  const mod = readFileSync(`${root}mod.ts`, "utf8");
  const names = new Set<string>();
  for (const [, list] of mod.matchAll(/^export (?:type )?\{([^}]*)\}/gm)) {
    for (const entry of list.split(",")) {
      const name = entry.trim().replace(/^type /, "");
      if (name !== "") names.add(name);
    }
  }
  return names;
}

/** Each README table headed "| `Name` field | meaning |": its rows' first cells, in order. */
function readmeTables(): { shape: string; line: number; rows: string[] }[] {
  const lines = readme.split("\n");
  const tables = [];
  for (let index = 0; index < lines.length; index++) {
    const shape = lines[index].match(/^\| `(\w+)` field \| meaning \|$/)?.[1];
    if (shape === undefined) continue;
    const rows: string[] = [];
    for (let row = index + 2; row < lines.length && lines[row].startsWith("|"); row++) {
      rows.push(lines[row].slice(2, lines[row].indexOf(" | ")));
    }
    tables.push({ shape, line: index + 1, rows });
  }
  return tables;
}

function checkShapes(t: IAssert): void {
  const shapes = declaredShapes();
  const exported = exportedNames();
  const tables = readmeTables();
  const documented = (name: string) =>
    exported.has(name) && shapes.get(name)?.file.startsWith("lib/") === true &&
    (shapes.get(name)!.kind === "interface" || extendsShape(shapes, name, "Error"));
  const required = [...shapes.keys()].filter(documented);
  t.ok(required.length >= 18, `${required.length} public data shapes to document`);
  for (const name of required) {
    const count = tables.filter((table) => table.shape === name).length;
    if (count !== 1) {
      t.fail(
        `README: ${count} tables for ${name} (declared in ${shapes.get(name)!.file}), not one: ` +
          `add one headed "| \`${name}\` field | meaning |"`,
      );
    }
  }

  for (const { shape, line, rows } of tables) {
    const where = `README.md:${line}, the ${shape} table`;
    if (!documented(shape)) {
      t.fail(`${where}: ${shape} is not an interface or error class that mod.ts exports`);
      continue;
    }
    const fields = allFields(shapes, shape);
    const listed = new Set<string>();
    for (const row of rows) {
      const field = row.match(/^`(\w+)`$/)?.[1];
      const base = row.match(/^every `(\w+)` field$/)?.[1];
      if (base !== undefined && extendsShape(shapes, shape, base)) {
        for (const [inherited, from] of fields) {
          if (from === base || extendsShape(shapes, base, from)) listed.add(inherited);
        }
      } else if (base !== undefined) {
        t.fail(`${where}: row "${row}", but ${shape} does not extend ${base}`);
      } else if (field === undefined) {
        t.fail(`${where}: row "${row}" names no field (write "\`field\`" or "every \`Base\` field")`);
      } else if (listed.has(field)) {
        t.fail(`${where}: \`${field}\` has two rows`);
      } else if (!fields.has(field)) {
        t.fail(`${where}: row \`${field}\`, but ${shape} (${shapes.get(shape)!.file}) has no field ${field}`);
      } else {
        listed.add(field);
      }
    }
    const missing = [...fields.keys()].filter((field) => !listed.has(field));
    for (const field of missing) {
      const from = fields.get(field)!;
      t.fail(
        `${where}: no row for \`${field}\`, a field of ${from} (${shapes.get(from)!.file}); add "| \`${field}\` | … |"`,
      );
    }
    if (missing.length === 0) t.ok(true, `${shape}: a row for each of its ${fields.size} fields`);
  }
}

suite("README", async (t) => {
  await t.test("the Guarantees table cites tests that exist", (t) => {
    checkGuarantees(t);
    return Promise.resolve();
  });
  await t.test("every public data shape has a table with one row per field", (t) => {
    checkShapes(t);
    return Promise.resolve();
  });
});
