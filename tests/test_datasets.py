"""The dataset registry: what every dataset module declares, and what reads it (loaders, tasks, pipeline)."""

from __future__ import annotations

import pkgutil

import numpy as np

import pytest

import acula_edge.datasets
from acula_edge.data.records import MODALITIES, Recording
from acula_edge.data.tasks import get_task, list_tasks
from acula_edge.datasets import (Dataset, Task, get_dataset, get_loader, list_datasets, list_formats, load,
                                 register_dataset)
from acula_edge.errors import DatasetError
from acula_edge.reports.facts import FIELDS
from conftest import tone
from test_datasets_sprsound import sprsound_dir  # noqa: F401  (fixture)

PUBLIC = ["icbhi", "circor", "coswara", "coughvid", "kauh", "physionet2016"]


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_declares_a_loader_licence_modality_tasks_and_facts(name):
    ds = get_dataset(name)
    assert isinstance(ds, Dataset) and ds.name == name
    assert callable(ds.loader) and isinstance(ds.loader.options, tuple)
    assert ds.licence.strip()
    assert ds.modalities and set(ds.modalities) <= set(MODALITIES)
    facts = ds.facts(Recording(id="a", path="x.wav", dataset=name, subject="a", modality=ds.modalities[0]))
    assert isinstance(facts, dict) and set(facts) <= set(FIELDS)
    if name != "csv":  # the generic CSV's tasks are its columns (csv:MANIFEST:COLUMN)
        assert ds.tasks
    for t in ds.tasks:
        assert isinstance(t, Task) and t.dataset == name and t.name.startswith(f"{name}-") and t.description
        assert t.prompts is None or (len(t.prompts) == 2 and len(set(t.prompts)) == 2)
    assert set(ds.pipeline_tasks) <= {t.name for t in ds.tasks}


def test_every_module_of_the_package_is_a_registered_dataset():
    modules = {m.name for m in pkgutil.iter_modules(acula_edge.datasets.__path__)} - {"common"}
    assert modules == {get_dataset(n).loader.__module__.rpartition(".")[2] for n in list_datasets()}


def test_formats_and_tasks_come_from_the_registry():
    assert list_formats() == list_datasets()
    declared = [t for n in list_datasets() for t in get_dataset(n).tasks]
    assert list_tasks() == [t.name for t in declared]
    assert len(set(list_tasks())) == len(declared)  # no task name taken twice
    assert all(get_task(t.name) is t for t in declared)
    assert get_loader("kauh") is get_dataset("kauh").loader


def test_the_pipeline_reads_its_datasets_from_the_registry():
    from acula_edge.pipeline import real_formats

    assert real_formats() == ["sprsound", "physionet2016", "icbhi", "circor", "coswara", "coughvid", "kauh"]
    assert get_dataset("synthetic").pipeline_tasks == ("synthetic-adventitious", "synthetic-abnormal-heart",
                                                       "synthetic-wet-cough")
    assert get_dataset("physionet2016").licence == "ODC-By 1.0 (PhysioNet/CinC Challenge 2016)"


def test_unknown_dataset_is_one_clear_error():
    with pytest.raises(DatasetError, match="unknown dataset format 'nope'; choose one of: sprsound, "):
        get_dataset("nope")


def test_a_dataset_that_breaks_the_rules_is_refused():
    def loader(root):
        return []

    def facts(r):
        return {}

    other = Task("sprsound-x", "sprsound", lambda r: 1, "a task of another dataset")
    with pytest.raises(ValueError, match="declares tasks of another dataset: sprsound-x"):
        register_dataset(Dataset("mine", loader, facts, "mine", ("lung",), tasks=(other,)))
    with pytest.raises(ValueError, match="pipeline task\\(s\\) mine-y are not its tasks"):
        register_dataset(Dataset("mine", loader, facts, "mine", ("lung",), pipeline_tasks=("mine-y",)))

    def loose(root, **options):
        return []

    with pytest.raises(TypeError, match="must declare its options"):
        register_dataset(Dataset("mine", loose, facts, "mine", ("lung",)))
    with pytest.raises(DatasetError):
        get_dataset("mine")  # nothing was registered


