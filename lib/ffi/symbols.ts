/**
 * The librefscope symbol table, for every runtime, and the types a backend provides (see
 * `native/include/refscope.h` for each function's contract).
 *
 * Types use Deno's names; the Bun and Node backends translate them. Ids and byte sizes are
 * `f64` because a double is on every runtime's fast FFI path, while a 64-bit integer costs
 * a BigInt (slow on Bun and Node) or a slow number conversion (on Deno).
 *
 * @module
 */

import { symbols } from "./abi.gen.ts";

/** A parameter or result type, in Deno's spelling. */
export type NativeType = "u32" | "i32" | "f64" | "pointer" | "buffer" | "void";

/** One foreign function. */
export interface SymbolSpec {
  readonly parameters: readonly NativeType[];
  readonly result: NativeType;
}

/**
 * librefscope's exported functions, generated from the native exports (`abi.gen.ts`);
 * `satisfies` checks that every type is one both backends bind.
 */
export const refscopeSymbols = symbols satisfies Record<string, SymbolSpec>;

declare const pointerBrand: unique symbol;
/** A native pointer, opaque to everything outside the backends. */
export type Pointer = { readonly [pointerBrand]: true };

type JsParameter<T extends NativeType> = T extends "pointer" ? Pointer | null
  : T extends "buffer" ? ArrayBufferView
  : number;
type JsResult<T extends NativeType> = T extends "void" ? void
  : T extends "pointer" ? Pointer | null
  : number;
type JsParameters<P extends readonly NativeType[]> = { -readonly [K in keyof P]: JsParameter<P[K]> };

/** The callable functions a backend produces for a symbol table. */
export type Bound<S extends Record<string, SymbolSpec>> = {
  readonly [K in keyof S]: (...args: JsParameters<S[K]["parameters"]>) => JsResult<S[K]["result"]>;
};

/** A wake callback that native code may call from any thread. */
export interface Wake {
  /** The C function pointer to hand to `refscope_sink_open`. */
  readonly pointer: Pointer;
  /** Its context argument (Node's: a `refscope_async`), or null. */
  readonly context: Pointer | null;
  /** Whether a call blocks the waker until the JS thread runs it (Deno's). */
  readonly blocks: boolean;
  /** Frees the callback; only once no native thread can call it any more. */
  close(): void;
  /**
   * The thread is ending (`process.on("exit")`), after its sink's close: lets go of what
   * the runtime would still dispatch, freeing nothing a late wake could touch.
   */
  exit(): void;
}

/** What a runtime backend provides: everything in `lib/` that differs between runtimes. */
export interface Backend {
  readonly runtime: "deno" | "bun" | "node";
  /**
   * The operating system in Node's vocabulary (`process.platform`: "linux", "darwin",
   * "win32", ...), which decides library file names and the platform package.
   */
  readonly platform: string;
  /** The CPU architecture in Node's vocabulary (`process.arch`: "x64", "arm64", ...). */
  readonly arch: string;
  /** Why this runtime cannot load librefscope at all (a Node without `node:ffi`), if it cannot. */
  unsupported(): string | undefined;
  /** Whether `path` may be read without asking anyone (Deno prompts on a terminal). */
  mayRead(path: string): boolean;
  /** Whether environment variable `name` may be read without asking anyone (Deno prompts). */
  mayReadEnv(name: string): boolean;
  /** Reads an environment variable, or undefined when unset or not permitted. */
  env(name: string): string | undefined;
  /** Opens a shared library; throws the runtime's error when it cannot. */
  open<S extends Record<string, SymbolSpec>>(path: string, symbols: S): Bound<S>;
  /**
   * The system's reason in an error that `open(path)` threw, without the words the runtime
   * wraps it in: the load error names each path once, with the reason after it.
   */
  openFailureReason(error: unknown, path: string): string;
  /** Reads the pointer a native call wrote into an out-parameter cell. */
  pointerFromCell(cell: BigUint64Array): Pointer;
  /**
   * A counter's address as a number, for the all-doubles calls (`refscope_object_*_n`), on a
   * runtime where they are the faster ones (Node's `node:ffi` passes a pointer as a BigInt,
   * slowly); undefined where the pointer forms are as fast (Bun).
   */
  numericAddress(pointer: Pointer): number | undefined;
  /** Reads a NUL-terminated string. */
  cString(pointer: Pointer): string;
  /**
   * Makes a `void (*)(void *)` callable from any native thread. The callback must not
   * keep the process alive by itself: liveness is the caller's decision. Only for a
   * thread whose end is the process's end (see `isMainThread`): a runtime frees a
   * Worker's callbacks when the Worker ends, with no event that native code could see.
   * `library` is the path of the loaded librefscope (Node's wake uses its `refscope_async_*`).
   */
  wake(callback: () => void, library: string): Wake;
  /**
   * Whether this is the runtime's main thread, whose end is the process's end, rather
   * than a Worker.
   */
  isMainThread(): boolean;
  /**
   * A `BroadcastChannel` that does not keep the event loop alive (an idle counter never
   * does), optionally listening.
   */
  channel(name: string, onMessage?: (data: unknown) => void): Channel;
}

/** A `BroadcastChannel` between the JS threads of this process, unreferenced. */
export interface Channel {
  post(data: unknown): void;
  close(): void;
}

/**
 * `Backend.channel` for a runtime whose `BroadcastChannel` has Node's `unref()` (Bun and
 * Node; Deno's has no public one).
 */
export function unrefChannel(name: string, onMessage?: (data: unknown) => void): Channel {
  const channel = new BroadcastChannel(name) as BroadcastChannel & { unref(): void };
  if (onMessage !== undefined) channel.onmessage = (event) => onMessage(event.data);
  channel.unref();
  return { post: (data) => channel.postMessage(data), close: () => channel.close() };
}

/**
 * `error`'s message without each leading `prefix`: a runtime's own wording around the
 * system's message, which Deno repeats.
 */
export function messageWithout(error: unknown, prefix: string): string {
  let message = error instanceof Error ? error.message : String(error);
  while (message.startsWith(prefix)) message = message.slice(prefix.length);
  return message;
}
