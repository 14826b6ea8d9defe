"""The health report of ``lutgen info``: each measure on hand-built LUTs with known answers, the colour
difference against colour-science, and the printed and JSON forms."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from cli_runner import one_sentence_error, run_lutgen
from lutgen.formats import read_lut, write_lut
from lutgen.lut import LUT, Shaper, grid
from lutgen.tasks.health import (NEAR_IDENTITY, cell_determinants, health, health_rows, node_lattice,
                                 srgb_to_lab)
from reference import colour, nonlinear_lut

ROOT = Path(__file__).resolve().parents[1]
VELVIA = ROOT / "lutgen" / "data" / "luts" / "fuji_velvia_50.cube"


def test_srgb_to_lab_matches_colour_science():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(-0.2, 1.2, (500, 3))
    rgb[:3] = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5]]
    srgb = colour.RGB_COLOURSPACES["sRGB"]  # its primaries and white, the matrix derived from them exactly
    derived = colour.RGB_Colourspace("sRGB derived", srgb.primaries, srgb.whitepoint, srgb.whitepoint_name,
                                     use_derived_matrix_RGB_to_XYZ=True, use_derived_matrix_XYZ_to_RGB=True)
    xyz = colour.RGB_to_XYZ(colour.cctf_decoding(rgb, "sRGB"), derived)
    expected = colour.XYZ_to_Lab(xyz, srgb.whitepoint)
    inside = np.all((rgb >= 0) & (rgb <= 1), axis=1)  # colour-science's decoding of negatives differs
    np.testing.assert_allclose(srgb_to_lab(rgb)[inside], expected[inside], rtol=0, atol=1e-6)
    np.testing.assert_allclose(srgb_to_lab(np.ones(3)), [100, 0, 0], atol=1e-9)


def test_identity_is_healthy_everywhere():
    report = health(LUT.identity(9))
    assert report["monotonic_neutral"] == {"ok": True, "where": None}
    assert report["monotonic_channels"] == {"ok": True, "where": None}
    assert report["clipped_share"] == 0 and report["out_of_range"]["count"] == 0
    assert report["max_delta_e"]["value"] < 1e-9 and report["roughness"]["value"] < 1e-12
    assert report["near_identity"]["ok"] and report["near_identity"]["max_change"] < 1e-15
    assert all(v > 300 for v in report["sampling_psnr_db"].values())  # linear: resampled exactly


def test_one_bumped_node_is_found_by_every_measure():
    table = grid(5).copy()
    table[2, 1, 3] += [0.3, -0.1, 0.05]  # node b=2, g=1, r=3: input (0.75, 0.25, 0.5)
    report = health(LUT(table))
    assert report["roughness"]["value"] == pytest.approx(0.6)  # -2 * 0.3 at the node itself
    assert report["roughness"]["at"] == [0.75, 0.25, 0.5]
    x, y = np.array([0.75, 0.25, 0.5]), np.array([1.05, 0.15, 0.55])
    expected = colour.delta_E(srgb_to_lab(y), srgb_to_lab(x), method="CIE 1976")
    assert report["max_delta_e"]["value"] == pytest.approx(expected, abs=1e-9)
    assert report["max_delta_e"]["at"] == [0.75, 0.25, 0.5]
    assert report["out_of_range"] == {"count": 1, "share": 1 / 375, "min": 0.0, "max": pytest.approx(1.05)}
    assert report["clipped_share"] == pytest.approx(1 / 125)
    assert not report["near_identity"]["ok"] and report["near_identity"]["max_change"] == pytest.approx(0.3)
    psnr = report["sampling_psnr_db"]
    assert min(psnr.values()) > 300  # 5 nodes refine exactly into 17, 33 and 65


def test_clipped_share_counts_inner_inputs_clipped_at_0_or_1():
    g = grid(7)  # inputs 0, 1/6, ..., 1: 1.5x - 0.25 clips at 1/6 (to 0) and 5/6 (to 1)
    report = health(LUT(np.clip(1.5 * g - 0.25, 0, 1)))
    assert report["clipped_share"] == pytest.approx(1 - 5**3 / 7**3)
    assert report["out_of_range"]["count"] == 0


def test_reversals_are_found_and_located():
    g = grid(5)
    report = health(LUT(1 - g))
    assert not report["monotonic_neutral"]["ok"]
    assert report["monotonic_neutral"]["where"].startswith("its red output falls from 1 to 0.75 between the greys")
    table = g.copy()
    table[0, 0, 2, 0] = 0.1  # red at input (0.5, 0, 0) below red at (0.25, 0, 0)
    where = health(LUT(table))["monotonic_channels"]["where"]
    assert where == "its red output falls from 0.25 to 0.1 between (0.25, 0, 0) and (0.5, 0, 0)"


def test_sampling_psnr_grows_with_the_lattice():
    report = health(nonlinear_lut(10, np.random.default_rng(1)))
    psnr = report["sampling_psnr_db"]
    assert psnr["17"] < psnr["33"] < psnr["65"]


def test_determinants_of_identity_scaling_and_black_and_white():
    inputs, outputs = node_lattice(LUT.identity(4, [[0, 0, 0], [2, 2, 2]]))
    np.testing.assert_allclose(cell_determinants(inputs, outputs), 1.0, atol=1e-12)
    g = grid(4)
    np.testing.assert_allclose(cell_determinants(g, g * [0.5, 2.0, 3.0]), 3.0, atol=1e-12)
    grey = np.repeat(g.mean(axis=-1, keepdims=True), 3, axis=-1)
    np.testing.assert_allclose(cell_determinants(g, grey), 0.0, atol=1e-12)


def test_shaper_and_1d_luts_are_checked_through_the_whole_lut():
    shaper = Shaper(np.linspace(0, 1, 8)[:, None] ** [1.0, 2.0, 0.5])
    report = health(LUT(None, shaper=shaper))
    assert report["monotonic_channels"]["ok"] and not report["near_identity"]["ok"]
    assert health(LUT(grid(5), shaper=Shaper.identity(6)))["near_identity"]["ok"]


def test_info_prints_the_description_then_the_health(tmp_path):
    result = run_lutgen("info", VELVIA)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("file") and "health" in lines
    assert lines.index("health") > [i for i, line in enumerate(lines) if line.startswith("identity")][0]
    assert re.search(r"^monotonic \(grey axis\) +yes$", result.stdout, re.M)
    rows = dict(health_rows(health(read_lut(VELVIA))))
    for label, value in rows.items():
        assert re.search(rf"^{re.escape(label)} +{re.escape(value)}$", result.stdout, re.M)


def test_info_json_is_the_same_report(tmp_path):
    path = tmp_path / "bumped.cube"
    table = grid(5).copy()
    table[1, 1, 1] = 0.2
    write_lut(LUT(table, title="bumped"), path)
    result = run_lutgen("info", path, "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["info"]["title"] == "bumped" and printed["info"]["3D size"] == "5 (125 nodes)"
    assert printed["health"] == json.loads(json.dumps(health(read_lut(path))))
    assert printed["health"]["near_identity"]["threshold"] == NEAR_IDENTITY


def test_info_of_a_bad_file_is_one_sentence(tmp_path):
    bad = tmp_path / "bad.cube"
    bad.write_text("LUT_3D_SIZE 3\n0 0 0\n")
    one_sentence_error(run_lutgen("info", bad, "--json"), "bad.cube")


def test_huge_values_give_a_report_without_warnings_and_strict_json():
    table = np.random.default_rng(2).uniform(-1, 1, (4, 4, 4, 3)) * 1e308
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = health(LUT(table))
        rows = dict(health_rows(report))
    json.dumps(report, allow_nan=False)
    assert report["sampling_psnr_db"] == {"17": "undefined", "33": "undefined", "65": "undefined"}
    assert rows["largest deltaE"].startswith("n/a") and not report["monotonic_channels"]["ok"]
