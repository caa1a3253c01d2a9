"""Library code leaves the process as it found it: importing every public module, calling
`neuron_source()`, building the runner's pipeline and running a whole sync change no environment
variable and no signal handler (a Dagster code server runs many pipelines in one process). What
a `neuron-calls` process needs is set by its entry (`cli.main`)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import importlib, json, os, pkgutil, signal, sys
    from pathlib import Path

    def handlers():
        return {s.name: repr(signal.getsignal(s)) for s in signal.valid_signals()
                if isinstance(s, signal.Signals)}

    env, sig = dict(os.environ), handlers()
    import pipelines
    for module in pkgutil.walk_packages(pipelines.__path__, "pipelines."):
        if not module.name.endswith("__main__"):  # `python -m`: it runs the command
            importlib.import_module(module.name)

    from pipelines.runner import sync as runner
    from pipelines.neuron import neuron_source
    from pipelines.sandbox import Sandbox

    tmp = Path(sys.argv[1])
    sandbox = Sandbox(calls=30).start()
    neuron_source(api_key=sandbox.api_key, base_url=sandbox.base_url)
    options = runner.SyncOptions(
        duckdb_path=tmp / "calls.duckdb",
        pipelines_dir=str(tmp / "dlt"),
        source_args={"api_key": sandbox.api_key, "base_url": sandbox.base_url},
    )
    runner.make_pipeline(options, runner.target_of(options), tmp / "dlt")
    result = runner.run_sync(options)
    sandbox.stop()
    changed = {k: os.environ.get(k) for k in set(env) | set(os.environ)
               if env.get(k) != os.environ.get(k)}
    moved = {k: v for k, v in handlers().items() if sig.get(k) != v}
    print(json.dumps({"exit_code": result.exit_code, "env": changed, "signals": moved}))
    """
)


def test_library_code_changes_no_environment_variable_or_signal_handler(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["exit_code"] == 0  # the sync ran whole
    assert found["env"] == {}
    assert found["signals"] == {}
