"""The `nndyn` command end to end, at a tiny scale: in the test's process (`command.in_process`,
the same code as ``python -m nndyn`` without a process's start-up), and in fresh processes where
only a process shows the behaviour (the exit status, SIGTERM, two runs at once)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from command import in_process, in_subprocess

import nndyn as nndyn_api
from nndyn.core.fixed_points import learning_rate_threshold

TINY = ["--N", "200", "--t-max", "4", "--seeds", "3"]


nndyn = in_process


@pytest.fixture(scope="module")
def fig2_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "fig2"
    result = nndyn("reproduce", "fig2", *TINY, "--out", folder)
    assert result.returncode == 0, result.stderr
    return folder, result


@pytest.mark.slow
def test_reproduce_writes_plots_data_config_and_summary(fig2_run):
    folder, result = fig2_run
    assert sorted(path.name for path in folder.iterdir()) == [".nndyn-run", "config.json", "fig2.npz", "fig2.png",
                                                             "summary.json"]
    assert (folder / "fig2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = np.load(folder / "fig2.npz")
    assert data["p0_sim_Q"].shape == (3, 5, 2, 2) and data["p2_ode_R"].shape == (3, 5, 6, 4)
    config = json.loads((folder / "config.json").read_text())
    assert config["versions"]["jax"] and config["experiments"]["fig2"][0]["N"] == 200
    assert "K = 2" in result.stdout and "SGD follows the ODE" in result.stdout and "verdict z" in result.stdout


@pytest.mark.slow
def test_summary_metrics_are_finite_and_within_tolerance(fig2_run):
    folder, _ = fig2_run
    panels = json.loads((folder / "summary.json").read_text())["fig2"]["panels"]
    assert len(panels) == 3
    for panel in panels:
        numbers = [value for value in panel.values() if isinstance(value, float)]
        numbers += list(panel["verdict_scores"].values())
        assert np.all(np.isfinite(numbers)), panel
        assert panel["agrees"], panel  # nndyn.verdict, as in test_ode_vs_sgd


@pytest.mark.slow
def test_existing_run_folder_is_kept_unless_forced(fig2_run):
    folder, _ = fig2_run
    before = (folder / "summary.json").read_text()
    refused = nndyn("reproduce", "fig2", *TINY, "--out", folder)
    assert refused.returncode == 2 and "exists; pass --force" in refused.stderr
    assert (folder / "summary.json").read_text() == before


CONFIG = """
name = "mine"
N = 150
K = 2
M = 2
lr = 0.5
t_max = 3
seeds = 2
"""


@pytest.mark.slow
def test_run_a_config(tmp_path):
    (tmp_path / "mine.toml").write_text(CONFIG)
    result = nndyn("run", tmp_path / "mine.toml", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "mine.png").exists()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["mine"]["panels"][0]["agrees"]


@pytest.mark.slow
def test_run_a_model_config_records_the_feedback_vector(tmp_path):
    model = CONFIG + ('activation = "linear"\nteacher_activation = "erf"\ntrain_second_layer = true\n'
                      'feedback = "alignment"\noutput_scaling = "1/K"\nweight_decay = 0.05\n')
    (tmp_path / "model.toml").write_text(model)
    result = nndyn("run", tmp_path / "model.toml", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    data = np.load(tmp_path / "out" / "mine.npz")
    np.testing.assert_array_equal(data["p0_sim_b"], data["p0_ode_b"])
    assert data["p0_sim_b"].shape == (2, 2)
    setting = json.loads((tmp_path / "out" / "config.json").read_text())["experiments"]["mine"][0]["setting"]
    assert setting["teacher_activation"] == "erf" and setting["feedback"] == "alignment"


@pytest.mark.slow
def test_run_a_continual_config(tmp_path):
    text = ('name = "cl"\nK = 2\nM = 1\nlr = 0.5\nN = 100\nseeds = 2\ntrain_second_layer = true\n'
            '[teachers]\ncount = 2\nfeature_similarity = 0.5\nheads = "multi"\n'
            '[[phases]]\nteacher = 0\nt = 3\nthreshold = 1e-9\n[[phases]]\nteacher = 1\nt = 2\nlr = 0.25\n')
    (tmp_path / "cl.toml").write_text(text)
    result = nndyn("run", tmp_path / "cl.toml", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    data = np.load(tmp_path / "out" / "cl.npz")
    assert data["sim_eg_teacher"].shape == data["ode_eg_teacher"].shape == (2, 6, 2)
    assert data["T"].shape == (2, 2, 2) and data["v_star"].shape == (2, 2, 1)
    panel = json.loads((tmp_path / "out" / "summary.json").read_text())["cl"]["panels"][0]
    assert len(panel["forgetting_sim"]) == len(panel["transfer_ode"]) == 2
    assert "phase 0: SGD ε_g on teacher 0 did not fall below 1e-09 within t = 3" in result.stderr


@pytest.mark.slow
def test_reproduce_mismatch(tmp_path):
    result = nndyn("reproduce", "mismatch", *TINY, "--out", tmp_path / "mismatch")
    assert result.returncode == 0, result.stderr
    assert {"mismatch.png", "mismatch.npz", "summary.json"} <= {path.name for path in (tmp_path / "mismatch").iterdir()}
    assert "ReLU student, erf teacher" in result.stdout and "feedback alignment" in result.stdout
    assert np.load(tmp_path / "mismatch" / "mismatch.npz")["p1_sim_b"].shape == (3, 4)


@pytest.mark.parametrize("line, message", [
    ("colour = 3", "unknown field 'colour'"),
    ('K = "two"', "K must be an integer >= 1, got 'two'"),
    ("sigma = -1.0", "sigma must be a finite number >= 0, got -1.0"),
    ('activation = "tanh"', "activation: unknown activation 'tanh'"),
    ('teacher_activation = "tanh"', "teacher_activation: unknown activation 'tanh'"),
    ("weight_decay = -0.5", "weight_decay must be a finite number >= 0, got -0.5"),
    ('feedback = "random"', "feedback must be one of 'backprop', 'alignment', got 'random'"),
    ('band = "yes"', "band must be true or false"),
    ("band = true\ninput_spectrum = [[1.5, 0.5], [0.5, 0.5]]", "band: the linear-noise band is predicted for "
                                                               "isotropic inputs without phases"),
    ("band = true\ntrain_second_layer = true", "band: with a trained second layer the seeds' v are drawn at random"),
])
def test_bad_config_field_is_one_line_and_leaves_no_folder(tmp_path, line, message):
    text = "\n".join(l for l in CONFIG.splitlines() if not l.startswith(line.split()[0] + " ")) + "\n" + line + "\n"
    (tmp_path / "bad.toml").write_text(text)
    result = nndyn("run", tmp_path / "bad.toml", cwd=tmp_path)
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # a fresh process: over 3 s
def test_a_process_given_bad_input_exits_2_with_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text(CONFIG + "colour = 3\n")
    result = in_subprocess("run", tmp_path / "bad.toml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"nndyn: error: {tmp_path / 'bad.toml'}: unknown field 'colour'"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_sigterm_leaves_nothing_behind(tmp_path):
    """A run stopped by SIGTERM (as `timeout` or a batch scheduler sends) removes its staged folder."""
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "nndyn", "reproduce", "fig1", "--N", "200", "--t-max", "400",
                                "--seeds", "2", "--out", str(tmp_path / "run")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".run.partial-*")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(".run.partial-*")), "the run did not start"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_only_a_folder_that_nndyn_wrote(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("mine")
    result = nndyn("reproduce", "fig1", *TINY, "--out", precious, "--force")
    assert result.returncode == 2 and "not a run folder written by nndyn" in result.stderr
    assert (precious / "data.txt").read_text() == "mine"


def test_a_run_the_machine_cannot_hold_is_refused_before_it_starts(tmp_path):
    (tmp_path / "big.toml").write_text(CONFIG.replace("K = 2", "K = 5000").replace("N = 150", "N = 1000"))
    result = nndyn("run", tmp_path / "big.toml", cwd=tmp_path)
    assert result.returncode == 2 and "GiB of memory" in result.stderr and "--yes" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_stages_of_killed_runs_are_removed_by_the_next_run(tmp_path):
    """A stage goes when no process holds its lock, whatever its marker's process id says: a live
    run in another PID namespace or on another host (whose id is not visible here) keeps its stage."""
    import fcntl

    from nndyn.app.runs import LOCK, MARKER, remove_stale_stages

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale, elsewhere, foreign = tmp_path / ".a.partial-x", tmp_path / ".b.partial-y", tmp_path / ".c.partial-z"
    for folder in (stale, elsewhere):
        folder.mkdir()
        (folder / MARKER).write_text(f"written by nndyn, process {dead.stdout.strip()}\n")
        (folder / LOCK).write_bytes(b"")
    foreign.mkdir()
    with open(elsewhere / LOCK, "rb") as held:  # a live run, its process id not ours to see
        fcntl.flock(held, fcntl.LOCK_EX)
        remove_stale_stages(tmp_path)
        assert not stale.exists() and elsewhere.exists() and foreign.exists()
    remove_stale_stages(tmp_path)
    assert not elsewhere.exists() and foreign.exists()


def test_a_folder_that_appears_while_a_run_works_is_never_replaced(tmp_path):
    from nndyn.app.runs import MARKER, staged

    target = tmp_path / "out"
    with pytest.raises(FileExistsError, match="appeared while the run worked"):
        with staged(target, force=False) as staging:
            (staging.stage / "result.txt").write_text("ours")
            target.mkdir()  # someone else's, made while the run works: empty, which os.rename would replace
    assert target.is_dir() and list(target.iterdir()) == [] and list(tmp_path.iterdir()) == [target]
    with pytest.raises(FileExistsError):
        with staged(tmp_path / "other", force=False):
            (tmp_path / "other").mkdir()
            (tmp_path / "other" / "thesis.txt").write_text("mine")
    assert (tmp_path / "other" / "thesis.txt").read_text() == "mine"
    with staged(target, force=False, unique=True) as staging:  # a default name goes to the next free one
        (staging.stage / "result.txt").write_text("ours")
    assert staging.folder == tmp_path / "out-2" and (staging.folder / MARKER).is_file()
    assert not any(path.name.startswith(".") for path in tmp_path.iterdir())


def test_run_files_follow_the_umask(tmp_path):
    from nndyn.app.runs import staged, write_json

    old = os.umask(0o022)
    try:
        with staged(tmp_path / "run", force=False) as staging:
            write_json(staging.stage / "summary.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "run" / "summary.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.slow
def test_two_runs_started_together_under_one_name_both_land(tmp_path):
    """Two real processes with the same default name, started together: neither overwrites the
    other (their stamps may be equal; the second to finish gets NAME-2)."""
    (tmp_path / "mine.toml").write_text(CONFIG)
    command = [sys.executable, "-m", "nndyn", "run", "mine.toml"]
    processes = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err for _, err in outputs]
    written = {line.split()[-1] for out, _ in outputs for line in out.splitlines() if line.startswith("wrote ")}
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(written) == 2 and len(folders) == 2
    assert all((folder / "summary.json").is_file() for folder in folders)


@pytest.mark.slow
def test_analyse_finds_the_fixed_points_of_a_config(tmp_path, repo):
    """examples/plateau.toml (K = M = 2, η = 0.5) at N = 500: every quantity is of the one
    teacher `nndyn run` draws (T ≠ I): perfect learning is Q = R = T, η_max is that T's, and the
    two plateaus are found (the distinct students' with one unstable direction, the identical
    students' with more)."""
    text = (repo / "examples" / "plateau.toml").read_text().replace("N = 1000", "N = 500")
    (tmp_path / "two.toml").write_text(text.replace("t_max = 400", "t_max = 50"))
    result = nndyn("analyse", tmp_path / "two.toml", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    analysis = json.loads((tmp_path / "out" / "analysis.json").read_text())
    T = np.array(analysis["teacher"]["T"])
    assert np.max(np.abs(T - np.eye(2))) > 1e-3 and "teacher: seed 0 at N = 500" in result.stdout
    points = {start: point for point in analysis["fixed_points"] for start in [point["start"], *point["also_from"]]}
    assert points["perfect learning"]["kind"] == "stable"
    assert np.allclose(points["perfect learning"]["Q"], T, atol=1e-12)
    setting = nndyn_api.Setting(K=2, M=2, lr=0.5)
    assert analysis["eta_max"] == pytest.approx(
        learning_rate_threshold(setting, T, analysis["teacher"]["v_star"], relative_tolerance=1e-10), rel=1e-9)
    assert abs(analysis["eta_max"] - learning_rate_threshold(setting, relative_tolerance=1e-10)) > 1e-4
    distinct, identical = points["plateau, distinct students"], points["plateau, identical students"]
    assert distinct["unstable_directions"] == 1 and identical["unstable_directions"] > 1
    assert distinct["escape_rate"] > 0 and "η_c (T = I, within the symmetric ansatz)" in result.stdout
    # at N: a saddle's escape ln N/(2λ_u); no spread at perfect learning without label noise (every
    # increment vanishes at the teacher; the diffusion matrix's rule leaves ~1e-13, see test_fluctuations)
    assert distinct["escape_time"] == pytest.approx(np.log(500) / (2 * distinct["escape_rate"]), rel=1e-12)
    assert points["perfect learning"]["eg_std"] < 1e-10 and "SGD's ε_g spreads ±" in result.stdout


def test_derive_is_a_subcommand(tmp_path):
    """`nndyn derive` is `python -m nndyn.derive` (its errors too: one line, exit 2)."""
    result = nndyn("derive", "--name", "bad", "--expr", "x*y", "--out", tmp_path)
    assert result.returncode == 2 and "uses 'y', which is not x" in result.stderr
    assert result.stderr.startswith("usage: nndyn derive") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command, text, what", [
    ("analyse", "t_max = 10\nK = 300\nM = 300\n", "this analysis needs about"),
    ("analyse", "K = 2\nM = 2\n[teachers]\ncount = 2\n[[phases]]\nteacher = 0\nt = 2\n", "is a continual config"),
])
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_analyse_refuses_before_it_starts(tmp_path, command, text, what):
    """K = M = 300 would take days of Newton's steps (each a Jacobian of 135 150 vector fields);
    a continual config has several teachers, which one set of flows does not describe."""
    (tmp_path / "a.toml").write_text('name = "a"\nN = 500\nlr = 0.5\n' + text)
    result = nndyn(command, tmp_path / "a.toml", "--out", tmp_path / "out")
    assert result.returncode == 2 and what in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_sweep_and_a_run_the_machine_cannot_hold_are_refused(tmp_path):
    """K = M = 400 per grid point (hours of I4 blocks); K = 2 with a teacher of M = 5000 units and
    4 seeds (the I3 terms hold 2·5002² blocks per seed at once, about 26 GB: the run estimated at
    0.13 GB grew past 15 GB)."""
    from nndyn.app import budget
    from nndyn.app.config import read_config

    (tmp_path / "s.toml").write_text('name = "s"\nt_max = 10.0\n[defaults]\nK = 400\nM = 400\n[grid]\nlr = [0.5]\n')
    result = nndyn("sweep", tmp_path / "s.toml", "--out", tmp_path / "out")
    assert result.returncode == 2 and "this sweep needs about" in result.stderr, result.stderr
    (tmp_path / "w.toml").write_text('name = "w"\nN = 100\nK = 2\nM = 5000\nlr = 0.5\nt_max = 1\nseeds = 4\n')
    (panel,) = read_config(tmp_path / "w.toml").panels
    assert budget.panel_cost(panel).bytes > 20 * 2**30


