"""Running `rag` with a pseudo-terminal as its terminal, as a person at a shell would."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import termios

from tests.support.paths import RAG


def run_on_terminal(args: list[str]) -> tuple[int, str]:
    """Run `rag ARGS` with a pty (120 columns) as its terminal; (exit code, everything it wrote)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: rag with the pty as its terminal
        os.execv(RAG, [RAG, *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    output = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
