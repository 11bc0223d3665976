// Handlers register only on live objects their caller owns, and only functions register.
// On a freed or deleted object a registration returns false; on another participant's object
// it is NOT_OWNED; a handler, hook or task that is not a function is INVALID_ARGUMENT. Each
// case goes through tests/_misuse.ts, which checks its code, status, message and an unchanged
// table.
import { Counter } from "../mod.ts";
import { suite } from "./_harness.ts";
import { catalogue, checkWorld, closeWorld, each, type Loose, noop, openWorld, refusals } from "./_misuse.ts";

suite("the misuse catalogue: handlers", async (t) => {
  const world = await openWorld();
  const { counter, peer, live, staleId, freed, shared, borrowed, peerOwned, observe } = world;

  await t.test("preconditions: the fixtures are what the cases assume", (t) => checkWorld(t, world));

  await t.test("registration on freed, deleted and non-owned objects", async (t) => {
    await catalogue(t, [
      {
        what: "onOutOfScope on the peer's object",
        call: () => counter.onOutOfScope(peerOwned.id, noop),
        code: "NOT_OWNED",
        message: `handler on object ${peerOwned.id}`,
      },
      {
        what: "onDeleted on the peer's object",
        call: () => counter.onDeleted(peerOwned.id, noop),
        code: "NOT_OWNED",
        message: `handler on object ${peerOwned.id}`,
      },
      {
        what: "free of the peer's object",
        call: () => counter.free(peerOwned.id),
        code: "NOT_OWNED",
        message: `free object ${peerOwned.id}`,
      },
      {
        what: "the peer's onOutOfScope on this thread's object",
        call: () => peer.onOutOfScope(live.id, noop),
        code: "NOT_OWNED",
        message: `handler on object ${live.id}`,
      },
      {
        what: "the borrower's onOutOfScope on what it borrowed",
        call: () => borrowed.onOutOfScope(noop),
        code: "NOT_OWNED",
        message: `handler on object ${shared.id}`,
      },
      {
        what: "the borrower's onDeleted on what it borrowed",
        call: () => borrowed.onDeleted(noop),
        code: "NOT_OWNED",
        message: `handler on object ${shared.id}`,
      },
      {
        what: "the borrower's free of what it borrowed",
        call: () => borrowed.free(),
        code: "NOT_OWNED",
        message: `free object ${shared.id}`,
      },
    ], observe);
    await refusals(t, [
      { what: "onOutOfScope on a freed object", call: () => counter.onOutOfScope(freed, noop), result: false },
      { what: "onOutOfScope on a freed object, through its Ref", call: () => freed.onOutOfScope(noop), result: false },
      { what: "a second free", call: () => counter.free(freed), result: undefined },
      { what: "onOutOfScope on a deleted object", call: () => counter.onOutOfScope(staleId, noop), result: false },
      { what: "onDeleted on a deleted object", call: () => counter.onDeleted(staleId, noop), result: false },
      {
        what: "offOutOfScope on the peer's object (nothing of this thread's is there)",
        call: () => counter.offOutOfScope(peerOwned.id, noop),
        result: false,
      },
      { what: "offOutOfScope of a handler never registered", call: () => live.offOutOfScope(() => {}), result: false },
    ], observe);
  });

  await t.test("handlers, hooks and tasks that are not functions: INVALID_ARGUMENT", async (t) => {
    const values: [string, unknown][] = [
      ["null", null],
      ["undefined", undefined],
      ["a string", "() => {}"],
      ["a number", 42],
      ["an object", {}],
      ["an object with a call method", { call() {} }],
      ["an array", [noop]],
      ["a symbol", Symbol("handler")],
      ["a bigint", 1n],
      ["a boolean", true],
      ["a promise", Promise.resolve()],
    ];
    const registrations: [string, (handler: Loose) => unknown][] = [
      ["onOutOfScope", (handler) => counter.onOutOfScope(live, handler)],
      ["onDeleted", (handler) => counter.onDeleted(live.id, handler)],
      ["offOutOfScope", (handler) => counter.offOutOfScope(live, handler)],
      ["offDeleted", (handler) => counter.offDeleted(live, handler)],
      ["onOutOfScope", (handler) => live.onOutOfScope(handler)],
      ["onDeleted", (handler) => live.onDeleted(handler)],
      ["offOutOfScope", (handler) => live.offOutOfScope(handler)],
      ["onOutOfScope", (handler) => peer.onOutOfScope(peerOwned, handler)],
    ];
    const handlerCases = registrations.flatMap(([name, call]) =>
      each(
        values,
        ([what]) => `${name} with ${what}`,
        ([, handler]) => call(handler),
        "INVALID_ARGUMENT",
        `${name}: the handler must be a function`,
      )
    );
    const hookValues = values.filter(([, value]) => value !== undefined);
    await catalogue(t, [
      ...handlerCases,
      ...each(
        hookValues,
        ([what]) => `counter.onHandlerError = ${what}`,
        ([, hook]) => {
          counter.onHandlerError = hook as Loose;
        },
        "INVALID_ARGUMENT",
        "onHandlerError must be a function",
      ),
      ...each(
        hookValues,
        ([what]) => `attach with onHandlerError ${what}`,
        ([, hook]) => Counter.attach(counter.key, { onHandlerError: hook as Loose }),
        "INVALID_ARGUMENT",
        "attach: onHandlerError must be a function",
      ),
      ...each(
        hookValues,
        ([what]) => `new Counter with onHandlerError ${what}`,
        ([, hook]) => new Counter({ onHandlerError: hook as Loose }),
        "INVALID_ARGUMENT",
        "new Counter: onHandlerError must be a function",
      ),
      ...each(
        [null, 42, "options"],
        (options) => `attach with options ${String(options)}`,
        (options) => Counter.attach(counter.key, options as Loose),
        "INVALID_ARGUMENT",
        "attach: options must be an object",
      ),
      ...each(
        [null, 42, "options"],
        (options) => `new Counter with options ${String(options)}`,
        (options) => new Counter(options as Loose),
        "INVALID_ARGUMENT",
        "new Counter: options must be an object",
      ),
      ...each(
        values,
        ([what]) => `runTask with ${what} as the task`,
        ([, task]) => counter.runTask([live], task as Loose),
        "INVALID_ARGUMENT",
        "runTask: the task must be a function",
      ),
    ], observe);
    t.eq(counter.onHandlerError, undefined, "the hook was left unset");
  });

  await closeWorld(t, world);
});
