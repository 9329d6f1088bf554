"""``acula_edge.stages``: the one stage runner of the pipeline and the benchmark scripts."""

from __future__ import annotations

import json

import pytest

from acula_edge.errors import AculaError
from acula_edge.stages import Runner, Step, locked


def _copy(src, dst) -> Step:
    """A real command stage: ``python -m json.tool SRC DST``."""
    return Step(["json.tool", str(src), str(dst)], inputs=[src], outputs=[dst])


def test_a_stage_runs_once_then_is_up_to_date_until_its_input_or_output_changes(tmp_path):
    src, dst = tmp_path / "in.json", tmp_path / "out.json"
    src.write_text('{"a": 1}')
    runner = Runner(tmp_path)
    assert runner.run([("copy", _copy(src, dst))])["copy"]["status"] == "ran"
    assert json.loads(dst.read_text()) == {"a": 1}
    assert (tmp_path / "logs" / "copy.log").read_text().startswith("$ python -m json.tool")
    assert runner.run([("copy", _copy(src, dst))])["copy"]["status"] == "up to date"
    src.write_text('{"a": 2}')  # a changed input
    assert runner.run([("copy", _copy(src, dst))])["copy"]["status"] == "ran"
    assert json.loads(dst.read_text()) == {"a": 2}
    dst.write_text("{}")  # an output that is not the one the stage wrote
    assert runner.run([("copy", _copy(src, dst))])["copy"]["status"] == "ran"
    assert runner.commands[0] == f"python -m json.tool {src} {dst}" and len(runner.commands) == 4
    state = json.loads((tmp_path / ".stages" / "copy.json").read_text())
    assert state["command"] == ["json.tool", "RUN/in.json", "RUN/out.json"]  # relative: a moved folder stays up to date


def test_stages_built_late_see_earlier_outputs_and_in_process_stages_run(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    made = []
    stages = [("write", Step(["(in-process) write"], outputs=[first],
                             run=lambda: made.append(first.write_text('{"x": 1}')))),
              ("copy", lambda: _copy(first, second))]
    done = Runner(tmp_path).run(stages)
    assert [d["status"] for d in done.values()] == ["ran", "ran"] and len(made) == 1
    assert json.loads(second.read_text()) == {"x": 1}


def test_a_failing_stage_is_one_line_naming_its_log(tmp_path):
    src = tmp_path / "bad.json"
    src.write_text("{not json")
    with pytest.raises(AculaError, match=r"stage copy failed \(exit 1\): .*\(log: .*copy\.log\)"):
        Runner(tmp_path).run([("copy", _copy(src, tmp_path / "out.json"))])
    assert not (tmp_path / ".stages" / "copy.json").exists()


def test_one_runner_at_a_time(tmp_path):
    with locked(tmp_path / ".stages"):
        with pytest.raises(AculaError, match="another run is running"):
            with locked(tmp_path / ".stages"):
                pass
