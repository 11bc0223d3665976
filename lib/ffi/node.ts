/**
 * The Node backend: the built-in `node:ffi` (Node ≥ 26.1), and a libuv async handle as the
 * wake.
 *
 * `node:ffi` makes callbacks that only the thread that made them may call: there is no
 * thread-safe callback, and none is needed. The wake is an `uv_async_t` on this thread's
 * loop, initialised here, whose callback is such a same-thread callback; the sink's waker
 * thread signals it through `refscope_async_wake`, a librefscope trampoline that calls
 * `uv_async_send(handle)` (libuv coalesces the signals, as the queue expects). The handle
 * lives in librefscope's memory (`refscope_async_open`), which outlives the isolate's heap
 * at exit, and it is unreferenced, so that an idle counter never keeps Node alive.
 *
 * Only the main thread makes one (see `Backend.wake`). A Worker must not: a `worker_threads`
 * Worker whose loop still holds a handle that Node does not know about aborts the whole
 * process when it ends (`uv_loop_close() while having open handles`), and on `terminate()`
 * nothing in the Worker runs first that could close it. A Worker's wakes are relayed.
 *
 * 64-bit values cross `node:ffi` as BigInts: pointers are BigInts here, opaque elsewhere.
 *
 * `node:ffi` is loaded on first use, through `process.getBuiltinModule`: this module is
 * imported on every runtime, and Deno and Bun have no `node:ffi` to import statically.
 *
 * @module
 */
import process from "node:process";
import { setImmediate } from "node:timers";
import { isMainThread } from "node:worker_threads";
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

/** The part of `node:ffi` used here (Node 26's own types are not in the pinned @types/node). */
type NodeType = "void" | "pointer" | "int32" | "uint32" | "uint64" | "double";
interface Signature {
  readonly arguments: readonly NodeType[];
  readonly return: NodeType;
}
interface DynamicLibrary {
  registerCallback(signature: Signature, callback: (...args: unknown[]) => unknown): bigint;
  unregisterCallback(pointer: bigint): void;
  getSymbol(name: string): bigint;
}
interface NodeFfi {
  dlopen(
    path: string | null,
    definitions: Record<string, Signature>,
  ): { lib: DynamicLibrary; functions: Record<string, (...args: unknown[]) => unknown> };
  toString(pointer: bigint): string;
  getCurrentEventLoop(): bigint;
}

let ffi: NodeFfi | undefined;

/** `node:ffi`, or undefined: before Node 26.1, or with `--no-experimental-ffi`. */
function loadFfi(): NodeFfi | undefined {
  const getBuiltinModule = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  ffi ??= getBuiltinModule?.("node:ffi") as NodeFfi | undefined;
  return ffi;
}

function nodeFfi(): NodeFfi {
  return loadFfi()!; // `unsupported` said it is there.
}

const nodeTypes: Record<NativeType, NodeType> = {
  u32: "uint32",
  i32: "int32",
  f64: "double",
  pointer: "pointer",
  // A TypedArray passed as a pointer is the address of its bytes.
  buffer: "pointer",
  void: "void",
};

/** Each library opened, by path: `wake` needs librefscope's async calls. */
const opened = new Map<string, { lib: DynamicLibrary; functions: Record<string, (...args: unknown[]) => unknown> }>();

/** libuv, from the process itself: what a wake needs, bound once per thread. */
interface Libuv {
  readonly lib: DynamicLibrary;
  readonly asyncInit: (loop: bigint, handle: bigint, callback: bigint) => number;
  readonly close: (handle: bigint, callback: bigint) => void;
  readonly unref: (handle: bigint) => void;
  /** The address of `uv_async_send`, for librefscope's trampoline to call. */
  readonly send: bigint;
  /** `sizeof(uv_async_t)`. */
  readonly asyncSize: number;
}

let libuv: Libuv | undefined;

/** `UV_ASYNC` in libuv's `uv_handle_type` (stable since libuv 1.0). */
const uvAsync = 1;

function uv(): Libuv {
  if (libuv !== undefined) return libuv;
  const { lib, functions } = nodeFfi().dlopen(null, {
    uv_async_init: { arguments: ["pointer", "pointer", "pointer"], return: "int32" },
    uv_close: { arguments: ["pointer", "pointer"], return: "void" },
    uv_unref: { arguments: ["pointer"], return: "void" },
    uv_handle_size: { arguments: ["int32"], return: "uint64" },
  });
  libuv = {
    lib,
    asyncInit: functions.uv_async_init as Libuv["asyncInit"],
    close: functions.uv_close as Libuv["close"],
    unref: functions.uv_unref as Libuv["unref"],
    send: lib.getSymbol("uv_async_send"),
    asyncSize: Number(functions.uv_handle_size(uvAsync)),
  };
  return libuv;
}