@pytest.mark.slow
def test_reproduce_fluctuations(tmp_path, monkeypatch):
    """`nndyn reproduce fluctuations` at a toy scale (a K = M = 2 panel, escapes at two N): the
    band, the SDE's paths and the escape times in the arrays, the summary and the table; a path
    that never escaped is null in the JSON and "never" in the table, not a crash."""
    from dataclasses import replace

    from nndyn.app import cli
    from nndyn.app.experiments import figure

    def toy(name, full=False):
        experiment = figure(name, full)
        (panel,) = experiment.panels
        return replace(experiment, panels=(replace(panel, setting=panel.setting.replace(K=2, M=2), band_points=256),),
                       escapes=replace(experiment.escapes, sizes=(50, 100), paths=4, t_max=60.0))

    monkeypatch.setattr(cli, "figure", toy)
    folder = tmp_path / "fluctuations"
    result = nndyn("reproduce", "fluctuations", *TINY, "--out", folder)
    assert result.returncode == 0, result.stderr
    data = np.load(folder / "fluctuations.npz")
    assert data["sde_eg"].shape == data["p0_sim_eg"].shape == (3, 5) and data["p0_band_eg_var"].shape == (5,)
    assert data["p0_band_covariance"].shape == (5, 7, 7)
    assert data["escape_sgd"].shape == data["escape_sde"].shape == (2, 4)
    finite = json.loads((folder / "summary.json").read_text())["fluctuations"]["finite_N"]
    assert set(finite["spread"]) == {"early", "late"} and finite["spread"]["late"]["eg_std_predicted"] > 0
    escapes = finite["escapes"]
    assert escapes["N"] == [50, 100] and escapes["ode_escaped"] is False
    assert escapes["law_slope"] == pytest.approx(1 / (2 * escapes["escape_rate"]))
    assert len(escapes["sgd_median"]) == len(escapes["ks_pvalue_sgd_vs_sde"]) == 2
    assert "plateau escape times" in result.stdout and "the ODE never leaves the plateau" in result.stdout
    config = json.loads((folder / "config.json").read_text())["experiments"]["fluctuations"][0]
    assert config["escapes"]["sizes"] == [50, 100] and config["band"] is True and config["band_points"] == 256
    panel = json.loads((folder / "summary.json").read_text())["fluctuations"]["panels"][0]
    assert panel["eg_std_predicted_rms"] > 0 and panel["eg_std_sgd_rms"] > 0
