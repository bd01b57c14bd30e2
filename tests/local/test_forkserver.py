"""The fork server: a child gets its environment, directory and descriptor; its exit is reported."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from kfaas.forkserver import ForkServer

PROBE = """
import os, sys
fd = int(os.environ["PROBE_FD"])
os.write(fd, (os.environ["WHO"] + " " + os.getcwd() + "\\n").encode())
sys.exit(int(os.environ["CODE"]))
"""


async def test_spawn_passes_environment_directory_and_fd(tmp_path: Path) -> None:
    (tmp_path / "probe_child.py").write_text(PROBE)
    server = ForkServer(preload=["json"])
    exits: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    server.on_exit(lambda pid, status: exits.put_nowait((pid, status)))
    await server.start()
    try:
        read_fd, write_fd = os.pipe()
        pid = await server.spawn(
            "probe_child",
            env={"WHO": "child", "CODE": "7", "PATH": os.environ["PATH"]},
            cwd=str(tmp_path),
            fd=write_fd,
            fd_env="PROBE_FD",
        )
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            line = await asyncio.to_thread(pipe.readline)
        assert line.decode().split() == ["child", str(tmp_path)]
        assert await asyncio.wait_for(exits.get(), 10) == (pid, 7)
    finally:
        await server.stop()
