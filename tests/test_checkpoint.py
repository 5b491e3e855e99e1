"""Checkpoints: safetensors + JSON round trip, checksums verified on every load, manifest verification,
shipped names first, clear failures, no pickles."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import pfn
import pfn.checkpoint as ckpt
from pfn.checkpoint import (
    CheckpointError,
    save_checkpoint,
    verify_checksums,
    verify_shipped,
    write_checksums,
    write_manifest,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG, WEIGHTS, CHECKSUMS = "config.json", "model.safetensors", "checksums.json"


def queries(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 15, 3, generator=g)
    y = torch.randn(2, 15, generator=g)
    return x[:, :9], y[:, :9], x[:, 9:]


def assert_same_predictions(a: pfn.PFN, b: pfn.PFN) -> None:
    xc, yc, xq = queries()
    pa, pb = a.predict(xc, yc, xq), b.predict(xc, yc, xq)
    assert torch.equal(pa.log_probs, pb.log_probs)
    assert torch.equal(pa.borders, pb.borders)


@pytest.fixture
def shipped(tmp_path, tiny_pfn, monkeypatch):
    """A temporary pretrained root holding model `tiny` and its manifest; `PRETRAINED_DIR` points at it."""
    root = tmp_path / "pretrained"
    tiny_pfn.info = {"prior": {"type": "GPPrior"}, "record": {"steps": 3}}
    save_checkpoint(tiny_pfn, root / "tiny")
    write_manifest(["tiny"], root=root)
    monkeypatch.setattr(ckpt, "PRETRAINED_DIR", root)
    return root


# --- round trip ---------------------------------------------------------------------------------

def test_saved_checkpoint_loads_with_identical_predictions(tmp_path, tiny_pfn):
    tiny_pfn.info = {"prior": {"type": "GPPrior"}, "record": {"steps": 7, "final_loss": 1.5}}
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    loaded = pfn.load(folder)
    assert isinstance(loaded, pfn.PFN)
    assert not loaded.training
    assert loaded.config == tiny_pfn.config
    assert loaded.info == tiny_pfn.info
    sd_a, sd_b = tiny_pfn.state_dict(), loaded.state_dict()
    assert sd_a.keys() == sd_b.keys()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert_same_predictions(tiny_pfn, loaded)
    assert_same_predictions(tiny_pfn, ckpt.load(str(folder), device="cpu"))


def test_checkpoint_folder_holds_only_safetensors_and_json(tmp_path, tiny_pfn):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == [CHECKSUMS, CONFIG, WEIGHTS]
    checksums = json.loads((folder / CHECKSUMS).read_text())
    assert set(checksums) == {CONFIG, WEIGHTS}
    for name, entry in checksums.items():
        assert entry == {"sha256": ckpt.sha256_of(folder / name), "size": (folder / name).stat().st_size}
    config = json.loads((folder / CONFIG).read_text())
    assert config["model"] == tiny_pfn.config.to_dict()
    assert config["head_state"]["borders"] == pytest.approx(tiny_pfn.head.borders.tolist())
    assert set(load_file(str(folder / WEIGHTS))) == set(tiny_pfn.state_dict())


def test_saving_twice_overwrites_atomically(tmp_path, tiny_pfn):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    with torch.no_grad():
        tiny_pfn.head.proj.bias.add_(1.0)
    save_checkpoint(tiny_pfn, folder)
    assert sorted(p.name for p in folder.iterdir()) == [CHECKSUMS, CONFIG, WEIGHTS]  # no *.tmp left over
    assert_same_predictions(tiny_pfn, pfn.load(folder))


# --- shipped models and the manifest ------------------------------------------------------------

def test_manifest_records_size_and_sha256_of_every_file(shipped):
    manifest = json.loads((shipped / "MANIFEST.json").read_text())
    files = {f["path"]: f for f in manifest["models"]["tiny"]["files"]}
    assert set(files) == {f"tiny/{CHECKSUMS}", f"tiny/{CONFIG}", f"tiny/{WEIGHTS}"}
    for path, entry in files.items():
        assert entry["size"] == (shipped / path).stat().st_size
        assert entry["sha256"] == ckpt.sha256_of(shipped / path)
        assert len(entry["sha256"]) == 64


def test_write_manifest_keeps_other_models(shipped, tiny_pfn):
    save_checkpoint(tiny_pfn, shipped / "other")
    write_manifest(["other"], root=shipped)
    assert set(ckpt.read_manifest(shipped)["models"]) == {"tiny", "other"}


def test_shipped_model_loads_by_name(shipped, tiny_pfn):
    assert verify_shipped("tiny", root=shipped) == shipped / "tiny"
    assert verify_shipped("tiny") == shipped / "tiny"  # default root follows PRETRAINED_DIR
    assert_same_predictions(tiny_pfn, pfn.load("tiny"))


def test_unknown_model_name_raises_and_lists_shipped_models(shipped):
    with pytest.raises(CheckpointError, match=r"'nope' is neither a checkpoint folder nor a shipped model.*tiny"):
        pfn.load("nope")
    with pytest.raises(CheckpointError, match="no shipped model named 'nope'"):
        verify_shipped("nope", root=shipped)


@pytest.mark.parametrize("fname", [WEIGHTS, CONFIG])
def test_missing_shipped_file_raises_naming_the_file(shipped, fname):
    path = shipped / "tiny" / fname
    path.unlink()
    with pytest.raises(CheckpointError, match="is missing") as err:
        pfn.load("tiny")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fname", [WEIGHTS, CONFIG])
def test_truncated_shipped_file_raises_naming_the_file(shipped, fname):
    path = shipped / "tiny" / fname
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        pfn.load("tiny")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fname, where", [(WEIGHTS, -5), (WEIGHTS, 200), (CONFIG, -10)])
def test_tampered_shipped_file_of_same_size_raises_naming_the_file(shipped, fname, where):
    path = shipped / "tiny" / fname
    data = bytearray(path.read_bytes())
    data[where] ^= 0x01  # one bit: the file still parses, only the hash can tell
    path.write_bytes(bytes(data))
    assert path.stat().st_size == len(data)
    with pytest.raises(CheckpointError, match="sha256") as err:
        pfn.load("tiny")
    assert str(path) in str(err.value)


@pytest.mark.parametrize("fname", [WEIGHTS, CONFIG])
def test_tampered_file_of_a_folder_loaded_by_path_raises_naming_it(tmp_path, tiny_pfn, fname):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    data = bytearray((folder / fname).read_bytes())
    data[-5] ^= 0x01  # one bit: the file still parses, only the hash can tell
    (folder / fname).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{folder / fname} does not match its sha256 in .*{CHECKSUMS}"):
        pfn.load(folder)


def test_damaged_shipped_model_loaded_by_its_folder_path_raises(shipped):
    # Even with its own checksum record rewritten, the shipped folder is checked against the manifest.
    path = shipped / "tiny" / WEIGHTS
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    write_checksums(shipped / "tiny")
    verify_checksums(shipped / "tiny")
    for by_path in (shipped / "tiny", str(shipped / "tiny")):
        with pytest.raises(CheckpointError, match=f"{shipped / 'tiny'}/.* does not match its sha256 in .*MANIFEST"):
            pfn.load(by_path)


def test_a_shipped_name_is_not_shadowed_by_a_local_folder(shipped, tiny_pfn, tmp_path, monkeypatch):
    with torch.no_grad():
        tiny_pfn.head.proj.bias.add_(1.0)
    local = save_checkpoint(tiny_pfn, tmp_path / "cwd" / "tiny")
    monkeypatch.chdir(tmp_path / "cwd")
    shipped_model, local_model = pfn.load("tiny"), pfn.load(Path("tiny"))
    assert not torch.equal(shipped_model.head.proj.bias, local_model.head.proj.bias)
    assert torch.equal(shipped_model.head.proj.bias, pfn.load(shipped / "tiny").head.proj.bias)
    assert torch.equal(local_model.head.proj.bias, pfn.load("./tiny").head.proj.bias)
    assert torch.equal(local_model.head.proj.bias, pfn.load(local).head.proj.bias)


def test_a_folder_without_its_checksum_record_is_refused(tmp_path, tiny_pfn):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    (folder / CHECKSUMS).unlink()
    with pytest.raises(CheckpointError, match="checksums.json is missing.*write_checksums"):
        pfn.load(folder)
    write_checksums(folder)
    assert_same_predictions(tiny_pfn, pfn.load(folder))


@pytest.mark.parametrize("content", ["{ not json", "[1, 2]", '{"models": 3}'])
def test_corrupt_manifest_raises_naming_it(shipped, content):
    (shipped / "MANIFEST.json").write_text(content)
    with pytest.raises(CheckpointError, match=f"{shipped / 'MANIFEST.json'} is not a valid manifest"):
        pfn.load("tiny")


def test_the_shipped_models_carry_their_checksums_and_verify():
    root = ROOT / "pretrained"
    names = sorted(ckpt.read_manifest(root)["models"])
    assert names
    for name in names:
        assert verify_shipped(name, root=root) == root / name
        verify_checksums(root / name)
        listed = {f["path"] for f in ckpt.read_manifest(root)["models"][name]["files"]}
        assert f"{name}/{CHECKSUMS}" in listed


def test_pretrained_dir_is_the_repository_copy_unless_overridden(monkeypatch, tmp_path):
    monkeypatch.delenv("PFN_PRETRAINED_DIR", raising=False)
    assert ckpt._default_pretrained_dir() == ROOT / "pretrained"
    monkeypatch.setenv("PFN_PRETRAINED_DIR", str(tmp_path))
    assert ckpt._default_pretrained_dir() == tmp_path


# --- unreadable checkpoint folders --------------------------------------------------------------

@pytest.mark.parametrize(
    "content",
    [b"garbage" * 20, b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{not json", bytes(range(256)) * 4],
    ids=["text", "empty", "bad-header", "binary"],
)
def test_garbage_weights_raise_checkpoint_error(tmp_path, tiny_pfn, content):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    (folder / WEIGHTS).write_bytes(content)
    write_checksums(folder)
    with pytest.raises(CheckpointError) as err:
        pfn.load(folder)
    assert str(folder / WEIGHTS) in str(err.value)


def test_truncated_weights_in_a_folder_raise_checkpoint_error(tmp_path, tiny_pfn):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="is truncated or replaced") as err:
        pfn.load(folder)
    assert str(folder / WEIGHTS) in str(err.value)
    write_checksums(folder)  # a file that was damaged before it was recorded: it cannot be read
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        pfn.load(folder)
    assert str(folder / WEIGHTS) in str(err.value)


def test_weights_of_another_architecture_raise_checkpoint_error(tmp_path, tiny_pfn):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    state = load_file(str(folder / WEIGHTS))
    state.pop("head.proj.bias")
    save_file(state, str(folder / WEIGHTS))
    write_checksums(folder)
    with pytest.raises(CheckpointError, match="does not fit the architecture"):
        pfn.load(folder)
    config = json.loads((folder / CONFIG).read_text())
    config["model"]["n_layers"] = 3
    (folder / CONFIG).write_text(json.dumps(config))
    write_checksums(folder)
    with pytest.raises(CheckpointError, match="does not fit the architecture"):
        pfn.load(folder)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda c: "{ not json",
        lambda c: json.dumps([1, 2, 3]),
        lambda c: json.dumps({k: v for k, v in c.items() if k != "head_state"}),
        lambda c: json.dumps({**c, "model": {**c["model"], "n_head": 2}}),
        lambda c: json.dumps({**c, "model": {**c["model"], "d_model": 33}}),
        lambda c: json.dumps({**c, "head_state": {"borders": c["head_state"]["borders"][:10]}}),
        lambda c: json.dumps({**c, "head_state": {"borders": "oops"}}),
    ],
    ids=["not-json", "not-a-dict", "no-borders", "unknown-field", "bad-architecture", "wrong-border-count",
         "borders-not-numbers"],
)
def test_invalid_config_raises_checkpoint_error_naming_it(tmp_path, tiny_pfn, corrupt):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    config = json.loads((folder / CONFIG).read_text())
    (folder / CONFIG).write_text(corrupt(config))
    write_checksums(folder)  # recorded as it is: the content itself is refused
    with pytest.raises(CheckpointError) as err:
        pfn.load(folder)
    assert str(folder / CONFIG) in str(err.value)


@pytest.mark.parametrize("fname", [WEIGHTS, CONFIG])
def test_missing_file_in_a_folder_raises_checkpoint_error(tmp_path, tiny_pfn, fname):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    (folder / fname).unlink()
    with pytest.raises(CheckpointError, match="is missing") as err:
        pfn.load(folder)
    assert str(folder / fname) in str(err.value)



def _flip_a_weight_byte(folder: Path) -> None:
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-5] ^= 0x01  # the file still parses: only a checksum can tell
    (folder / WEIGHTS).write_bytes(bytes(data))


@pytest.mark.parametrize("uncovered", [[WEIGHTS, CONFIG], [WEIGHTS], [CONFIG]])
def test_a_checksum_record_that_leaves_out_a_loaded_file_is_refused(tmp_path, tiny_pfn, uncovered):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    _flip_a_weight_byte(folder)
    record = json.loads((folder / CHECKSUMS).read_text())
    (folder / CHECKSUMS).write_text(json.dumps({k: v for k, v in record.items() if k not in uncovered}))
    with pytest.raises(CheckpointError, match=f"no entry in {folder / CHECKSUMS}") as err:
        pfn.load(folder)
    assert all(str(folder / name) in str(err.value) for name in uncovered)


def test_an_empty_checksum_record_does_not_let_a_flipped_weight_byte_load(tmp_path, tiny_pfn):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    _flip_a_weight_byte(folder)
    (folder / CHECKSUMS).write_text("{}")
    with pytest.raises(CheckpointError, match=f"{folder / CONFIG}, {folder / WEIGHTS} have no entry in"):
        pfn.load(folder)
    write_checksums(folder)  # a record that covers every file: the (modified) weights load as recorded
    assert isinstance(pfn.load(folder), pfn.PFN)


def test_a_file_beside_the_checkpoint_without_a_checksum_is_refused(tmp_path, tiny_pfn):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    (folder / "notes.txt").write_text("added after the checksums")
    with pytest.raises(CheckpointError, match="notes.txt has no entry in"):
        pfn.load(folder)


# --- arguments of load --------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [None, 3, ["gp"]])
def test_load_refuses_what_is_neither_a_name_nor_a_path(bad):
    with pytest.raises(TypeError, match="name_or_path must be a shipped model's name .* or a folder's path"):
        pfn.load(bad)


@pytest.mark.parametrize("device, match", [("foo", "device='foo' is not a torch device"),
                                           ("cpu:x", "device='cpu:x' is not a torch device")])
def test_load_refuses_an_unknown_device_before_reading_anything(device, match):
    with pytest.raises(ValueError, match=match):
        pfn.load("no-such-model", device=device)


def test_load_refuses_a_device_that_is_not_a_name():
    with pytest.raises(TypeError, match="device=None must be a device name \\(str\\) or a torch.device"):
        pfn.load("no-such-model", device=None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_load_on_cuda_without_a_gpu_says_so(tmp_path, tiny_pfn):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    with pytest.raises(ValueError, match="device='cuda' but torch sees no CUDA GPU here"):
        pfn.load(folder, device="cuda")
    with pytest.raises(ValueError, match="device='cuda:0' but torch sees no CUDA GPU here"):
        ckpt.load_folder(folder, device=torch.device("cuda", 0))


def test_load_takes_a_device_by_name_or_as_torch_device(tmp_path, tiny_pfn):
    folder = save_checkpoint(tiny_pfn, tmp_path / "ckpt")
    for device in ("cpu", "auto", torch.device("cpu")):
        assert_same_predictions(tiny_pfn, pfn.load(folder, device=device).cpu())


# --- never pickles ------------------------------------------------------------------------------

FORBIDDEN_CALLS = {("pickle", "load"), ("pickle", "loads"), ("torch", "load"), ("dill", "load"), ("dill", "loads"),
                   ("cloudpickle", "load"), ("cloudpickle", "loads"), ("joblib", "load")}


def _forbidden_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in {"pickle", "torch", "dill", "cloudpickle", "joblib"}:
            for alias in node.names:
                if (node.module, alias.name) in FORBIDDEN_CALLS:
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in {"pickle", "dill", "cloudpickle"}:
                    found.append(f"line {node.lineno}: import {alias.name}")
    return found


def test_the_forbidden_use_detector_finds_pickle_loads():
    assert _forbidden_uses("import torch\nstate = torch.load(path)\n")
    assert _forbidden_uses("import pickle\nobj = pickle.loads(b)\n")
    assert _forbidden_uses("from torch import load\n")
    assert not _forbidden_uses("from safetensors.torch import load_file\nx = load_file(p)\n")


def test_no_library_module_unpickles():
    files = sorted(p for pkg in ("pfn", "priors", "bo") for p in (ROOT / pkg).rglob("*.py"))
    assert len(files) >= 10
    offenders = {str(p.relative_to(ROOT)): uses for p in files if (uses := _forbidden_uses(p.read_text()))}
    assert not offenders, f"modules that load pickles: {offenders}"
