"""avec-harness: measure generative-AI tools on the health tasks they are used for.

    from harness import run_suite
    result = run_suite("suite.yaml")
    result.exit_code, result.scorecard["rows"]
"""

import os

__version__ = "0.1.0"

# Arrow's allocator (mimalloc) otherwise keeps freed pages for a while: reading a million-line
# record then holds ~150 MB it no longer uses. Read when pyarrow loads, so set before any import.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")

from harness.errors import ConfigError, RunIncomplete


def __getattr__(name: str):  # lazy: `import harness` stays cheap for the CLI
    if name == "run_suite":
        from harness.runner import run_suite

        return run_suite
    if name == "load_run":
        from harness.analysis import load_run

        return load_run
    if name == "load_suite":
        from harness.validate import load_suite

        return load_suite
    raise AttributeError(name)


__all__ = ["ConfigError", "RunIncomplete", "__version__", "load_run", "load_suite", "run_suite"]
