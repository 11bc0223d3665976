// zora bounds each subtest by 5 s unless told otherwise, read from ZORA_TIMEOUT when zora
// loads. Subtests bound their own waits (`within`, `until`); this bound is only the last
// resort, and 5 s is too tight for the heavier subtests on a loaded 2-core CI machine.
// Imported by _harness.ts before zora, so it is set by the time zora reads it.
import process from "node:process";

process.env.ZORA_TIMEOUT ??= "60000";
