"""An external program per item: input on stdin or as a file argument, output on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import shlex
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.adapters.base import Adapter, Settings, register_adapter
from harness.errors import AdapterError, Problem
from harness.types import Request, Response

#: names of variables that hold credentials: API keys, tokens (Ray's for the run's own
#: instance among them), secrets, passwords; kept from the program unless `pass_env` names them
SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|PASS|CREDENTIALS?|AUTH)(?:_|$)|PASSWORD|PASSWD|SECRET",
                         re.IGNORECASE)


class CommandSettings(Settings):
    command: str | list[str] = Field(description="argv; '{input}' is replaced by the input file path")
    input: Literal["stdin", "file"] = "stdin"
    timeout_s: float = Field(default=60.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict, description="variables set for the program")
    pass_env: list[str] = Field(default_factory=list, description=(
        "variables with credential-like names (…_API_KEY, …_TOKEN, …_SECRET, …_PASSWORD) passed to "
        "the program; fnmatch patterns allowed. Without it they are kept from it"))
    cwd: str | None = None


def program_env(environ: dict[str, str], settings: CommandSettings) -> dict[str, str]:
    """The program's environment: the harness's, less the variables whose names say they hold
    credentials (the other adapters' API keys, the run's Ray token), unless `pass_env` names
    them; then the adapter's own `env`."""
    kept = {name: value for name, value in environ.items()
            if not SECRET_NAME.search(name) or any(fnmatch.fnmatchcase(name, p) for p in settings.pass_env)}
    return {**kept, **settings.env}


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill the program and every process it started (they share its session's group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@register_adapter("command")
class Command(Adapter):
    """Audio requests always pass the audio file path as '{input}'."""

    Settings = CommandSettings
    runs_on_actors = True
    settings: CommandSettings
    modalities = frozenset({"text", "audio"})
    default_concurrency = 4
    cache_ignores = ("timeout_s",)

    def argv(self) -> list[str]:
        cmd = self.settings.command
        return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)

    @classmethod
    def check(cls, settings: Any, base_dir: Path, file: str) -> list[Problem]:
        cmd = settings.command
        argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        if not argv:
            return [Problem(file, "settings.command", "empty command")]
        exe = argv[0]
        local = base_dir / exe
        if shutil.which(exe) is None and not (local.is_file() and os.access(local, os.X_OK)):
            return [Problem(file, "settings.command", "program not found", found=repr(exe))]
        return []

    async def generate(self, request: Request) -> Response:
        argv = self.argv()
        exe = self.base_dir / argv[0]
        if shutil.which(argv[0]) is None and exe.is_file():
            argv[0] = str(exe)
        stdin_data: bytes | None = None
        tmp: Path | None = None
        if request.audio is not None:
            argv = [a.replace("{input}", str(request.audio)) for a in argv]
        elif self.settings.input == "file":
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
                fh.write(request.prompt)
                tmp = Path(fh.name)
            argv = [a.replace("{input}", str(tmp)) for a in argv]
        else:
            stdin_data = request.prompt.encode("utf-8")
        env = program_env(dict(os.environ), self.settings)
        cwd = str(self.base_dir / self.settings.cwd) if self.settings.cwd else str(self.base_dir)
        start = time.perf_counter()
        try:
            # its own process group: a wrapper script's children (the model it starts) are killed
            # with it, where they kept its output pipe open and the item waited for them to end
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd,
                start_new_session=True)
            try:
                out, err = await asyncio.wait_for(proc.communicate(stdin_data), self.settings.timeout_s)
            except TimeoutError:
                _kill_group(proc)
                await proc.wait()
                raise AdapterError(f"command timed out after {self.settings.timeout_s} s", retryable=True) from None
            except asyncio.CancelledError:  # the run's own timeout, or an interrupted run
                _kill_group(proc)
                raise
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        if proc.returncode != 0:
            tail = err.decode("utf-8", "replace").strip()[-300:]
            raise AdapterError(f"command exited {proc.returncode}: {tail}")
        return Response(output=out.decode("utf-8", "replace").strip(), latency_s=time.perf_counter() - start)