@pytest.mark.parametrize("fmt", list_formats())
def test_every_loader_rejects_an_empty_folder(tmp_path, fmt):
    with pytest.raises(DatasetError):
        load(fmt, tmp_path)


def test_two_copies_of_a_release_are_refused(sprsound_dir):
    import shutil

    shutil.copytree(sprsound_dir / "test_wav", sprsound_dir / "copy" / "test_wav")
    with pytest.raises(DatasetError, match="appears twice"):
        load("sprsound", sprsound_dir)


@pytest.mark.parametrize("name", PUBLIC)
def test_empty_folder_is_a_clear_error(tmp_path, name):
    with pytest.raises(DatasetError, match="is this the right folder"):
        load(name, tmp_path)


@pytest.mark.parametrize("name", ["icbhi", "circor", "coswara", "kauh"])
def test_unrelated_audio_is_a_clear_error(tmp_path, name):
    tone(tmp_path / "recording.wav", 8000)
    with pytest.raises(DatasetError, match="is this the right folder"):
        load(name, tmp_path)


@pytest.mark.parametrize("name", list_formats())
def test_unknown_options_are_rejected(tmp_path, name):
    with pytest.raises(DatasetError, match=f"format {name} does not take option\\(s\\) bogus"):
        load(name, tmp_path, bogus=1)
    if name != "csv":  # only the generic CSV takes --labels
        with pytest.raises(DatasetError, match="does not take option\\(s\\) labels"):
            get_loader(name)(tmp_path, labels=["x"])


def test_binary_labels_read_the_usual_pairs_and_name_anything_else():
    from acula_edge.data.tasks import binary_labels, head_tasks
    from acula_edge.errors import AculaError

    def recs(values):
        return [Recording(id=f"r{i}", path="x.wav", dataset="csv", subject=f"s{i}", modality="heart",
                          labels={} if v is None else {"dx": v}) for i, v in enumerate(values)]

    task = get_task("csv:mine.csv:dx")
    for values, want in (([0, 1, None, 1.0], [0, 1, None, 1]), (["No", "yes ", "YES"], [0, 1, 1]),
                         ([-1, 1, -1], [0, 1, 0]), (["normal", "Abnormal"], [0, 1]), ([1, 1], [1, 1]),
                         ([True, False], [1, 0])):
        got = binary_labels(task, recs(values))
        assert [None if g != g else int(g) for g in got] == want, values
    for values, named in ((["yes", "banana"], "banana, yes"), ([0, 1, 2], "0, 1, 2"), ([1.5, 0], "0, 1.5")):
        with pytest.raises(AculaError, match=f"not binary \\(values: {named}\\)"):
            binary_labels(task, recs(values))
    # where a task may have several classes: text and whole numbers are classes, a mix of both or fractions are not
    from acula_edge.data.tasks import task_records

    assert {r.labels["_task"] for r in task_records(task, recs(["wheeze", "crackle", "normal", None]))} == {
        "wheeze", "crackle", "normal"}
    assert len(task_records(task, recs(["0", "1", "2"]))) == 3
    for values, named in ((["yes", "banana", "2", "1.5", "no", "0"], "0, 1.5, 2, banana, no, yes"),
                          (["0.5", "1.5"], "0.5, 1.5")):
        with pytest.raises(AculaError, match=f"its labels are not classes \\(values: {named}\\)"):
            task_records(task, recs(values))
    # a registered task labels only its own dataset's recordings
    assert np.isnan(binary_labels(get_task("sprsound-adventitious"), recs([1]))).all()
    heads = ["sprsound-adventitious", "physionet2016-abnormal"]
    assert list(head_tasks((), heads)) == heads
    assert head_tasks(["csv:m.csv:dx=physionet2016-abnormal"], heads)["physionet2016-abnormal"].name == "csv:m.csv:dx"
    for specs, message in ((["csv:m.csv:dx=lung"], "no head 'lung'"), (["nope"], "unknown task 'nope'"),
                           (["sprsound-adventitious", "csv:m.csv:dx=sprsound-adventitious"], "by another --task")):
        with pytest.raises(AculaError, match=message):
            head_tasks(specs, heads)
