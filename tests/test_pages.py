"""What a schedule does, in pictures: the token maps of ``hwsearch show`` (deploy mode's own
bookkeeping), the per-schedule HTML page (self-contained; rendered in headless Chromium where it is
installed) and their user errors."""
import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
import yaml
from conftest import make_vit, recorded_results
from PIL import Image
from test_latency_optimize import SEARCH
from test_profile import MODEL, quick_targets  # noqa: F401 - fixture

from hwsearch.cli import main
from hwsearch.model.vit import Tokens, apply_schedule
from hwsearch.report.tokenmap import owners
from hwsearch.schedule import Schedule

SCHEDULES = {  # (merging, counts) on the 4-block, 17-token DeiT-Tiny at 64 px: prune and merge, both operators
    "similarity": [(17, 17), (15, 11), (9, 7), (5, 4)],
    "rank": [(17, 15), (13, 9), (9, 6), (4, 3)],
}


def block_io(model, images):
    """Per block of an untraced deploy-mode run, driven block by block: (tokens entering the compression
    step, their sizes, tokens after it, their sizes); the tokens read with hooks around the real block."""
    seen, hooks = {}, []
    for i, block in enumerate(model.vit.blocks):
        hooks.append(block.drop_path1.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(("attn", i), out)))
        hooks.append(block.norm1.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(("in", i), a[0])))
        hooks.append(block.norm2.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(("out", i), a[0])))
    sizes = []
    with torch.no_grad():
        tokens = Tokens(model.vit.norm_pre(model.vit._pos_embed(model.vit.patch_embed(images))))
        for block, keep in zip(model.vit.blocks, model.counts, strict=True):
            entering = tokens.size
            tokens = block.forward_tokens(tokens, keep, model.merging)
            sizes.append((entering, tokens.size))
    for h in hooks:
        h.remove()
    return [(seen[("in", i)] + seen[("attn", i)], sizes[i][0], seen[("out", i)], sizes[i][1])
            for i in range(len(sizes))]


@pytest.mark.parametrize("merging", sorted(SCHEDULES))
def test_token_map_reproduces_deploy_sizes_and_features(merging):
    model = apply_schedule(make_vit("deit_tiny"), SCHEDULES[merging], merging)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        traced = model.tokens(images, trace=True)
        plain = model.tokens(images)
    assert torch.equal(traced.x, plain.x)  # tracing does not change what deploy mode computes
    for (before, size_in, after, size_out), assign in zip(block_io(model, images), traced.traces, strict=True):
        size_in = size_in if size_in is not None else torch.ones_like(before[..., :1])
        if assign is None:  # a block that does not compress: every token stays itself
            assert torch.equal(before, after)
            continue
        # the map, applied as a size-weighted average to the block's input tokens, gives deploy mode's tokens
        alive = (assign >= 0).unsqueeze(-1).to(before.dtype)
        target = assign.clamp(min=0).unsqueeze(-1)
        sizes = torch.zeros_like(size_out).scatter_add(1, target, size_in * alive)
        sums = torch.zeros_like(after).scatter_add(1, target.expand_as(before), before * size_in * alive)
        assert torch.allclose(sizes, size_out, atol=1e-5)
        assert torch.allclose(sums / sizes, after, atol=1e-5)
    # the maps that show draws (composed to the embedded tokens) count each final token's patches
    final = owners(model, images)[-1]
    for b in range(images.shape[0]):
        counted = torch.bincount(final[b][final[b] >= 0], minlength=plain.size.shape[1]).to(plain.size.dtype)
        assert torch.equal(counted, plain.size[b, :, 0])


def write_schedule(folder, merging="similarity"):
    """A 12-block schedule for DeiT-Tiny at 64 px (17 tokens; random weights: the timm model seeded 0)."""
    counts = SCHEDULES[merging] + [SCHEDULES[merging][-1][1:] * 2] * 8
    path = folder / "tiny.yaml"
    Schedule.from_counts("deit_tiny_patch16_224", 64, 17, 1, counts, merging=merging).save(path)
    return path


def test_show_writes_one_token_map_per_image(tmp_path, capsys):
    path = write_schedule(tmp_path)
    images = []
    for i, mode in enumerate(("RGB", "L")):
        image = tmp_path / f"photo{i}.png"
        Image.new(mode, (80, 60), 90 + 60 * i).save(image)
        images += ["--image", str(image)]
    assert main(["show", str(path), *images, "--blocks", "1,3",
                 "--out-dir", str(tmp_path / "maps")]) == 0
    written = sorted((tmp_path / "maps").glob("*.png"))
    assert [p.name for p in written] == ["tiny.photo0.png", "tiny.photo1.png"]
    for p in written:
        assert Image.open(p).size[0] > 2 * Image.open(p).size[1]  # the image and two blocks in one row
    # default: the held-out photos, into report/ beside the schedule
    assert main(["show", str(path)]) == 0
    assert len(list((tmp_path / "report").glob("tiny.*.png"))) == 4


