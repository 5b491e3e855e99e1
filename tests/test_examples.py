"""The examples, the demo and the CLI run end to end (quick modes)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pfn.checkpoint import read_manifest
from pfn.cli import main

ROOT = Path(__file__).resolve().parent.parent
needs_gp = pytest.mark.skipif("gp" not in read_manifest()["models"], reason="pretrained/gp is not shipped")


def test_custom_prior_example_runs_in_quick_mode(tmp_path):
    script = ROOT / "examples" / "custom_prior.py"
    out = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "exact grid posterior" in out.stdout


@needs_gp
def test_demo_fits_real_signal_and_writes_plot(tmp_path):
    from pfn.gp.demo import run_gp_demo

    result = run_gp_demo(tmp_path)
    assert (tmp_path / "demo_gp.png").stat().st_size > 10_000
    # Petal width has a standard deviation of 0.76 cm; both models explain most of it.
    assert result["rmse_pfn"] < 0.3
    assert result["rmse_pfn"] < 1.25 * result["rmse_gp"]


@needs_gp
def test_list_shows_shipped_model_with_its_training_record(capsys):
    main(["list"])
    text = capsys.readouterr().out
    assert "gp:" in text and "GPPrior" in text and "reproduce: pfn reproduce gp  # 9 commands" in text


def test_ship_copies_a_run_into_pretrained_and_list_shows_it(tiny_pfn, tmp_path, monkeypatch, capsys):
    import pfn.checkpoint as checkpoint
    from priors import GPPrior

    monkeypatch.setattr(checkpoint, "PRETRAINED_DIR", tmp_path / "pretrained")
    tiny_pfn.info.update(prior=GPPrior().to_dict(), record={"steps": 3, "wall_time_s": 1.0, "device": "cpu"})
    checkpoint.save_checkpoint(tiny_pfn, tmp_path / "run")
    main(["ship", str(tmp_path / "run"), "tiny"])
    shipped = checkpoint.load("tiny")
    x = torch.rand(6, 2)
    torch.testing.assert_close(shipped.predict(x, x[:, 0], x).mean, tiny_pfn.predict(x, x[:, 0], x).mean)
    capsys.readouterr()
    main(["list"])
    text = capsys.readouterr().out
    assert "tiny:" in text and "GPPrior" in text and f"pfn ship {tmp_path / 'run'} tiny" in text


WINE_ACCURACY_FLOOR = 0.85  # measured 0.955; chance is 0.40 (the largest class)
needs_tabular = pytest.mark.skipif(not {"tabular-clf", "tabular-reg"} <= set(read_manifest()["models"]),
                                   reason="pretrained/tabular-clf and tabular-reg are not shipped")


@needs_tabular
@pytest.mark.parametrize("name, expected", [("tabular_classification", "PFNClassifier: accuracy"),
                                            ("tabular_regression", "PFNRegressor: R^2")])
def test_tabular_examples_run_in_quick_mode(name, expected):
    script = ROOT / "examples" / f"{name}.py"
    out = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True, text=True, cwd=ROOT,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expected in out.stdout


@needs_tabular
def test_tabular_demo_classifies_wine_far_above_chance():
    from pfn.tabular.demo import run_tabular_demo

    results = run_tabular_demo()
    assert set(results) == {"PFNClassifier", "logistic regression", "HistGradientBoosting"}
    assert results["PFNClassifier"]["accuracy"] > WINE_ACCURACY_FLOOR


@pytest.mark.skipif("lcpfn" not in read_manifest()["models"], reason="pretrained/lcpfn is not shipped")
def test_curves_demo_extrapolates_real_runs_and_writes_plot(tmp_path):
    from pfn.curves.demo import run_curves_demo

    result = run_curves_demo(tmp_path)
    assert (tmp_path / "demo_curves.png").stat().st_size > 10_000
    assert result["coverage90"] >= 0.5
    assert result["mae_median"] < result["mae_last"]


@pytest.mark.skipif("bo" not in read_manifest()["models"], reason="pretrained/bo is not shipped")
def test_bo_demo_tunes_gradient_boosting_and_writes_plot(tmp_path):
    from bo.demo import run_bo_demo

    result = run_bo_demo(tmp_path, n_trials=12)
    assert (tmp_path / "demo_bo.png").stat().st_size > 5_000
    assert result["best_pfn"] < 0.08  # 50-tree gradient boosting reaches about 0.04 on breast cancer


@pytest.mark.skipif("linreg" not in read_manifest()["models"], reason="pretrained/linreg is not shipped")
def test_linreg_demo_learns_in_context_and_writes_plot(tmp_path):
    from pfn.linreg.demo import run_linreg_demo

    rows = {r["n"]: r for r in run_linreg_demo(tmp_path, d=5)["rows"]}
    assert (tmp_path / "demo_linreg.png").stat().st_size > 10_000
    # Measured: PFN MSE 1.03 to 1.35 times Bayes ridge's at every n; 2.3 against OLS's 291 at n = d = 5;
    # 0.57 against the prior mean's 5.7 at n = 40.
    assert all(r["mse_pfn"] < 1.6 * r["mse_ridge"] for r in rows.values())
    assert rows[5]["mse_pfn"] < 0.1 * rows[5]["mse_ols"]
    assert rows[40]["mse_pfn"] < 0.2 * rows[40]["mse_prior"]


@pytest.mark.skipif("dist-gmm" not in read_manifest()["models"], reason="pretrained/dist-gmm is not shipped")
def test_dist_demo_chains_posteriors_near_the_exact_ones_and_writes_plot(tmp_path):
    from pfn.distribution_transformer.demo import run_dist_demo

    result = run_dist_demo(tmp_path)
    assert (tmp_path / "demo_dist.png").stat().st_size > 10_000
    # Measured: KL(predicted || exact) 0.16 and 0.07 nats after the two chained updates; the belief before
    # each update is 9.4 and 14.7 nats from the exact posterior.
    assert all(kl < 0.5 for kl in result["kl_predicted"])
    assert all(kl > 5.0 for kl in result["kl_prior"])


def test_linreg_and_dist_demo_parts_skip_themselves_without_their_models(tmp_path, monkeypatch, capsys):
    import pfn.distribution_transformer.demo
    import pfn.linreg.demo

    for module in (pfn.distribution_transformer.demo, pfn.linreg.demo):
        monkeypatch.setattr(module, "read_manifest", lambda: {"models": {}})
    assert pfn.linreg.demo.run_linreg_demo(tmp_path) == {}
    assert pfn.distribution_transformer.demo.run_dist_demo(tmp_path) == {}
    out = capsys.readouterr().out
    assert "skipped, pretrained/linreg is not shipped" in out and "skipped, pretrained/dist-gmm is not shipped" in out
    assert not list(tmp_path.iterdir())


DEMO_PARTS = ["10-gp", "20-tabular", "30-curves", "40-bo", "50-linreg", "60-distribution-transformer"]


def test_pfn_demo_runs_the_registered_parts_in_order_and_each_skips_itself_without_its_model(tmp_path, monkeypatch,
                                                                                              capsys):
    import sys

    import pfn.checkpoint
    from pfn.cli import demo_parts

    parts = demo_parts()
    assert [part.name for part in parts] == DEMO_PARTS
    assert all(callable(part.load()) for part in parts)
    monkeypatch.setattr(pfn.checkpoint, "read_manifest", lambda: {"models": {}})
    for part in parts:  # the parts that imported read_manifest by name
        module = sys.modules[part.module]
        if hasattr(module, "read_manifest"):
            monkeypatch.setattr(module, "read_manifest", lambda: {"models": {}})
    main(["demo", "--out", str(tmp_path / "plots")])
    skipped = [line for line in capsys.readouterr().out.splitlines() if "skipped, pretrained/" in line]
    assert [line.split(" is not shipped")[0].split("pretrained/")[1] for line in skipped] == \
        ["gp", "tabular-clf", "lcpfn", "bo", "linreg", "dist-gmm"]
    assert list((tmp_path / "plots").iterdir()) == []
