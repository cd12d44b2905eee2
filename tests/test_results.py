"""Results read back from their folders (nndyn.load_run, nndyn.load_sweep) and as tidy tables
(Trajectory.to_dataframe, to_xarray): the same numbers as the files the commands wrote."""


import numpy as np
import pytest
from command import in_process

import nndyn

pandas = pytest.importorskip("pandas")
xarray = pytest.importorskip("xarray")

CONFIG = """
name = "mine"
N = 150
K = 3
M = 2
lr = 0.5
train_second_layer = true
t_max = 3
seeds = 2
"""


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    (folder / "mine.toml").write_text(CONFIG)
    result = in_process("run", folder / "mine.toml", "--out", folder / "out")
    assert result.returncode == 0, result.stderr
    return folder / "out"


@pytest.mark.slow  # an end-to-end `nndyn run`
def test_a_run_folder_round_trips_through_dataframe_and_xarray(run_folder):
    (panel,) = nndyn.load_run(run_folder)["mine"]
    stored = np.load(run_folder / "mine.npz")
    assert panel.config["N"] == 150 and panel.summary["label"] == panel.label
    for kind, trajectory in (("sim", panel.sim), ("ode", panel.ode)):
        assert isinstance(trajectory, nndyn.Trajectory)
        frame, dataset = trajectory.to_dataframe(), trajectory.to_xarray()
        for name in ("eg", "Q", "R", "v", "T", "v_star"):
            expected = stored[f"p0_{kind}_{name}"]
            np.testing.assert_array_equal(dataset[name].values, expected)
            rows = frame[frame.quantity == name]
            assert len(rows) == expected.size
            index = [rows.seed.to_numpy()]
            if name not in ("T", "v_star"):
                index.append(np.searchsorted(stored[f"p0_{kind}_t"], rows.t.to_numpy()))
            index += [rows[column].to_numpy(dtype=int) for column in "ij"[: expected.ndim - len(index)]]
            np.testing.assert_array_equal(rows.value.to_numpy(), expected[tuple(index)])
    # named dimensions pick the same entry as the arrays' positions
    np.testing.assert_array_equal(panel.sim.to_xarray().R.sel(seed=1, student=2, teacher=0).values,
                                  stored["p0_sim_R"][1, :, 2, 0])


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_a_sweep_folder_round_trips(tmp_path):
    points = nndyn.grid(defaults={"K": 2, "M": 2}, product={"lr": [0.3, 0.6], "feedback": ["backprop", "alignment"]})
    rows = nndyn.sweep(points, t_max=5.0, folder=tmp_path / "sweep", saves=6, sharded=False)
    loaded = nndyn.load_sweep(tmp_path / "sweep")
    assert [point.row["index"] for point in loaded] == [row["index"] for row in rows]
    for point, row in zip(loaded, rows):
        for key, value in row.items():
            assert point.row[key] == value or (value is None and point.row[key] is None) or (
                isinstance(value, float) and np.isnan(value) and np.isnan(point.row[key])), key
        assert point.trajectory.eg.shape == (6,) and point.trajectory.Q.shape == (6, 2, 2)
        assert (point.trajectory.b is not None) == (row["feedback"] == "alignment")
        np.testing.assert_allclose(point.row["final_eg"], point.trajectory.eg[-1], rtol=1e-15)
    table = nndyn.sweep_dataframe(loaded)
    assert len(table) == 4 and set(table.feedback) == {"backprop", "alignment"}


def test_tidy_data_needs_at_most_a_seed_axis():
    setting = nndyn.Setting(K=2, M=2, lr=0.5)
    sim = nndyn.simulate(setting, N=50, t_max=2, seeds=2)
    doubled = nndyn.Trajectory(sim.t, *(np.stack([x, x]) for x in (sim.eg, sim.Q, sim.R, sim.v, sim.T, sim.v_star)))
    with pytest.raises(ValueError, match="at most one batch dimension"):
        doubled.to_dataframe()


def test_a_continual_run_as_tidy_data():
    setting = nndyn.Setting(K=2, M=1, lr=1.0, train_second_layer=True)
    protocol = nndyn.Protocol(nndyn.Teachers(count=2, feature_similarity=0.5, heads="multi"),
                              (nndyn.Phase(teacher=0, t=2.0), nndyn.Phase(teacher=1, t=2.0)))
    sim = nndyn.simulate_protocol(setting, protocol, N=100, seeds=2)
    dataset, frame = sim.to_xarray(), sim.to_dataframe()
    np.testing.assert_array_equal(dataset.eg_teacher.sel(seed=1, teacher=0).values, np.asarray(sim.eg_teacher)[1, :, 0])
    assert dict(dataset.heads.sizes) == {"seed": 2, "t": 5, "head": 2, "student": 2}
    heads = frame[(frame.quantity == "heads") & (frame.seed == 0) & (frame.i == 1) & (frame.j == 0)]
    np.testing.assert_array_equal(heads.value.to_numpy(), np.asarray(sim.heads)[0, :, 1, 0])


@pytest.mark.parametrize("damage", ["missing summary", "truncated npz", "foreign json", "empty"])
def test_damaged_or_foreign_folders_are_one_clear_error(tmp_path, damage):
    """load_run and load_sweep on a folder that is not a complete one of theirs: a ValueError of
    one line naming the folder (they were KeyErrors, IndexErrors, BadZipFiles)."""
    folder = tmp_path / "run"
    folder.mkdir()
    if damage != "empty":
        (folder / "config.json").write_text('{"experiments": {"fig1": [{}]}}' if damage != "foreign json" else "[1]")
    if damage == "truncated npz":
        (folder / "summary.json").write_text('{"fig1": {"panels": [{"label": "x"}]}}')
        (folder / "fig1.npz").write_bytes(b"PK\x03\x04 truncated")
    for load in (nndyn.load_run, nndyn.load_sweep):
        pattern = f"^{folder} is not a complete (run|sweep) folder written by nndyn"
        with pytest.raises(ValueError, match=pattern) as info:
            load(folder)
        assert "\n" not in str(info.value)