def test_show_user_errors_are_one_line(tmp_path, capsys):
    path = write_schedule(tmp_path)
    cases = [
        (["--model", "deit_small_patch16_224"], "made for deit_tiny_patch16_224, not deit_small_patch16_224"),
        (["--image", str(tmp_path / "missing.jpg")], "cannot read image"),
        (["--blocks", "12"], "--blocks: block numbers must be in [0, 11]"),
        (["--blocks", "3,x"], "--blocks: expected block numbers"),
    ]
    for extra, message in cases:
        assert main(["show", str(path), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    # a schedule for another model shape (3 blocks; deit_tiny has 12)
    other = yaml.safe_load(path.read_text())
    other["blocks"] = other["blocks"][:3]
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    assert main(["show", str(tmp_path / "other.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "schedule has 3 blocks, model has 12" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("report/other.*"))


@pytest.fixture
def latency_page(quick_targets, tmp_path):  # noqa: F811
    """The page optimize writes for a latency schedule, on the recorded profile (predicted only: the target
    is this CPU's settings marked remote, a test target)."""
    data = yaml.safe_load((quick_targets / "cpu_onnxruntime.yaml").read_text())
    (quick_targets / "cpu_remote.yaml").write_text(yaml.safe_dump({**data, "name": "cpu_remote", "host": "remote"}))
    out = recorded_results(tmp_path / "results", target="cpu_remote")
    assert main(["optimize", "--target", "cpu_remote", *MODEL, "--latency-ms", "10", *SEARCH, "--out", str(out)]) == 0
    return out / "cpu_remote" / "deit_tiny_patch16_224" / "report" / "latency10.html"


def test_schedule_page_is_self_contained(latency_page):
    page = latency_page.read_text()
    images = re.findall(r'<img src="([^"]*)" alt="([^"]*)"', page)
    assert len(images) == page.count("<img")
    alts = [alt for _, alt in images]
    for chart in ("predicted vs measured latency", "kept tokens per block", "per-block cost"):
        assert chart in alts
    assert sum(alt.startswith("token map") for alt in alts) == 2
    for src, _ in images:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert not re.search(r"https?://", page)
    for text in ("targets and budgets", "cpu_remote", "latency_ms", "fitted latency on cpu_remote",
                 "hwsearch evaluate", "hwsearch show"):
        assert text in page


def test_report_command_rewrites_the_page_and_saves_its_pictures(latency_page, tmp_path, capsys):
    schedule = latency_page.parent.parent / "schedules" / "latency10.yaml"
    latency_page.unlink()
    assert main(["report", str(schedule), "--png-dir", str(tmp_path / "docs")]) == 0
    assert latency_page.is_file()
    saved = {p.name for p in (tmp_path / "docs").glob("*.png")}
    assert {"latency10.kept_tokens_per_block.png", "latency10.per_block_cost.png",
            "latency10.predicted_vs_measured_latency.png"} <= saved and len(saved) == 5
    capsys.readouterr()
    schedule.with_suffix(".eval.json").write_text("{")  # a corrupt evaluation beside the schedule
    assert main(["report", str(schedule)]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt evaluation" in err and len(err.splitlines()) == 1
    for args in ([], [str(schedule), "--profile", "x.csv"]):
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert "give a schedule YAML or --profile" in err and len(err.splitlines()) == 1


def chromium_console(browser, page, shot):
    """Render ``page`` headless into the screenshot ``shot``; returns (exit code, its console lines, stderr)."""
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,4000",
                          "--enable-logging=stderr", "--log-level=0", f"--screenshot={shot}", page.resolve().as_uri()],
                         capture_output=True, text=True, timeout=180)
    return run.returncode, [line for line in run.stderr.splitlines() if ":CONSOLE" in line], run.stderr


def test_schedule_page_renders_in_chromium_without_console_errors(latency_page, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium; .ci/run installs it where it can)")
    probe = tmp_path / "probe.html"  # the capture sees console errors (else this test would prove nothing)
    probe.write_text("<!doctype html><html><body><script>console.error('probe-error')</script></body></html>")
    assert any("probe-error" in line for line in chromium_console(browser, probe, tmp_path / "probe.png")[1])
    shot = tmp_path / "page.png"
    code, console, stderr = chromium_console(browser, latency_page, shot)
    assert not console, console
    assert code == 0, stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 4000)
        assert np.unique(np.asarray(image.convert("L"))).size > 20  # not a blank page