export const backend: Backend = {
  runtime: "node",

  get platform() {
    return process.platform;
  },

  get arch() {
    return process.arch;
  },

  unsupported(): string | undefined {
    if (loadFfi() !== undefined) return undefined;
    return `refscope needs node:ffi, which Node has from 26.1 on; this is Node ${process.versions.node}` +
      (Number.parseInt(process.versions.node) >= 26 ? ", started with --no-experimental-ffi" : "");
  },

  mayRead(path: string): boolean {
    // Under `--permission`, reading without `--allow-fs-read` throws.
    const permission = (process as { permission?: { has(scope: string, reference?: string): boolean } }).permission;
    return permission === undefined || permission.has("fs.read", path);
  },

  mayReadEnv(): boolean {
    return true;
  },

  env(name: string): string | undefined {
    return process.env[name];
  },

  open<S extends Record<string, SymbolSpec>>(path: string, symbols: S): Bound<S> {
    const definitions: Record<string, Signature> = {};
    for (const [name, spec] of Object.entries(symbols)) {
      definitions[name] = { arguments: spec.parameters.map((type) => nodeTypes[type]), return: nodeTypes[spec.result] };
    }
    const library = nodeFfi().dlopen(path, definitions);
    const functions = library.functions;
    const bound: Record<string, (...args: unknown[]) => unknown> = { ...functions };
    for (const [name, spec] of Object.entries(symbols)) {
      // A NULL pointer comes back as 0n: the other backends say null.
      if (spec.result === "pointer") {
        const call = functions[name];
        bound[name] = (...args: unknown[]) => {
          const result = call(...args) as bigint;
          return result === 0n ? null : result;
        };
      }
    }
    opened.set(path, library);
    return bound as unknown as Bound<S>;
  },

  openFailureReason(error: unknown): string {
    return messageWithout(error, "dlopen failed: ");
  },

  pointerFromCell(cell: BigUint64Array): Pointer {
    return cell[0] as unknown as Pointer;
  },

  numericAddress(pointer: Pointer): number | undefined {
    return Number(pointer as unknown as bigint); // Exact: addresses are below 2^53.
  },

  cString(pointer: Pointer): string {
    return nodeFfi().toString(pointer as unknown as bigint);
  },

  wake(callback: () => void, library: string): Wake {
    const { lib, functions: refscope } = opened.get(library)!;
    const libuv = uv();
    const signature: Signature = { arguments: ["pointer"], return: "void" };
    // A `node:ffi` callback must not throw: an exception is rethrown from a microtask.
    const onAsync = libuv.lib.registerCallback(signature, () => {
      try {
        callback();
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    });
    const cells = new BigUint64Array(2);
    const status = refscope.refscope_async_open(libuv.send, libuv.asyncSize, cells.subarray(0, 1), cells.subarray(1));
    if (status !== 0) {
      libuv.lib.unregisterCallback(onAsync);
      throw new Error(`refscope: cannot allocate the wake's libuv handle (status ${status})`);
    }
    const [record, handle] = cells;
    const initialised = libuv.asyncInit(nodeFfi().getCurrentEventLoop(), handle, onAsync);
    if (initialised !== 0) {
      refscope.refscope_async_free(record);
      libuv.lib.unregisterCallback(onAsync);
      throw new Error(`refscope: uv_async_init failed (${initialised})`);
    }
    libuv.unref(handle);
    let closed = false;
    return {
      pointer: lib.getSymbol("refscope_async_wake") as unknown as Pointer,
      context: record as unknown as Pointer,
      blocks: false,
      close: () => {
        if (closed) return;
        closed = true;
        // The loop lets go of the handle in its close callback; only then is it freed,
        // and the callbacks with it (a callback must not unregister itself as it runs).
        const onClose = libuv.lib.registerCallback(signature, () => {
          setImmediate(() => {
            refscope.refscope_async_free(record);
            libuv.lib.unregisterCallback(onAsync);
            libuv.lib.unregisterCallback(onClose);
          });
        });
        libuv.close(handle, onClose);
      },
      exit: () => {
        if (closed) return;
        closed = true;
        // Node runs the loop once more as it frees the thread's JS, and may not call into
        // JS then: closed with no callback, and never freed (the process is ending).
        libuv.close(handle, 0n);
      },
    };
  },

  isMainThread(): boolean {
    return isMainThread;
  },

  channel: unrefChannel,
};
