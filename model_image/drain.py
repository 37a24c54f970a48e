"""`python3 -m model_image.drain --kill-after SECONDS -- COMMAND...`: run the engine as a child, pass it
SIGTERM/SIGINT, give it SECONDS to drain, and exit 0 when it ended because of the signal it was passed.

Why not exec the engine, or run it under GNU timeout: uvicorn (0.54, uvicorn/server.py capture_signals)
finishes its graceful shutdown and then re-raises the signal it caught, so the engine dies *by* SIGTERM;
GNU timeout passes that on as exit status 143, and the kubelet records every scale-in and rollout as
terminated with reason Error. Here a death by the very signal we forwarded, before the deadline, is a clean
drain: exit 0. A SIGKILL at the deadline exits 137 and says so; any other ending passes the engine's own
status on (its exit code, or 128 + the signal that killed it).

As PID 1 of the container it also reaps every orphan that is reparented to it, which neither GNU timeout
nor an exec'd engine does.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from types import FrameType

FORWARDED = (signal.SIGTERM, signal.SIGINT)


def _log(message: str) -> None:
    print(f"model_image.drain: {message}", file=sys.stderr, flush=True)


def run(argv: list[str], kill_after: float) -> int:
    """Run `argv` to its end under the rules above; returns the exit status for this process."""
    state: dict[str, int | bool] = {"forwarded": 0, "killed": False}
    engine: list[subprocess.Popen[bytes]] = []  # empty until started: a signal before then is kept

    def forward(signum: int, _frame: FrameType | None) -> None:
        if not state["forwarded"]:
            state["forwarded"] = signum
            signal.setitimer(signal.ITIMER_REAL, kill_after)
            _log(f"{signal.Signals(signum).name}: passed to the engine, which has {kill_after:g} s to drain")
        for child in engine:
            child.send_signal(signum)

    def deadline(_signum: int, _frame: FrameType | None) -> None:
        state["killed"] = True
        _log(f"the engine did not finish within {kill_after:g} s: SIGKILL")
        for child in engine:
            child.kill()

    # The handlers first: a SIGTERM while the engine starts is not lost (nor kills this PID 1 by default).
    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.signal(signal.SIGALRM, deadline)
    child = subprocess.Popen(argv)
    engine.append(child)
    if state["forwarded"]:
        child.send_signal(int(state["forwarded"]))

    while True:
        try:
            pid, status = os.waitpid(-1, 0)  # any child: PID 1 reaps orphans too
        except ChildProcessError:  # pragma: no cover - the engine was reaped already
            return 1
        if pid == child.pid:
            break
    signal.setitimer(signal.ITIMER_REAL, 0)
    if state["killed"]:
        return 128 + int(signal.SIGKILL)
    if os.WIFSIGNALED(status):
        died_by = os.WTERMSIG(status)
        if died_by == state["forwarded"]:
            _log(f"the engine drained and ended on the {signal.Signals(died_by).name} it was passed: exit 0")
            return 0
        return 128 + died_by
    return os.waitstatus_to_exitcode(status)


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m model_image.drain", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--kill-after", type=float, required=True, metavar="SECONDS")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    ns = parser.parse_args(args)
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    if not command or ns.kill_after <= 0:
        parser.error("give --kill-after SECONDS (> 0) and the command after --")
    return run(command, ns.kill_after)


if __name__ == "__main__":
    sys.exit(main())
