/**
 * The Deno backend: `Deno.dlopen` and `Deno.UnsafeCallback.threadSafe`.
 *
 * A Deno thread-safe callback called from a foreign thread blocks that thread until the JS
 * thread has run it, and it keeps the event loop alive while referenced. Only the sink's
 * own waker thread ever calls the wake, so the blocking costs mutators and other sinks
 * nothing; the callback is unreferenced at once so that an idle counter does not keep the
 * process alive. Only the main thread makes one (see `Backend.wake`).
 *
 * @module
 */
import {
  type Backend,
  type Bound,
  type Channel,
  messageWithout,
  type Pointer,
  type SymbolSpec,
  type Wake,
} from "./symbols.ts";

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

  unsupported(): undefined {
    return undefined;
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

  openFailureReason(error: unknown): string {
    // Deno 2.9 says "Could not open library: Could not open library: <dlerror>".
    return messageWithout(error, "Could not open library: ");
  },

  pointerFromCell(cell: BigUint64Array): Pointer {
    return Deno.UnsafePointer.create(cell[0]) as unknown as Pointer;
  },

  numericAddress(pointer: Pointer): number | undefined {
    // The all-doubles calls are a little faster here too (pair 78 vs 83 ns, measured).
    return Number(Deno.UnsafePointer.value(pointer as unknown as Deno.PointerValue));
  },

  cString(pointer: Pointer): string {
    return Deno.UnsafePointerView.getCString(pointer as unknown as Deno.PointerObject);
  },

  wake(callback: () => void): Wake {
    const unsafe = Deno.UnsafeCallback.threadSafe({ parameters: ["pointer"], result: "void" }, () => callback());
    unsafe.unref();
    return {
      pointer: unsafe.pointer as unknown as Pointer,
      context: null,
      blocks: true,
      close: () => unsafe.close(),
      exit: () => {},
    };
  },

  isMainThread(): boolean {
    // Deno's `node:worker_threads` says `isMainThread` in a Web Worker too; the global
    // scope does not lie.
    return typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === "undefined";
  },

  channel(name: string, onMessage?: (data: unknown) => void): Channel {
    const channel = new BroadcastChannel(name);
    if (onMessage !== undefined) channel.onmessage = (event) => onMessage(event.data);
    if (unrefChannel(channel)) return { post: (data) => channel.postMessage(data), close: () => channel.close() };
    // A Deno without the method: a channel kept open would keep the process alive, so a
    // poster opens one per message instead (a listener must stay open: in a Worker, whose
    // life is not decided by its event loop alone).
    if (onMessage !== undefined) return { post: (data) => channel.postMessage(data), close: () => channel.close() };
    channel.close();
    return {
      post: (data) => {
        const once = new BroadcastChannel(name);
        once.postMessage(data);
        once.close();
      },
      close: () => {},
    };
  },
};

/**
 * Deno has no public `unref` for a BroadcastChannel; its `node:worker_threads` uses a
 * method of the prototype's, keyed by a symbol, which this finds. False when it is gone.
 */
function unrefChannel(channel: BroadcastChannel): boolean {
  const key = Object.getOwnPropertySymbols(BroadcastChannel.prototype)
    .find((symbol) => symbol.description === "refBroadcastChannel");
  const method = key === undefined ? undefined : (channel as unknown as Record<symbol, unknown>)[key];
  if (typeof method !== "function") return false;
  method.call(channel, false);
  return true;
}

/** Whether Deno already grants `permission`: asking instead would prompt on a terminal. */
function granted(permission: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(permission).state === "granted";
  } catch {
    return false;
  }
}
