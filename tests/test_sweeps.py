"""Sweeps: sharding does not change results, an interrupted sweep resumes to the same results,
the observables mean what their definitions say, and the learning-rate phase diagram of the
soft committee machine shows its known features."""

import csv
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from command import in_process, in_subprocess

import nndyn
from nndyn.sweeps.observables import plateau, specialisation

CONFIG = """
name = "test"
t_max = 300.0
saves = 151
chunk = 2

[defaults]
K = 2
M = 2

[grid]
lr = [0.5, 1.0, 3.0]
sigma = [0.0, 0.2]
"""


def chunks(folder):
    return {path.name: dict(np.load(path)) for path in sorted((folder / "chunks").glob("*.npz"))}


def table(folder):
    with open(folder / "results.csv", newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "sweep.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def unsharded(config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("unsharded") / "out"
    nndyn.run_sweep(nndyn.read_sweep(config), folder, sharded=False)
    return folder


@pytest.mark.slow
def test_sharded_over_four_devices_equals_unsharded(config, unsharded, tmp_path):
    result = in_subprocess("sweep", config, "--out", tmp_path / "out",
                           env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert result.returncode == 0, result.stderr
    assert "on 4 cpu device(s)" in result.stdout
    sharded, single = chunks(tmp_path / "out"), chunks(unsharded)
    assert sorted(sharded) != [] and len(sharded) == 2  # chunk 2 rounded up to 4 devices: 6 points in 2
    merged = {key: np.concatenate([c[key] for c in sharded.values()]) for key in ("index", "eg", "Q", "R", "v")}
    reference = {key: np.concatenate([c[key] for c in single.values()]) for key in ("index", "eg", "Q", "R", "v")}
    order, reference_order = np.argsort(merged["index"]), np.argsort(reference["index"])
    for key in ("eg", "Q", "R", "v"):  # 1e-12 of each array's scale: sharding changes XLA's fusion, so rounding
        scale = max(1.0, float(np.max(np.abs(reference[key]))))  # (up to 1e-13 relative where Q grows to 12)
        np.testing.assert_allclose(merged[key][order], reference[key][reference_order], rtol=0, atol=1e-12 * scale)


@pytest.mark.slow
def test_killed_sweep_resumes_to_identical_results(config, unsharded, tmp_path):
    """The sweep SIGKILLs itself after its second chunk; the rerun skips the written chunks
    (their files are untouched) and ends with the uninterrupted run's results."""
    folder = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal
        import nndyn
        def progress(done, total):
            if done == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        nndyn.run_sweep(nndyn.read_sweep({str(config)!r}), {str(folder)!r}, sharded=False, progress=progress)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert killed.returncode == -9, killed.stderr
    written = {path.name: path.read_bytes() for path in (folder / "chunks").glob("*.npz")}
    assert len(written) == 2 and not (folder / "results.csv").exists()
    assert not list((folder / "chunks").glob(".*"))  # no half-written file left behind
    result = in_process("sweep", config, "--out", folder)
    assert result.returncode == 0, result.stderr
    for name, content in written.items():
        assert (folder / "chunks" / name).read_bytes() == content
    resumed, reference = chunks(folder), chunks(unsharded)
    assert resumed.keys() == reference.keys()
    for name in reference:
        for key in reference[name]:
            np.testing.assert_array_equal(resumed[name][key], reference[name][key])
    assert table(folder) == table(unsharded)


@pytest.mark.slow
def test_a_different_sweep_in_the_folder_is_refused(config, unsharded, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(CONFIG.replace("t_max = 300.0", "t_max = 200.0"))
    result = in_process("sweep", other, "--out", unsharded)
    assert result.returncode == 2 and "different sweep" in result.stderr


@pytest.mark.parametrize("text, message", [
    ("t_max = 1.0\n[grid]\neta = [0.1]\n", "[grid] unknown parameter 'eta'"),
    ("[grid]\nlr = [0.1]\n", "missing field 't_max'"),
    ("t_max = 1.0\n[grid]\nlr = [-0.1]\n", "lr must be a finite number > 0, got -0.1"),
    ("t_max = 1.0\n[grid]\nK = [0]\n", "K must be an integer >= 1"),
])
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_bad_sweep_configs(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = in_process("sweep", path, "--out", tmp_path / "out")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_plateau_definition_on_a_synthetic_curve():
    """log ε_g falls at rate 1 (per ηt) to t = 10, is flat (rate 0.001) to t = 40, then falls
    again: plateau [10, 40] of height ≈ e^-10, escape when ε_g < height/2."""
    t = np.linspace(0, 60, 601)
    log = np.where(t < 10, -t, np.where(t < 40, -10 - 0.001 * (t - 10), -10.03 - (t - 40)))
    found = plateau(t, np.exp(log), lr=1.0)
    assert found["escaped"] and found["plateau_start"] == pytest.approx(10, abs=0.11)
    assert found["plateau_length"] == pytest.approx(30, abs=0.21)
    assert found["plateau_height"] == pytest.approx(np.exp(-10.015), rel=1e-3)
    assert found["escape_time"] == pytest.approx(40 + np.log(2) - 0.03 + 0.03, abs=0.11)
    assert plateau(t, np.exp(-t), lr=1.0)["plateau_length"] == 0.0


def test_specialisation_definition():
    T = np.eye(2)
    assert specialisation(np.eye(2), np.full((2, 2), 0.3), T) == pytest.approx(0.0)
    assert specialisation(np.eye(2), np.array([[1.0, 0.0], [0.0, 1.0]]), T) == pytest.approx(1.0)
    assert specialisation(np.eye(1), np.array([[0.5]]), np.eye(1)) == pytest.approx(1.0)


@pytest.mark.slow
def test_no_plateau_for_one_unit_and_longer_plateaus_for_smaller_initial_overlaps(tmp_path):
    """K = M = 1 learns without a plateau; for K = M = 2 the initial overlaps R ~ 1/√init_N,
    and the plateau lengthens (like log init_N) as they shrink."""
    rows = nndyn.sweep(nndyn.grid({"K": 1, "M": 1}, {"lr": [0.5, 1.0], "seed": [0, 1]}), 300.0, tmp_path / "one")
    assert all(row["status"] == "ok" and row["plateau_length"] == 0.0 for row in rows)
    rows = nndyn.sweep(nndyn.grid({"K": 2, "M": 2}, {"init_N": [100, 1000, 10000], "seed": [0, 1, 2]}),
                       800.0, tmp_path / "two", saves=401)
    assert all(row["escaped"] for row in rows)
    lengths = [np.mean([row["plateau_length"] for row in rows if row["init_N"] == n]) for n in (100, 1000, 10000)]
    assert lengths[0] < lengths[1] < lengths[2], lengths


@pytest.mark.slow
def test_learning_rate_phase_diagram_of_the_soft_committee_machine(tmp_path):
    """M = K = 2: the plateau length scales like 1/η for small η (η · length constant to 15%),
    and beyond the maximal learning rate the machine fails to learn (ε_g stays ≈ 0.26)."""
    rates = [0.1, 0.2, 0.5, 1.0, 4.0]
    rows = nndyn.sweep(nndyn.grid({"K": 2, "M": 2}, {"lr": rates, "seed": [0, 1]}), 1000.0, tmp_path / "lr",
                       saves=501)
    assert (tmp_path / "lr" / "phase_plateau_length.png").exists()
    scaled = [np.mean([row["plateau_length"] * lr for row in rows if row["lr"] == lr]) for lr in rates[:4]]
    assert max(scaled) < 1.15 * min(scaled), scaled
    final = {lr: np.mean([row["final_eg"] for row in rows if row["lr"] == lr]) for lr in rates}
    assert all(final[lr] < 1e-2 for lr in rates[:4]) and final[4.0] > 0.2, final


def test_initial_states_are_each_points_own_weights():
    """The batched draw gives each point the overlaps of the student its seed and init_scale
    draw against the teacher of its init_N, as measured one point at a time."""
    from nndyn.core.weights import initial_states, student_weights, teacher_weights

    points = nndyn.grid({"K": 3, "M": 2}, {"seed": [0, 7], "init_N": [50, 400], "init_scale": [0.5, 2.0]})
    sweep = nndyn.Sweep(name="initial", points=points, t_max=1.0, train_second_layer=True)
    states = initial_states(sweep.setting(points[0]), *([point[name] for point in points]
                                                        for name in ("init_N", "seed", "init_scale")))
    for i, point in enumerate(points):
        setting = sweep.setting(point)
        W_teacher, v_star = teacher_weights(setting, point["init_N"])
        W, v = student_weights(setting, point["init_N"], [point["seed"]], point["init_scale"])
        expected = nndyn.OrderParameters.from_weights(W[0], W_teacher, v[0], v_star)
        for name in ("Q", "R", "T", "v", "v_star"):
            np.testing.assert_allclose(getattr(states, name)[i], getattr(expected, name), rtol=1e-14, atol=1e-15)
    assert not np.allclose(states.Q[0], states.Q[1])


@pytest.mark.slow  # over 2 s: the fast subset (-m 'not slow') stays within a minute
def test_force_starts_a_different_sweep_afresh_and_refuses_other_folders(tmp_path):
    """--force on a folder of another sweep removes its chunks, table and plots before the new
    sweep starts, so an interruption leaves nothing of the old one; a folder that is no sweep is
    refused even with --force."""
    folder = tmp_path / "s"
    small = dict(t_max=10.0, saves=11, chunk=1)
    nndyn.sweep(nndyn.grid({"K": 1, "M": 1}, {"lr": [0.5, 1.0]}), folder=folder, **small)
    assert (folder / "results.csv").exists() and list(folder.glob("phase_*.png"))

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nndyn.sweep(nndyn.grid({"K": 1, "M": 1}, {"lr": [0.2, 0.3]}), folder=folder, force=True, progress=stop,
                    **small)
    assert not (folder / "results.csv").exists() and not list(folder.glob("phase_*.png"))
    assert len(list((folder / "chunks").glob("*.npz"))) == 1
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a sweep folder"):
        nndyn.sweep(nndyn.grid({"K": 1, "M": 1}), folder=other, force=True, **small)
    assert (other / "notes.txt").read_text() == "mine"


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_an_unreadable_chunk_is_computed_again(tmp_path):
    folder = tmp_path / "s"
    points = nndyn.grid({"K": 1, "M": 1}, {"lr": [0.5, 1.0]})
    first = nndyn.sweep(points, folder=folder, t_max=10.0, saves=11, chunk=1)
    chunk = sorted((folder / "chunks").glob("*.npz"))[0]
    chunk.write_bytes(chunk.read_bytes()[:100])
    again = nndyn.sweep(points, folder=folder, t_max=10.0, saves=11, chunk=1)
    assert [row["final_eg"] for row in again] == [row["final_eg"] for row in first]


@pytest.mark.slow
def test_the_models_choices_are_grid_axes(tmp_path):
    """teacher_activation, feedback, output_scaling and weight_decay vary over one sweep; each
    point equals `integrate` of its setting from its own initial state (feedback vector included)."""
    from nndyn.core.weights import initial_states

    points = nndyn.grid(defaults={"K": 2, "M": 2, "lr": 0.5},
                        product={"teacher_activation": ["erf", "relu"], "feedback": ["backprop", "alignment"],
                                 "output_scaling": ["1", "1/K"], "weight_decay": [0.0, 0.05]})
    rows = nndyn.sweep(points, t_max=5.0, folder=tmp_path / "out", saves=6, train_second_layer=True)
    assert len(rows) == 16 and all(row["status"] == "ok" for row in rows)
    for row in rows[::5]:
        point = {name: row[name] for name in ("K", "M", "lr", "teacher_activation", "feedback", "output_scaling",
                                              "weight_decay")}
        setting = nndyn.Setting(**point, train_second_layer=True)
        state = first_element(initial_states(setting, [row["init_N"]], [row["seed"]], [row["init_scale"]]))
        expected = nndyn.integrate(setting, state, np.linspace(0, 5, 6))
        assert row["final_eg"] == pytest.approx(float(expected.eg[-1]), rel=1e-6)


def first_element(state):
    """The first batch element of a batched state."""
    import jax

    return jax.tree_util.tree_map(lambda value: np.asarray(value)[0], state)


def test_the_fingerprint_covers_the_kernel_modules_contents(tmp_path):
    """A user's activation re-derived with another expression into the same path must not resume
    the old sweep's chunks: the fingerprint hashes the modules' contents, not their paths."""
    from pathlib import Path

    import nndyn.generated

    generated = Path(nndyn.generated.__file__).parent

    def derived(name: str) -> str:  # a built-in's module as if derived for a user
        text = (generated / f"{name}.py").read_text()
        return text.replace("`python -m nndyn.derive`", "`python -m nndyn.derive --name soft --expr EXPR`", 1)

    module = tmp_path / "soft.py"
    module.write_text(derived("erf"))
    sweep = nndyn.Sweep(name="s", points=nndyn.grid(product={"lr": [0.5]}), t_max=1.0, activation=str(module))
    before = sweep.fingerprint()
    assert sweep.fingerprint() == before
    module.write_text(derived("linear"))  # re-derived with another g into the same path
    assert sweep.fingerprint() != before
