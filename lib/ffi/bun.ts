/**
 * The Bun backend: `bun:ffi` `dlopen` and `JSCallback` with `threadsafe: true`.
 *
 * A Bun thread-safe callback called from a foreign thread is queued to the JS thread and
 * the caller returns at once; it does not keep the process alive. Calls already queued
 * when it is closed still arrive, so the wake's owner checks its own closed flag.
 *
 * `bun:ffi` is required on first use rather than imported, so that this module can be
 * imported statically on every runtime: a top-level await would let timers that other
 * modules set during loading fire before the importer's body runs.
 *
 * @module
 */
import type * as BunFfi from "bun:ffi";
import process from "node:process";
import {
  type Backend,
  type Bound,
  messageWithout,
  type NativeType,
  type Pointer,
  type SymbolSpec,
  unrefChannel,
  type Wake,
} from "./symbols.ts";

let ffi: typeof BunFfi | undefined;

function bunFfi(): typeof BunFfi {
  ffi ??= (import.meta as unknown as { require(id: string): typeof BunFfi }).require("bun:ffi");
  return ffi;
}

const bunTypes: Record<NativeType, string> = {
  u32: "u32",
  i32: "i32",
  f64: "f64",
  pointer: "ptr",
  buffer: "ptr",
  void: "void",
};

export const backend: Backend = {
  runtime: "bun",

  get platform() {
    return process.platform;
  },

  get arch() {
    return process.arch;
  },

  unsupported(): undefined {
    return undefined;
  },

  mayRead(): boolean {
    return true;
  },

  mayReadEnv(): boolean {
    return true;
  },

  env(name: string): string | undefined {
    return process.env[name];
  },

  open<S extends Record<string, SymbolSpec>>(path: string, symbols: S): Bound<S> {
    const translated: Record<string, BunFfi.FFIFunction> = {};
    for (const [name, spec] of Object.entries(symbols)) {
      translated[name] = {
        args: spec.parameters.map((type) => bunTypes[type]),
        returns: bunTypes[spec.result],
      } as BunFfi.FFIFunction;
    }
    return bunFfi().dlopen(path, translated).symbols as unknown as Bound<S>;
  },

  openFailureReason(error: unknown, path: string): string {
    return messageWithout(error, `Failed to open library "${path}": `);
  },

  pointerFromCell(cell: BigUint64Array): Pointer {
    return Number(cell[0]) as unknown as Pointer;
  },

  numericAddress(_pointer: Pointer): number | undefined {
    return undefined; // A Bun pointer is a number already: the pointer forms are as fast.
  },

  cString(pointer: Pointer): string {
    return new (bunFfi().CString)(pointer as unknown as BunFfi.Pointer).toString();
  },

  wake(callback: () => void): Wake {
    const js = new (bunFfi().JSCallback)(() => callback(), { args: ["ptr"], returns: "void", threadsafe: true });
    return {
      pointer: js.ptr as unknown as Pointer,
      context: null,
      blocks: false,
      close: () => js.close(),
      exit: () => {},
    };
  },

  isMainThread(): boolean {
    return (globalThis as unknown as { Bun: { isMainThread: boolean } }).Bun.isMainThread;
  },

  channel: unrefChannel,
};
