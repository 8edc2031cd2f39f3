/**
 * Runs a check at most once per turn of the event loop: requests handled in the same turn were
 * concurrent anyway, and any request that arrives after a change (a new turn) sees it.
 */
export function oncePerTurn(check: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    setImmediate(() => {
      done = false;
    });
    check();
  };
}
