/**
 * The Deno backend: `Deno.dlopen` and `Deno.UnsafeCallback.threadSafe`.
 *
 * A Deno thread-safe callback called from a foreign thread blocks that thread until the JS
 * thread has run it, and it keeps the event loop alive while referenced. Only the
 * dispatcher thread ever calls the wake, so the blocking costs mutators nothing; the
 * callback is unreferenced at once so that an idle counter does not keep the process alive.
 *
 * @module
 */
import type { Backend, Bound, Pointer, SymbolSpec, Wake } from "./symbols.ts";

export const backend: Backend = {
  runtime: "deno",

  // Getters and methods, like every use of `Deno` here: this module is also loaded (never
  // used) on Bun.
  get platform() {
    const os = Deno.build.os;
    return os === "windows" ? "win32" : os;
  },

  get arch() {
    const arch = Deno.build.arch;
    return arch === "x86_64" ? "x64" : arch === "aarch64" ? "arm64" : arch;
  },

  mayRead(path: string): boolean {
    return granted({ name: "read", path });
  },

  mayReadEnv(name: string): boolean {
    return granted({ name: "env", variable: name });
  },

  env(name: string): string | undefined {
    // Only when already granted: Deno.env.get would otherwise prompt on a terminal.
    return granted({ name: "env", variable: name }) ? Deno.env.get(name) : undefined;
  },

  open<S extends Record<string, SymbolSpec>>(path: string, symbols: S): Bound<S> {
    // The symbol table is written in Deno's own vocabulary, so it passes through as is.
    const library = Deno.dlopen(path, symbols as unknown as Deno.ForeignLibraryInterface);
    return library.symbols as unknown as Bound<S>;
  },

  pointerFromCell(cell: BigUint64Array): Pointer {
    return Deno.UnsafePointer.create(cell[0]) as unknown as Pointer;
  },

  cString(pointer: Pointer): string {
    return Deno.UnsafePointerView.getCString(pointer as unknown as Deno.PointerObject);
  },

  wake(callback: () => void): Wake {
    const unsafe = Deno.UnsafeCallback.threadSafe({ parameters: ["pointer"], result: "void" }, () => callback());
    unsafe.unref();
    return {
      pointer: unsafe.pointer as unknown as Pointer,
      close: () => unsafe.close(),
    };
  },
};

/** Whether Deno already grants `permission`: asking instead would prompt on a terminal. */
function granted(permission: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(permission).state === "granted";
  } catch {
    return false;
  }
}
